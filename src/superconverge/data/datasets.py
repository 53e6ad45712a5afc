"""`load(name)`: real data sets as in-memory tensors, split into train / validation / test."""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from superconverge.data.formats import (
    CIFAR_MEMBER_DIR,
    DataFormatError,
    check_md5,
    parse_cifar_batch,
    read_cifar_members,
    read_idx,
)

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "csv")
BUNDLED_DATASETS = ("digits",)  # shipped with scikit-learn: no files, so no root
NORMALIZATIONS = ("standard", "unit", "raw")
DATA_ENV = "SUPERCONVERGE_DATA"
DIGITS_TEST_FRACTION = 0.2  # scikit-learn's digits has no official test split
SPLIT_SEED = 0  # the test split of digits/csv is fixed, whatever `seed` is

SOURCES = {
    "mnist": "the MNIST database (Y. LeCun, C. Cortes, C. Burges), originally "
    "http://yann.lecun.com/exdb/mnist/",
    "fashion-mnist": "Fashion-MNIST (Zalando Research), https://github.com/zalandoresearch/fashion-mnist",
    "cifar10": "CIFAR-10 (A. Krizhevsky, 2009), cifar-10-python.tar.gz from "
    "https://www.cs.toronto.edu/~kriz/cifar.html",
}
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CIFAR_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@dataclass(frozen=True)
class ArrayData:
    """Inputs and targets held in memory as tensors, sample i in row i."""

    inputs: torch.Tensor
    targets: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.targets):
            raise ValueError(
                f"inputs and targets must have the same length, got {len(self.inputs)} "
                f"and {len(self.targets)}"
            )

    def __len__(self) -> int:
        return len(self.inputs)

    def subset(self, indices: torch.Tensor) -> ArrayData:
        return ArrayData(self.inputs[indices], self.targets[indices])

    def __repr__(self) -> str:
        """Shapes and dtypes, not the tensors' values (a notebook cell printed ~10 kB)."""
        return (
            f"ArrayData({len(self)} samples: inputs {tuple(self.inputs.shape[1:])} "
            f"{self.inputs.dtype}, targets {tuple(self.targets.shape[1:])} {self.targets.dtype})"
        )


@dataclass(frozen=True)
class DataSplits:
    """What `load` returns: the three splits and what is known about the data.

    `mean` and `std` are per channel (per feature for tables), computed on the training split
    before normalisation; with ``normalize="standard"`` every split was standardised with them.
    """

    name: str
    train: ArrayData
    val: ArrayData | None
    test: ArrayData | None
    num_classes: int | None
    classes: tuple[str, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    normalize: str = "standard"
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        """Tensors only: a Dataset or DataLoader here was read as tensors, its batches counted
        as samples ("--batch-size must be <= the 41 training samples" of a loader)."""
        for split in ("train", "val", "test"):
            value = getattr(self, split)
            if not isinstance(value, ArrayData) and (split == "train" or value is not None):
                raise TypeError(
                    f"DataSplits.{split} must be ArrayData (tensors), got {type(value).__name__}; "
                    "for Datasets or loaders return (train, val) or (train, val, test) instead "
                    "(tune, lr_find and --data module:function take them as they are)"
                )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.inputs.shape[1:])

    def __repr__(self) -> str:
        """The splits' sizes and what is known of the data, not the tensors' values.

        Example:
            >>> data = ArrayData(torch.zeros(4, 2), torch.tensor([0, 1, 1, 0]))
            >>> DataSplits("toy", data, None, data, 2)
            DataSplits('toy': train 4, val none, test 4; inputs (2,) torch.float32, 2 classes)
        """
        sizes = ", ".join(
            f"{name} {'none' if split is None else len(split)}"
            for name, split in (("train", self.train), ("val", self.val), ("test", self.test))
        )
        classes = "" if self.num_classes is None else f", {self.num_classes} classes"
        return (
            f"DataSplits({self.name!r}: {sizes}; inputs {self.input_shape} "
            f"{self.train.inputs.dtype}{classes})"
        )


def default_root(name: str) -> Path:
    """``$SUPERCONVERGE_DATA/<name>``, or ``./data/<name>`` when the variable is unset."""
    base = os.environ.get(DATA_ENV)
    return Path(base) / name if base else Path("data") / name


def load(
    name: str,
    root: str | Path | None = None,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    normalize: str = "standard",
    target: str | None = None,
    test_fraction: float = DIGITS_TEST_FRACTION,
) -> DataSplits:
    """Load a data set as in-memory tensors split into train, validation and test.

    Images come as float32 ``(N, C, H, W)``, tables as ``(N, features)``; class labels as int64.
    The validation split is a seeded random `val_fraction` of the training split; the test split
    is the official one (MNIST, Fashion-MNIST, CIFAR-10) or a fixed `test_fraction` (digits, csv).

    Args:
        name: ``digits`` (scikit-learn's 8x8 digits, bundled), ``mnist``, ``fashion-mnist``
            (IDX ``.gz`` files), ``cifar10`` (``cifar-10-batches-py/`` or a ``.tar.gz`` of it,
            any subset of the batches), ``csv`` (`root` is the file, `target` its label column).
        root: the folder holding the files; default ``$SUPERCONVERGE_DATA/<name>``.
        val_fraction: share of the training split held out for validation, in [0, 1).
        seed: seeds the validation split.
        normalize: ``standard`` (per-channel mean/std of the training split), ``unit``
            (pixels / 255) or ``raw`` (pixels as stored, 0-255 or 0-16 for digits).
        target: the label column (csv only).
        test_fraction: share held out for testing where there is no official test split.

    Raises:
        FileNotFoundError: a file is missing; the message names it, the folder searched and
            where the data set comes from.
        DataFormatError: a truncated, corrupt or wrong-format file, named in the message.
        ValueError: an unknown name or option.
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {', '.join(DATASETS)}, got {name!r}")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {normalize!r}")
    if not isinstance(val_fraction, (int, float)) or not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if not isinstance(test_fraction, (int, float)) or not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if target is not None and name != "csv":
        raise ValueError(f"target names the label column of a csv file; {name} has its own labels")

    if name == "digits":
        splits = _load_digits(test_fraction)
    elif name in ("mnist", "fashion-mnist"):
        splits = _load_mnist(name, Path(root) if root is not None else default_root(name))
    elif name == "cifar10":
        splits = _load_cifar10(Path(root) if root is not None else default_root(name))
    else:
        if root is None:
            raise ValueError("root must be the path of the csv file for name='csv'")
        if target is None:
            raise ValueError("target must name the label column for name='csv'")
        splits = _load_csv(Path(root), target, test_fraction)
    return _finish(splits, val_fraction, seed, normalize)


def _missing(path: Path, name: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{path.name} not found in {path.parent.resolve()} (searched for {name}); "
        f"the data set is {SOURCES[name]}. Put the original files there, or pass root= "
        f"(CLI: --data-dir) or set {DATA_ENV}."
    )


def _split(count: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random (keep, held_out) split of range(count), each in ascending order."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(count, generator=generator)
    held = math.floor(count * fraction)
    return order[held:].sort().values, order[:held].sort().values


def _images(array: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.unsqueeze(1) if tensor.ndim == 3 else tensor


def _load_digits(test_fraction: float) -> DataSplits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32)).unsqueeze(1)  # (1797, 1, 8, 8)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    data = ArrayData(images, labels)
    keep, test = _split(len(data), test_fraction, SPLIT_SEED)
    classes = tuple(str(c) for c in range(10))
    note = f"scikit-learn digits: pixels 0-16; a fixed {test_fraction:.0%} test split"
    return DataSplits(
        "digits", data.subset(keep), None, data.subset(test), 10, classes, notes=(note,)
    )


def _mnist_file(root: Path, stem: str, name: str) -> Path:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    raise _missing(root / f"{stem}.gz", name)


def _load_mnist(name: str, root: Path) -> DataSplits:
    arrays = {}
    for key, stem in MNIST_FILES.items():
        path = _mnist_file(root, stem, name)
        check_md5(path, name)
        arrays[key] = (path, read_idx(path))
    splits = []
    for part in ("train", "test"):
        (image_path, images), (label_path, labels) = (
            arrays[f"{part}_images"],
            arrays[f"{part}_labels"],
        )
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataFormatError(
                f"{image_path}: expected uint8 images (N, H, W), got {images.shape}"
            )
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataFormatError(
                f"{label_path}: {len(labels)} labels for {len(images)} images in {image_path.name}"
            )
        if labels.size and labels.max() > 9:
            raise DataFormatError(f"{label_path}: labels must be 0-9, found {labels.max()}")
        splits.append(ArrayData(_images(images).float(), torch.from_numpy(labels.astype(np.int64))))
    classes = FASHION_CLASSES if name == "fashion-mnist" else tuple(str(c) for c in range(10))
    return DataSplits(name, splits[0], None, splits[1], 10, classes)


def _cifar_source(root: Path) -> Path:
    if (root / CIFAR_MEMBER_DIR).is_dir():
        return root / CIFAR_MEMBER_DIR
    if root.is_dir() and (root / "data_batch_1").is_file():
        return root
    if root.is_file():
        return root
    official = root / "cifar-10-python.tar.gz"
    if official.is_file():
        return official
    archives = sorted(root.glob("cifar-10*.tar.gz")) if root.is_dir() else []
    if archives:
        return archives[0]
    raise _missing(official, "cifar10")


def _load_cifar10(root: Path) -> DataSplits:
    source = _cifar_source(root)
    train_names = [f"data_batch_{i}" for i in range(1, 6)]
    raw = read_cifar_members(source, [*train_names, "test_batch"])
    present = [n for n in train_names if n in raw]
    if not present:
        raise DataFormatError(f"{source}: no training batch (data_batch_1..5) found")
    batches = [parse_cifar_batch(raw[n], f"{source}:{n}") for n in present]
    train = ArrayData(
        torch.from_numpy(np.concatenate([b.images for b in batches])).float(),
        torch.from_numpy(np.concatenate([b.labels for b in batches])),
    )
    test = None
    notes = [f"training batches: {', '.join(present)} ({len(train)} images)"]
    if "test_batch" in raw:
        batch = parse_cifar_batch(raw["test_batch"], f"{source}:test_batch")
        test = ArrayData(torch.from_numpy(batch.images).float(), torch.from_numpy(batch.labels))
        notes.append(f"test_batch: {len(test)} images")
    return DataSplits("cifar10", train, None, test, 10, CIFAR_CLASSES, notes=tuple(notes))


def _load_csv(path: Path, target: str, test_fraction: float) -> DataSplits:
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} not found in {path.parent.resolve()} (csv data set)")
    check_md5(path, "csv")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise DataFormatError(f"{path}: empty csv file")
    header, body = rows[0], [row for row in rows[1:] if row]
    if target not in header:
        raise ValueError(f"target must be one of the columns {header}, got {target!r}")
    if not body:
        raise DataFormatError(f"{path}: no data rows under the header")
    column = header.index(target)
    features = [name for name in header if name != target]
    inputs = np.empty((len(body), len(features)), dtype=np.float32)
    raw_targets = []
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataFormatError(
                f"{path}, line {line}: {len(row)} fields, header has {len(header)}"
            )
        values = [cell for index, cell in enumerate(row) if index != column]
        for index, cell in enumerate(values):
            try:
                inputs[line - 2, index] = float(cell)
            except ValueError:
                raise DataFormatError(
                    f"{path}, line {line}: column {features[index]!r} must be numeric, got {cell!r}"
                ) from None
        raw_targets.append(row[column])
    labels, classes = _csv_targets(raw_targets)
    data = ArrayData(torch.from_numpy(inputs), labels)
    keep, test = _split(len(data), test_fraction, SPLIT_SEED)
    num_classes = len(classes) if classes else None
    return DataSplits(
        "csv",
        data.subset(keep),
        None,
        data.subset(test),
        num_classes,
        classes,
        notes=(f"{path.name}: target {target!r}, features {features}",),
    )


def _csv_targets(values: list[str]) -> tuple[torch.Tensor, tuple[str, ...]]:
    """Integer or text labels become class indices; other numbers stay as regression targets."""
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        classes = tuple(sorted(set(values)))
        index = {name: i for i, name in enumerate(classes)}
        return torch.tensor([index[v] for v in values], dtype=torch.int64), classes
    if all(n.is_integer() and n >= 0 for n in numbers):
        count = int(max(numbers)) + 1
        return torch.tensor(numbers, dtype=torch.int64), tuple(str(c) for c in range(count))
    return torch.tensor(numbers, dtype=torch.float32), ()


def _finish(splits: DataSplits, val_fraction: float, seed: int, normalize: str) -> DataSplits:
    train, val = splits.train, None
    if val_fraction > 0:
        keep, held = _split(len(train), val_fraction, seed)
        train, val = train.subset(keep), train.subset(held)
    if len(train) == 0:
        raise DataFormatError(f"{splits.name}: the training split is empty")
    inputs = train.inputs.double()
    dims = [0, 2, 3] if inputs.ndim == 4 else [0]
    mean = inputs.mean(dim=dims)
    std = inputs.std(dim=dims).clamp_min(1e-8)  # constant columns (digits' edges) stay finite

    def scale(data: ArrayData) -> ArrayData:
        x = data.inputs.float()
        if normalize == "unit" and splits.name != "csv":
            x = x / (16.0 if splits.name == "digits" else 255.0)
        elif normalize == "standard":
            shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
            x = ((x.double() - mean.view(shape)) / std.view(shape)).float()
        return ArrayData(x.contiguous(), data.targets)

    return replace(
        splits,
        train=scale(train),
        val=None if val is None else scale(val),
        test=None if splits.test is None else scale(splits.test),
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        normalize=normalize,
    )
