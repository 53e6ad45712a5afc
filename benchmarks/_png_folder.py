"""CIFAR-10 as PNG files in class folders, read back by a plain `Dataset` (PIL + tensor transforms).

What a user with images on disk brings: ``root/<split>/<class>/<index>.png`` and a `Dataset` that
decodes one file per item. `write_png_folders` writes the folders once from the original archive.

    SUPERCONVERGE_DATA=../shared/data python benchmarks/_png_folder.py /tmp/cifar-png
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

MEAN = (0.4914, 0.4822, 0.4465)  # CIFAR-10 channel means and stds of the training images
STD = (0.2470, 0.2435, 0.2616)


def write_png_folders(out: Path, source: Path) -> None:
    from PIL import Image

    from superconverge.data import load

    splits = load("cifar10", source, val_fraction=0.0, normalize="raw")
    for split, data in (("train", splits.train), ("test", splits.test)):
        assert data is not None
        images = data.inputs.to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for index, (image, label) in enumerate(zip(images, data.targets.tolist(), strict=True)):
            folder = out / split / splits.classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{index:05d}.png")


class PngFolder(Dataset):
    """Item i: ``(normalised float image (3, H, W), class index)``, decoded from its file.

    With `augment`: pad 4 (reflect) + random 32x32 crop + horizontal flip, on the tensor.
    """

    def __init__(self, root: str | Path, augment: bool = False) -> None:
        root = Path(root)
        self.classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        files = [
            (str(path), label)
            for label, name in enumerate(self.classes)
            for path in sorted((root / name).glob("*.png"))
        ]
        # numpy arrays, not a list of Python objects: a forked DataLoader worker that reads a
        # list touches every item's reference count and so copies the list's pages (torch's
        # advice, pytorch/pytorch#13246); an array's buffer stays shared
        self.paths = np.array([path for path, _ in files], dtype=np.bytes_)
        self.labels = np.array([label for _, label in files], dtype=np.int64)
        self.augment = augment
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.paths)

    def keep(self, indices: np.ndarray) -> None:
        """Keep only the items at `indices` (a subset of the files)."""
        self.paths, self.labels = self.paths[indices], self.labels[indices]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.paths[index].decode(), int(self.labels[index])
        with Image.open(path) as image:
            pixels = np.array(image.convert("RGB"), dtype=np.uint8)  # a writable copy
        x = (torch.from_numpy(pixels).permute(2, 0, 1).float() / 255 - self.mean) / self.std
        if self.augment:
            x = torch.nn.functional.pad(x[None], (4, 4, 4, 4), mode="reflect")[0]
            top, left = torch.randint(0, 9, (2,)).tolist()
            x = x[:, top : top + 32, left : left + 32]
            if torch.rand(()) < 0.5:
                x = x.flip(2)
        return x, label


if __name__ == "__main__":
    import os

    target = Path(sys.argv[1])
    write_png_folders(target, Path(os.environ["SUPERCONVERGE_DATA"]) / "cifar10-full")
    print(sum(1 for _ in target.rglob("*.png")), "files under", target)
