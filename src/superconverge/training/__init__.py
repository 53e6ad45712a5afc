"""The training loop: `Trainer` (fit_one_cycle, fit, fine_tune, resume) and `History`."""

from superconverge.pytorch.optimizers import default_splitter
from superconverge.training.history import History
from superconverge.training.trainer import (
    Callback,
    TensorBoardLogger,
    Trainer,
    scale_lr_for_batch,
)

__all__ = [
    "Callback",
    "History",
    "TensorBoardLogger",
    "Trainer",
    "default_splitter",
    "scale_lr_for_batch",
]
