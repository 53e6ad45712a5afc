"""The PyTorch adapter: the only package that writes ``optimizer.param_groups``."""

from superconverge.pytorch.scheduler import (
    HyperparamScheduler,
    get_momentum,
    set_lr,
    set_momentum,
    set_weight_decay,
    spread_max_lr,
)
from superconverge.pytorch.snapshot import TrainingSnapshot

__all__ = [
    "HyperparamScheduler",
    "TrainingSnapshot",
    "get_momentum",
    "set_lr",
    "set_momentum",
    "set_weight_decay",
    "spread_max_lr",
]
