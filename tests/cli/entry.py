"""``module:function`` entry points the CLI tests name with --data and --model."""

import sys

import torch

from superconverge.data import DataSplits, load


def tiny_digits() -> DataSplits:
    """200 / 100 / 100 samples of digits: a tune run of a few seconds."""
    splits = load("digits")
    first = torch.arange
    return DataSplits(
        "tiny-digits",
        splits.train.subset(first(200)),
        splits.val.subset(first(100)) if splits.val is not None else None,
        splits.test.subset(first(100)) if splits.test is not None else None,
        10,
    )


def small_mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))


def not_a_model() -> str:
    return "a string"


def needs_arguments(width: int) -> torch.nn.Module:
    return torch.nn.Linear(width, 10)


def not_data_splits() -> list:
    return [1, 2, 3]


def raises() -> torch.nn.Module:
    raise RuntimeError("the user's code failed")


def out_of_memory() -> torch.nn.Module:
    raise MemoryError


def exits() -> torch.nn.Module:
    """A training script's main turned entry point: it ends with sys.exit(0)."""
    sys.exit(0)


def exits_as_argparse() -> DataSplits:
    """What an argparse parser inside an entry point does with superconverge's command line
    (without its usage lines, printed to stderr before)."""
    sys.exit(2)


def no_validation() -> DataSplits:
    splits = load("digits", val_fraction=0.0)
    return DataSplits("digits-no-val", splits.train, None, splits.test, 10)


def raising_metric(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    raise RuntimeError("the user's metric failed")


def wide_random() -> DataSplits:
    """Random 1x10x10 inputs in 3 classes: data of another shape than digits (a plan made on
    digits, fitted on it, needs its mlp sized again)."""
    from superconverge.data import ArrayData

    generator = torch.Generator().manual_seed(0)

    def split(n: int) -> ArrayData:
        return ArrayData(torch.randn(n, 1, 10, 10, generator=generator), torch.arange(n) % 3)

    return DataSplits("wide-random", split(512), split(40), split(40), 3)


class _GoesBadLate(torch.nn.Module):
    """Trains like `small_mlp` for its first 150 training steps, then gives NaN: short runs and
    range tests pass, a longer run diverges whatever its LR (a user's unstable model)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = small_mlp()
        self.steps = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if self.training and torch.is_grad_enabled():
            self.steps += 1
            if self.steps > 150:
                return out * float("nan")
        return out


def goes_bad_late() -> torch.nn.Module:
    return _GoesBadLate()


def own_loaders() -> tuple:
    """Training and validation loaders of the user's own (batch sizes 32 and 100)."""
    from torch.utils.data import DataLoader, TensorDataset

    splits = tiny_digits()
    assert splits.val is not None
    train = TensorDataset(splits.train.inputs, splits.train.targets)
    val = TensorDataset(splits.val.inputs, splits.val.targets)
    return DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=100)


def nesterov(groups: list) -> torch.optim.Optimizer:
    """An optimizer of the user's own: SGD with Nesterov momentum."""
    return torch.optim.SGD(groups, lr=0.01, momentum=0.9, nesterov=True)


def one_output() -> torch.nn.Module:
    """One output per sample: a regression head, given class-index targets by mistake."""
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 1))


def unflattened() -> torch.nn.Module:
    """A model for flat 64-value inputs, given digits' 8x8 images (it cannot take them)."""
    return torch.nn.Linear(64, 10)


_calls = {"metric": 0}


def metric_fails_late(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """A metric that works on its first few batches, then raises (mid-run)."""
    _calls["metric"] += 1
    if _calls["metric"] > 3:
        raise RuntimeError("the metric failed late")
    return 0.5


def loss_raises(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    raise ValueError("the user's loss failed")


NOT_A_FUNCTION = 3
