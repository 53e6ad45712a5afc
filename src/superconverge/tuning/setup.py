"""`RecipeSetup`: what every stage of one `tune` call shares, and how it runs the recipe's
measurements: each one recorded in the journal (read back on resume) and charged to the
search's budget, in training samples, whether it was computed or read back."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from superconverge.data.loader import Augment
from superconverge.data.sources import DataSource
from superconverge.finder.result import RangeTestResult
from superconverge.training.callbacks import Callback
from superconverge.training.trainer import Trainer
from superconverge.tuning.budget import SearchBudget, ShortRunSize, subset_source
from superconverge.tuning.journal import Journal
from superconverge.tuning.probes import Momentum, ShortRun, run_short, run_short_runs
from superconverge.tuning.resumable import remembered_runs
from superconverge.tuning.settings import RecipeSettings
from superconverge.tuning.trials import TrialStudy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecipeSetup:
    """What every stage of one `tune` call shares."""

    model_fn: Callable[[], nn.Module]
    train_data: DataSource
    val_data: DataSource
    loss_fn: Callable[..., torch.Tensor]
    augment: Augment | None
    seed: int
    device: torch.device
    workers: int
    settings: RecipeSettings
    # the Trainer's other keyword arguments (optimizer, metrics, batch_fn), for every run
    options: dict[str, Any]
    journal: Journal  # what was measured, kept as it is made; read back on resume
    budget: SearchBudget  # the search's allowance and account, in training samples
    trials: TrialStudy | None = None  # where the short runs go when they are trials of a study
    families: tuple[Any, ...] = ()  # the optimizers the recipe may compare (names, a callable)
    callbacks: tuple[Callback, ...] = ()  # the user's, for the final run only

    def short_run(
        self, batch_size: int, size: ShortRunSize, momentum: Momentum | None, optimizer: Any
    ) -> ShortRun:
        """A short run at these settings (its LRs and weight decay set by `ShortRun.at`), on a
        seeded subset of the training set when `size` asks for one."""
        return ShortRun(
            self.model_fn,
            self.loss_fn,
            subset_source(self.train_data, size.train_fraction, self.seed, batch_size),
            self.val_data,
            batch_size,
            size.epochs,
            max_lr=0.0,
            min_lr=0.0,
            weight_decay=0.0,
            momentum=momentum,
            seed=self.seed,
            augment=self.augment,
            options={**self.options, "optimizer": optimizer},
            samples=size.samples,
            train_fraction=size.train_fraction,
        )

    def short_run_from(self, spec: dict[str, Any]) -> ShortRun:
        """The short run a trial's spec (`short_run_spec`) describes, on this process's model
        and data: how a worker turns a trial into a run."""
        name = spec["optimizer"]
        optimizer = (
            name
            if name in self.families
            else next((f for f in self.families if not isinstance(f, str)), name)
        )
        size = ShortRunSize(spec["epochs"], spec["train_fraction"], spec["samples"])
        momentum = spec["momentum"]
        run = self.short_run(
            spec["batch_size"],
            size,
            momentum
            if momentum is None or isinstance(momentum, float)
            else (momentum[0], momentum[1]),
            optimizer,
        ).at(spec["max_lr"], spec["min_lr"], spec["weight_decay"])
        run = replace(run, seed=spec["seed"])
        if short_run_label(run) != spec["label"]:
            raise ValueError(
                f"trial {spec['label']!r} rebuilt here as {short_run_label(run)!r}: this "
                "process's arguments differ from the coordinator's"
            )
        return run

    def run_short_runs(self, stage: str, runs: Sequence[ShortRun]) -> list[dict[str, Any]]:
        """`run_short_runs`, each result recorded in the journal as its batch ends; a run
        recorded before (on resume, or the same settings in an earlier stage) is not run again,
        and each run is charged to the budget once."""
        labels = [short_run_label(run) for run in runs]
        for run, label in zip(runs, labels, strict=True):
            self.budget.charge(stage, run.samples, label)
        return remembered_runs(self.journal, "short_run", labels, list(runs), self._run_many)

    def _run_many(self, runs: list[ShortRun]) -> list[dict[str, Any]]:
        if self.trials is None:
            return run_short_runs(runs, self.workers)
        return self.trials.run(
            [short_run_spec(run) for run in runs], lambda spec: run_short(self.short_run_from(spec))
        )

    def run_short(self, stage: str, run: ShortRun) -> dict[str, Any]:
        return self.run_short_runs(stage, [run])[0]

    def range_test(
        self, stage: str, label: str, measure: Callable[[], Any], batch_size: int
    ) -> RangeTestResult:
        """A range test, recorded in the journal as ``range_test/<label>`` (read back on
        resume), charged its steps x `batch_size`: the same `RangeTestResult` either way."""
        recorded = self.journal.remember(f"range_test/{label}", lambda: measure().to_dict())
        result = RangeTestResult.from_dict(recorded)
        self.budget.charge(stage, len(result.lrs) * batch_size, f"range_test/{label}")
        return result

    def trainer(
        self, batch_size: int, optimizer: Any, weight_decay: float = 0.0, validate: bool = False
    ) -> Trainer:
        """A trainer on a fresh model (seeded) for a range test."""
        torch.manual_seed(self.seed)
        return Trainer(
            self.model_fn(),
            self.loss_fn,
            self.train_data,
            self.val_data if validate else None,
            batch_size=batch_size,
            weight_decay=weight_decay,
            seed=self.seed,
            augment=self.augment,
            progress=False,
            device=self.device,
            **{**self.options, "optimizer": optimizer},
        )


def short_run_label(run: ShortRun) -> str:
    """A short run's journal label: what varies between the recipe's short runs."""
    momentum = run.momentum if not isinstance(run.momentum, list) else tuple(run.momentum)
    optimizer = run.options.get("optimizer")
    name = optimizer if isinstance(optimizer, str) else getattr(optimizer, "__name__", "custom")
    return (
        f"{name} max_lr={run.max_lr!r} min_lr={run.min_lr!r} wd={float(run.weight_decay)!r} "
        f"momentum={momentum} epochs={run.epochs} samples={run.samples} batch={run.batch_size} "
        f"seed={run.seed}"
    )


def short_run_spec(run: ShortRun) -> dict[str, Any]:
    """What a trial records of a short run: enough for a process holding the same model and
    data to rebuild it (`RecipeSetup.short_run_from`); JSON data."""
    optimizer = run.options.get("optimizer")
    momentum = run.momentum if not isinstance(run.momentum, tuple) else list(run.momentum)
    return {
        "label": short_run_label(run),
        "optimizer": optimizer if isinstance(optimizer, str) else "custom",
        "batch_size": run.batch_size,
        "epochs": run.epochs,
        "train_fraction": run.train_fraction,
        "samples": run.samples,
        "max_lr": run.max_lr,
        "min_lr": run.min_lr,
        "weight_decay": float(run.weight_decay),
        "momentum": momentum,
        "seed": run.seed,
    }


def with_seed(run: ShortRun, seed: int) -> ShortRun:
    """The same short run from another seed (initial weights and batch order): the noise probe.
    The training subset stays the one the recipe's seed chose."""
    return replace(run, seed=seed)
