"""``module:function`` entry points that return Datasets (not DataSplits), for the CLI tests."""

import errno
import os

import torch
from torch.utils.data import Dataset, IterableDataset


class Rows(Dataset):
    """A noiseless linear regression: 6 features, one float target per row."""

    def __init__(self, count: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.inputs = torch.randn(count, 6, generator=generator)
        self.targets = self.inputs @ torch.arange(1.0, 7.0)[:, None] / 10

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.targets[index]


def regression() -> tuple[Dataset, Dataset, Dataset]:
    return Rows(320, 0), Rows(64, 1), Rows(64, 2)


class FlakyRows(Rows):
    """`Rows` on a disk that fails to read while SUPERCONVERGE_TEST_FLAKY is set (a network
    file system's hiccup)."""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if os.environ.get("SUPERCONVERGE_TEST_FLAKY") == "oom":  # a machine out of memory
            raise MemoryError
        if os.environ.get("SUPERCONVERGE_TEST_FLAKY"):
            raise OSError(errno.EIO, "Input/output error", "/mnt/data/test-rows.bin")
        return super().__getitem__(index)


def flaky_test_split() -> tuple[Dataset, Dataset, Dataset]:
    """`regression` whose test split is read from a flaky disk: read only after the final run."""
    return Rows(320, 0), Rows(64, 1), FlakyRows(64, 2)


class RowStream(IterableDataset):
    """The rows of `Rows`, once (finite: validation needs no len()) or over and over."""

    def __init__(self, rows: Rows, endless: bool) -> None:
        self.rows, self.endless = rows, endless

    def __iter__(self):  # type: ignore[no-untyped-def]
        while True:
            yield from zip(self.rows.inputs, self.rows.targets, strict=True)
            if not self.endless:
                return


def streams() -> tuple[IterableDataset, IterableDataset, IterableDataset]:
    """Training and test streams without end, a finite validation stream."""
    return (
        RowStream(Rows(320, 0), endless=True),
        RowStream(Rows(64, 1), endless=False),
        RowStream(Rows(64, 2), endless=True),
    )


def regressor() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))


def a_number() -> int:
    return 3


def classes() -> tuple[Dataset, Dataset, Dataset]:
    """Ten-class labels (0-9) on the rows' features: for a model with too few outputs."""

    def labelled(count: int, seed: int) -> Dataset:
        rows = Rows(count, seed)
        labels = torch.arange(count) % 10
        return torch.utils.data.TensorDataset(rows.inputs, labels)

    return labelled(320, 0), labelled(64, 1), labelled(64, 2)


def five_classes() -> torch.nn.Module:
    return torch.nn.Linear(6, 5)


def dict_rows() -> tuple[Dataset, Dataset, Dataset]:
    """Hugging Face-style dict items whose target key the library does not know ("value")."""

    class Dicts(Dataset):
        def __init__(self, count: int, seed: int) -> None:
            self.rows = Rows(count, seed)

        def __len__(self) -> int:
            return len(self.rows)

        def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
            inputs, target = self.rows[index]
            return {"features": inputs, "value": target}

    return Dicts(320, 0), Dicts(64, 1), Dicts(64, 2)


def breast_cancer() -> tuple[Dataset, Dataset, Dataset]:
    """scikit-learn's breast-cancer data (569 rows, 30 features, 0/1 labels as floats of shape
    (1,)): a real binary task for ``--loss bce_with_logits``."""
    from sklearn.datasets import load_breast_cancer
    from torch.utils.data import TensorDataset

    x, y = load_breast_cancer(return_X_y=True)
    inputs = torch.tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
    targets = torch.tensor(y, dtype=torch.float32)[:, None]
    order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(0))
    inputs, targets = inputs[order], targets[order]
    return tuple(  # type: ignore[return-value]
        TensorDataset(inputs[a:b], targets[a:b]) for a, b in ((0, 400), (400, 480), (480, 569))
    )


def one_logit() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(30, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))


def numpy_pairs() -> tuple:
    """Training and validation data as (inputs, targets) pairs of NumPy arrays."""
    import numpy as np

    inputs = np.random.default_rng(0).random((40, 1), dtype=np.float32)
    return (inputs, inputs[:, 0] * 2), (inputs, inputs[:, 0] * 2)


def fixed_batch_factory() -> tuple:
    """A loader factory that ignores the batch size it is asked for (always 40 rows): found by
    the final run's first batch, after the stages before it."""
    rows = Rows(320, 0)

    def make_loader(batch_size: int) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(rows, batch_size=40, shuffle=True)

    return make_loader, Rows(64, 1), Rows(64, 2)


class Opaque(Dataset):
    """Items the default collate function cannot batch (an object, as a PIL image is)."""

    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int) -> tuple[object, int]:
        return object(), index % 2


def uncollatable() -> tuple[Dataset, Dataset, Dataset]:
    return Opaque(), Opaque(), Opaque()


def flaky_train() -> tuple[Dataset, Dataset, Dataset]:
    """`regression` whose training split is read from a flaky disk (SUPERCONVERGE_TEST_FLAKY)."""
    return FlakyRows(320, 0), Rows(64, 1), Rows(64, 2)


def four_splits() -> tuple:
    """One split too many: (train, val, test, and what?)."""
    return tuple(Rows(8, seed) for seed in range(4))
