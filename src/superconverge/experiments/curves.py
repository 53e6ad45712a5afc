"""Test accuracy along a run: what the reproductions plot and what time-to-accuracy reads, and
the `Trainer` the reproductions record it with."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch

from superconverge.data import ArrayData, Augment
from superconverge.training import Callback, History, Trainer


class TestCurve(Callback):
    """Test accuracy every `every` optimizer steps, or at every epoch end with ``every=None``.

    Each point is ``(step, train_seconds, accuracy)``: the optimizer steps so far, the wall time
    spent training so far (the evaluations themselves are not counted), and the test accuracy.
    """

    __test__ = False  # a callback, not a pytest test class

    def __init__(self, test: Any, every: int | None = None) -> None:
        self.test, self.every = test, None if every is None else max(1, every)
        self.points: list[tuple[int, float, float]] = []
        self.steps, self._start, self._evaluating = 0, 0.0, 0.0

    def on_fit_start(self, trainer: Trainer, history: History) -> None:
        # a new fit, a final run redone at a lower LR too: its own curve, not the first's tail
        self.points, self.steps = [], 0
        self._start, self._evaluating = time.perf_counter(), 0.0

    def _record(self, trainer: Trainer) -> None:
        now = time.perf_counter()
        accuracy = trainer.evaluate(self.test)["accuracy"]
        self.points.append((self.steps, now - self._start - self._evaluating, accuracy))
        self._evaluating += time.perf_counter() - now

    def on_step_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        self.steps += 1
        if self.every is not None and self.steps % self.every == 0:
            self._record(trainer)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        if self.every is None:
            self._record(trainer)


def curve_trainer(
    model: torch.nn.Module,
    train: ArrayData,
    optimizer: str | Callable[[Any], torch.optim.Optimizer],
    curve: TestCurve,
    *,
    batch_size: int,
    seed: int,
    device: str = "auto",
    augment: Augment | None = None,
) -> Trainer:
    """A quiet `Trainer` of `model` on `train` with cross-entropy, whose callback `curve` records
    the test accuracy along the fit."""
    return Trainer(
        model,
        torch.nn.functional.cross_entropy,
        train,
        batch_size=batch_size,
        optimizer=optimizer,
        callbacks=[curve],
        seed=seed,
        progress=False,
        augment=augment,
        device=device,
    )


def head(data: ArrayData, count: int | None) -> ArrayData:
    """The first `count` samples (all of them for None): the reduced runs of ``--quick``."""
    return data if not count else ArrayData(data.inputs[:count], data.targets[:count])


def split_tail(data: ArrayData, held: int) -> tuple[ArrayData, ArrayData]:
    """(all but the last `held` samples, the last `held`): validation data for the recipe."""
    return (
        ArrayData(data.inputs[:-held], data.targets[:-held]),
        ArrayData(data.inputs[-held:], data.targets[-held:]),
    )


def first_reaching(points: list[Any], target: float) -> tuple[int, float] | None:
    """The (step, train seconds) of the first point whose accuracy is >= `target`, or None."""
    for step, seconds, accuracy in points:
        if math.isfinite(accuracy) and accuracy >= target:
            return int(step), float(seconds)
    return None
