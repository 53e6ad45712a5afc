"""The training loop: `Trainer` (fit_one_cycle, fit, fine_tune, resume), `History`, callbacks."""

from superconverge.pytorch.optimizers import default_splitter
from superconverge.training.callbacks import Callback, CancelEpoch, CancelFit, TensorBoardLogger
from superconverge.training.history import History
from superconverge.training.loop import FitLoop
from superconverge.training.trainer import Trainer

__all__ = [
    "Callback",
    "CancelEpoch",
    "CancelFit",
    "FitLoop",
    "History",
    "TensorBoardLogger",
    "Trainer",
    "default_splitter",
]
