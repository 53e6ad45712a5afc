"""``module:function`` entry points that return Datasets (not DataSplits), for the CLI tests."""

import torch
from torch.utils.data import Dataset


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


def regressor() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))


def a_number() -> int:
    return 3
