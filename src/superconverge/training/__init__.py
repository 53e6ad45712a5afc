"""The training loop: `Trainer` (fit_one_cycle, fit, fine_tune, resume), `History`, callbacks
(early stopping, keep-best, weight averaging) and loggers (TensorBoard, CSV, MLflow)."""

from superconverge.pytorch.optimizers import default_splitter
from superconverge.training.averaging import WeightAverage
from superconverge.training.callbacks import (
    Callback,
    CancelEpoch,
    CancelFit,
    EarlyStopping,
    KeepBest,
)
from superconverge.training.edge import EdgeSettings
from superconverge.training.history import History
from superconverge.training.loggers import CSVLogger, Logger, MLflowLogger, TensorBoardLogger
from superconverge.training.loop import FitLoop
from superconverge.training.trainer import Trainer

__all__ = [
    "CSVLogger",
    "Callback",
    "CancelEpoch",
    "CancelFit",
    "EarlyStopping",
    "EdgeSettings",
    "FitLoop",
    "History",
    "KeepBest",
    "Logger",
    "MLflowLogger",
    "TensorBoardLogger",
    "Trainer",
    "WeightAverage",
    "default_splitter",
]
