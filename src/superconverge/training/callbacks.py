"""Callbacks: one protocol with uniform events around fit, epoch and batch (fastai's shape).

Events, in order: ``before_fit``, then per epoch ``before_epoch``, per optimizer step
``before_batch`` / ``after_batch``, ``after_epoch``, and ``after_fit`` (always, also after a
divergence, a cancel or an exception). Each receives the running `FitLoop`, which carries
``trainer``, ``history``, ``epoch``, ``step``, ``loss``, ``lr`` and ``record``. A callback raises
`CancelEpoch` to end the current epoch early (validation and checkpoint still run) or
`CancelFit` to stop the fit (status ``"cancelled"``).

The older hooks (``on_fit_start``, ``on_step_end``, ``on_epoch_end``, ``on_fit_end``) are what
the default events call, so callbacks written for them keep working.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from superconverge.training.history import History
    from superconverge.training.loop import FitLoop
    from superconverge.training.trainer import Trainer


class CancelFit(Exception):
    """Raised by a callback to stop the fit; the history's status becomes ``"cancelled"``."""


class CancelEpoch(Exception):
    """Raised by a callback to end the current epoch early; the fit goes on with the next."""


class Callback:
    """Hooks into the training loop; override what you need."""

    def before_fit(self, fit: FitLoop) -> None:
        self.on_fit_start(fit.trainer, fit.history)

    def before_epoch(self, fit: FitLoop) -> None: ...

    def before_batch(self, fit: FitLoop) -> None: ...

    def after_batch(self, fit: FitLoop) -> None:
        """After an optimizer step; ``fit.step`` is that step's index, ``fit.loss`` its loss."""
        self.on_step_end(fit.trainer, fit.step, fit.loss)

    def after_epoch(self, fit: FitLoop) -> None:
        self.on_epoch_end(fit.trainer, fit.record)

    def after_fit(self, fit: FitLoop) -> None:
        self.on_fit_end(fit.trainer, fit.history)

    def on_fit_start(self, trainer: Trainer, history: History) -> None: ...

    def on_step_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None: ...

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None: ...

    def on_fit_end(self, trainer: Trainer, history: History) -> None: ...


def overrides(callback: Callback, *names: str) -> bool:
    """Whether `callback` overrides any of the `names` hooks (the loop skips the others)."""
    return any(getattr(type(callback), name) is not getattr(Callback, name) for name in names)


class TensorBoardLogger(Callback):
    """Writes the per-step loss and LR and the per-epoch metrics for TensorBoard.

    Needs the ``tensorboard`` package (``pip install superconverge[tensorboard]``).
    """

    def __init__(self, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError(
                "TensorBoardLogger needs tensorboard: pip install 'superconverge[tensorboard]'"
            ) from error
        self.writer: Any = SummaryWriter(str(log_dir))

    def after_batch(self, fit: FitLoop) -> None:
        self.writer.add_scalar("train/loss_step", float(fit.loss), fit.step)
        self.writer.add_scalar("train/lr", fit.lr, fit.step)

    def after_epoch(self, fit: FitLoop) -> None:
        for key, value in fit.record.items():
            if key != "epoch" and math.isfinite(value):
                self.writer.add_scalar(f"epoch/{key}", value, int(fit.record["epoch"]))
        self.writer.flush()

    def after_fit(self, fit: FitLoop) -> None:
        self.writer.close()
