"""What the recipe may spend, counted in training samples processed, and the cores it may use.

`tune(..., budget=1.0)` lets the search spend at most one final run's worth of training
samples, so the whole recipe costs at most twice the final run. `SearchBudget` sizes the short
runs from that allowance before any of them runs, and keeps the account as they do: range tests
count their steps x batch, short runs their epochs x the samples of their (sub)set. Runs that
only refine (LR-grid extensions, the weight-decay midpoint, extra momenta) run only while the
account allows them; the ones a decision needs always run.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset

from superconverge.data.sources import DataSource


@dataclass(frozen=True)
class ShortRunSize:
    """How long each short run is: `epochs` passes over `train_fraction` of the training set."""

    epochs: int
    train_fraction: float  # in (0, 1]: a seeded subset of the training set when below 1
    samples: int  # training samples one short run processes


@dataclass
class SearchBudget:
    """The search's allowance and account, in training samples processed.

    Attributes:
        final_samples: one run of the epochs asked for (epochs x samples per epoch): the unit
            of the budget (the final run may be longer: `handed`).
        budget: the search's allowance in those runs (1.0: one run's samples).
        spent: samples spent per stage, in the order spent.
        handed: samples of the allowance handed to the final run as extra epochs (when the short
            runs show no overfitting: `decisions.final_run_extension`); no search run may use them.
        floor: the least search that decides (one range test and one LR grid of the shortest
            useful short runs), set when it is more than the allowance: then the search spends
            it anyway, and says so (a tiny final run, e.g. 30 updates at batch 128).
    """

    final_samples: int
    budget: float
    spent: dict[str, int] = field(default_factory=dict)
    charged: set[str] = field(default_factory=set)  # what was charged, so nothing is twice
    handed: int = 0
    floor: int = 0

    @property
    def allowance(self) -> int:
        return int(self.budget * self.final_samples)

    @property
    def total_spent(self) -> int:
        return sum(self.spent.values())

    def left(self) -> int:
        return self.allowance - self.handed - self.total_spent

    def affords(self, samples: int) -> bool:
        """Whether `samples` more fit in the allowance (an optional run asks before it runs)."""
        return self.total_spent + self.handed + samples <= self.allowance

    def affords_needed(self, samples: int) -> bool:
        """Whether a run a decision needs (the noise repeat) fits, using the samples held back
        for the final run if it must: those are only a reserve until the extension is decided."""
        return self.total_spent + samples <= self.allowance

    def charge(self, stage: str, samples: int, label: str) -> None:
        """Charge `samples` to `stage`, once per `label` (one measurement is paid once)."""
        if label in self.charged:
            return
        self.charged.add(label)
        self.spent[stage] = self.spent.get(stage, 0) + int(samples)

    def summary(self, final_samples_done: int | None = None) -> dict[str, Any]:
        """The account as ``plan.json`` keeps it: per stage, in all, and in final runs."""
        final = self.final_samples if final_samples_done is None else final_samples_done
        return {
            "budget": self.budget,
            "allowance_samples": self.allowance,
            "search_samples": self.total_spent,
            "search_samples_by_stage": dict(self.spent),
            "handed_to_final_run_samples": self.handed,
            "final_run_samples": final,
            "total_samples": self.total_spent + final,
            "x_final_run": round((self.total_spent + final) / max(1, self.final_samples), 3),
            **({"floor_samples": self.floor} if self.floor else {}),
        }


def size_short_runs(
    train_samples: int,
    epochs: int,
    batch_size: int,
    allowance: int,
    planned_runs: int,
    *,
    max_fraction: float,
    min_steps: int,
    can_subset: bool,
) -> ShortRunSize:
    """Each of `planned_runs` short runs gets an equal share of `allowance` (samples), at most
    `max_fraction` of the final run and at least `min_steps` updates (the floor may exceed the
    allowance: a short run shorter than that decides nothing). Whole epochs when a share holds
    one; otherwise one epoch over `train_fraction` of the training set (`can_subset`: a seeded
    subset of in-memory tensors or a ``Dataset``, the first batches of a loader factory's pass
    or of a stream's epoch: `subset_source`), or one whole epoch where the data cannot be cut
    (a loader of the user's own).

    Example:
        >>> size_short_runs(1000, 10, 16, 9000, 9, max_fraction=0.25, min_steps=50,
        ...                 can_subset=True)
        ShortRunSize(epochs=1, train_fraction=1.0, samples=1000)
        >>> size_short_runs(50000, 3, 128, 135000, 10, max_fraction=0.25, min_steps=50,
        ...                 can_subset=True)
        ShortRunSize(epochs=1, train_fraction=0.27, samples=13500)
    """
    final = train_samples * epochs
    share = min(allowance / max(1, planned_runs), max_fraction * final)
    share = max(share, min(final, min_steps * batch_size))
    whole = int(share // train_samples)
    if whole >= 1 or not can_subset:
        count = max(1, whole)
        return ShortRunSize(count, 1.0, count * train_samples)
    fraction = round(share / train_samples, 4)
    return ShortRunSize(1, fraction, math.ceil(fraction * train_samples))


def subset_source(source: DataSource, fraction: float, seed: int, batch_size: int) -> DataSource:
    """`source` cut to `fraction` of an epoch; unchanged at fraction 1 or where it cannot be cut.

    In-memory tensors and a ``Dataset``: a seeded subset of the samples. A loader factory and
    a stream: an epoch of that fraction of the batches (of `steps_per_epoch`, or of one pass of
    ``make_loader(batch_size)``), read from the start of a pass: the run stops after them and
    its 1cycle schedule spans them, so a short run over data that cannot be indexed still
    costs its share of the budget, not a whole epoch.
    """
    if fraction >= 1.0:
        return source
    generator = torch.Generator().manual_seed(seed)
    if source.kind in ("arrays", "dataset"):
        total = len(source.data)
        count = max(1, math.ceil(fraction * total))
        indices = torch.randperm(total, generator=generator)[:count]
        if source.kind == "arrays":
            return replace(source, data=source.data.subset(indices))
        return replace(source, data=Subset(source.data, indices.tolist()))
    if can_subset(source):  # a stream with steps_per_epoch, or a factory: bounded by steps
        # rounded down: the run processes at most the samples it is charged (under one batch less)
        steps = source.steps_per_epoch or len(source.loader(batch_size))
        return replace(source, steps_per_epoch=max(1, math.floor(fraction * steps)))
    return source


def can_subset(source: DataSource) -> bool:
    """Whether a short run can cover less than an epoch of `source` (`subset_source`)."""
    return source.kind in ("arrays", "dataset", "factory") or (
        source.kind == "stream" and source.steps_per_epoch is not None
    )


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a container's CPU quota
    (cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return max(1, cores)


def _cgroup_quota() -> float | None:
    """The CPU quota in cores, or None when there is none (or it cannot be read)."""
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def use_usable_cores() -> dict[str, int]:
    """Cap torch's threads at the usable cores (torch counts the machine's cores, not the
    process's share: on a busy or quota-limited machine that costs up to 40x, issue 16);
    returns what was used, for the report."""
    before, cores = torch.get_num_threads(), usable_cores()
    if before > cores:
        torch.set_num_threads(cores)
    return {
        "torch_threads": torch.get_num_threads(),
        "usable_cores": cores,
        "threads_before": before,
    }
