"""Callbacks: one protocol with uniform events around fit, epoch and batch (fastai's shape).

Events, in order: ``before_fit``, then per epoch ``before_epoch``, per optimizer step
``before_batch`` / ``after_batch``, ``after_epoch``, and ``after_fit`` (always, also after a
divergence, a cancel or an exception). Each receives the running `FitLoop`, which carries
``trainer``, ``history``, ``epoch``, ``step``, ``loss``, ``lr`` and ``record``. A callback raises
`CancelEpoch` to end the current epoch early (validation and checkpoint still run) or
`CancelFit` to stop the fit (status ``"cancelled"``).

The older hooks (``on_fit_start``, ``on_step_end``, ``on_epoch_end``, ``on_fit_end``) are what
the default events call, so callbacks written for them keep working.

Built in: `EarlyStopping` (stops through `CancelFit` when a monitored value stops improving) and
`KeepBest` (ends the fit with its best epoch's weights); `WeightAverage` (training/averaging.py)
averages the end of a fit's weights; loggers: training/loggers.py.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import torch

from superconverge._checks import plain_arguments
from superconverge.training.checkpoint import BEST, load_checkpoint

if TYPE_CHECKING:
    from superconverge.training.history import History
    from superconverge.training.loop import FitLoop
    from superconverge.training.trainer import Trainer


class CancelFit(Exception):
    """Raised by a callback to stop the fit; the history's status becomes ``"cancelled"``."""


class CancelEpoch(Exception):
    """Raised by a callback to end the current epoch early; the fit goes on with the next."""


class Callback:
    """Hooks into the training loop; override what you need.

    A callback with a ``checkpoint_key`` (a str) has its ``state_dict()`` saved in each
    checkpoint under that key and given to its ``load_state_dict`` when the fit resumes, before
    ``before_fit`` (`WeightAverage` keeps its running mean that way). Such callbacks end each
    epoch (``after_epoch``) before its checkpoint is saved, so the state saved holds that epoch;
    the other callbacks end it after the save.
    """

    checkpoint_key: str | None = None

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


class EarlyStopping(Callback):
    """Stop the fit when `monitor` has not improved for `patience` epochs.

    "Improved" means below the best so far by more than `min_delta` (`mode` ``"min"``), or
    above it (``"max"``). The fit ends cleanly through `CancelFit` after the epoch's
    validation and checkpoint: ``history.status`` is ``"cancelled"`` and ``history.message``
    says why (add `KeepBest` to end with the best epoch's weights). Never stops after the last
    epoch (nothing would be saved).

    State: ``best``, ``best_epoch``, ``wait`` (`state_dict`); a resumed fit rebuilds it from the
    History the checkpoint holds.

    Raises:
        ValueError: a bad argument, or a `monitor` the epoch records lack (the message lists
            what they hold).
    """

    @plain_arguments
    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        patience: int = 3,
        min_delta: float = 0.0,
        mode: str = "min",
    ) -> None:
        _check_monitor(monitor, mode)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
        if not 0 <= min_delta < math.inf:
            raise ValueError(f"min_delta must be >= 0, got {min_delta!r}")
        self.monitor, self.patience, self.min_delta, self.mode = monitor, patience, min_delta, mode
        self.best, self.best_epoch, self.wait = math.nan, 0, 0

    def before_fit(self, fit: FitLoop) -> None:
        _check_monitor_has_data(fit, self.monitor, "EarlyStopping")
        self.best, self.best_epoch, self.wait = math.nan, 0, 0
        for record in fit.history.epochs:  # a resumed fit: the epochs already done
            self._update(record)

    def after_epoch(self, fit: FitLoop) -> None:
        self._update(fit.record)
        if self.wait >= self.patience and fit.epoch + 1 < fit.epochs:
            raise CancelFit(
                f"early stopping: {self.monitor} did not improve for {self.wait} epochs "
                f"(best {self.best:.4g} at epoch {self.best_epoch}); stopped after epoch "
                f"{fit.epoch + 1} of {fit.epochs}"
            )

    def _update(self, record: dict[str, float]) -> None:
        value = _monitored(record, self.monitor)
        if _better(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, int(record["epoch"]), 0
        else:
            self.wait += 1

    def state_dict(self) -> dict[str, float | int]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        self.best = float(state["best"])
        self.best_epoch, self.wait = int(state["best_epoch"]), int(state["wait"])


class KeepBest(Callback):
    """End the fit with the weights of its best epoch by `monitor`, not those of its last.

    After each epoch that improves on the best (`mode` ``"min"`` or ``"max"``), a copy of the
    model's state is kept on the CPU; when the fit ends (completed, stopped by `EarlyStopping`
    or another callback, or diverged) the model gets it back and ``history.notes`` says which
    epoch it was. A resumed fit takes the best epoch from its History and its weights from
    ``best.pt`` beside the checkpoint when `monitor` is ``val_loss`` (the loop saves that file
    for the lowest validation loss); otherwise from the model if that epoch was the last one done.

    State: ``best``, ``best_epoch`` and ``weights`` (`state_dict`).
    """

    def __init__(self, monitor: str = "val_loss", *, mode: str = "min") -> None:
        _check_monitor(monitor, mode)
        self.monitor, self.mode = monitor, mode
        self.best, self.best_epoch = math.nan, 0
        self.weights: dict[str, torch.Tensor] | None = None

    def before_fit(self, fit: FitLoop) -> None:
        _check_monitor_has_data(fit, self.monitor, "KeepBest")
        self.best, self.best_epoch, self.weights = math.nan, 0, None
        for record in fit.history.epochs:  # a resumed fit: the epochs already done
            value = _monitored(record, self.monitor)
            if _better(value, self.best, self.mode, 0.0):
                self.best, self.best_epoch = value, int(record["epoch"])
        if self.best_epoch:
            self.weights = self._resumed_weights(fit)

    def _resumed_weights(self, fit: FitLoop) -> dict[str, torch.Tensor] | None:
        if self.best_epoch == len(fit.history.epochs):  # the weights the fit resumes from
            return _cpu_copy(fit.trainer.module)
        folder = fit.trainer.run_folder
        best = None if folder is None else folder.path / BEST
        # the loop saves best.pt at each lowest validation loss: the same epoch as ours
        if self.monitor == "val_loss" and self.mode == "min" and best and best.is_file():
            return dict(load_checkpoint(best)["model"])
        warnings.warn(
            f"KeepBest: the weights of epoch {self.best_epoch} (best {self.monitor}) were not "
            "saved before the resume; the fit will end with the best of the epochs it trains",
            RuntimeWarning,
            stacklevel=2,
        )
        self.best, self.best_epoch = math.nan, 0
        return None

    def after_epoch(self, fit: FitLoop) -> None:
        value = _monitored(fit.record, self.monitor)
        if _better(value, self.best, self.mode, 0.0):
            self.best, self.best_epoch = value, int(fit.record["epoch"])
            self.weights = _cpu_copy(fit.trainer.module)

    def after_fit(self, fit: FitLoop) -> None:
        if self.weights is None or fit.history.status not in ("completed", "cancelled", "diverged"):
            return
        last = len(fit.history.epochs)
        if self.best_epoch != last:
            fit.trainer.module.load_state_dict(self.weights)
        fit.history.notes.append(
            f"KeepBest: the model holds the weights of epoch {self.best_epoch} of {last} "
            f"({self.monitor} {self.best:.4g})"
        )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "weights": self.weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])
        self.weights = state["weights"]


def _check_monitor(monitor: str, mode: str) -> None:
    if not isinstance(monitor, str) or not monitor:
        raise ValueError(f"monitor must be the name of an epoch value, got {monitor!r}")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")


def _check_monitor_has_data(fit: FitLoop, monitor: str, who: str) -> None:
    """A validation value monitored in a fit without val_data, refused before its first step
    (it was refused after the first epoch's training, a user's check)."""
    if monitor.startswith("val_") and fit.trainer.val_loader is None:
        raise ValueError(
            f"{who}: monitor {monitor!r} is a validation value, but the Trainer has no val_data; "
            "give it val_data, or monitor 'train_loss'"
        )


def _monitored(record: dict[str, float], monitor: str) -> float:
    if monitor not in record:
        raise ValueError(
            f"monitor {monitor!r} is not in the epoch records, which hold {sorted(record)} "
            "(val_ values need val_data)"
        )
    return float(record[monitor])


def _better(value: float, best: float, mode: str, min_delta: float) -> bool:
    """Whether `value` improves on `best` by more than `min_delta`; NaN never improves, and
    anything finite improves on a NaN best (none yet)."""
    if not math.isfinite(value):
        return False
    if math.isnan(best):
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _cpu_copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: tensor.detach().to("cpu", copy=True) for name, tensor in module.state_dict().items()
    }
