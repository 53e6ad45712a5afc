"""The 1cycle's rise as an LR range test that trains: ``fit_one_cycle(max_lr="search")``.

A range test before training costs its steps, and the short runs that check its pick cost
more (on the full CIFAR-10 the recipe's search by short runs cost about a run; docs/
benchmarks.md). Here the search is the run's own warm-up. The LR rises exponentially from
`start_lr` (a rise that would reach `end_lr` after `rise_fraction` of the run), as in the range
test (Smith, arXiv:1506.01186), but the network trains on: the steps before the edge are the
warm-up. The loss is smoothed as the range test smooths it (bias-corrected EMA, β 0.98). The
rise has passed the edge of stability when the smoothed loss is `rise` times its lowest value,
or, once it has fallen 5% below its first value, has made no new low for `patience` decades of
LR, or is not finite. Then ``max_lr`` is the LR of the lowest smoothed loss / `divisor` where
the loss turned up (or was not finite), and / (`divisor` x `plateau_factor`) where it went flat
(or the rise ended): a plateau's lowest point lies anywhere along its flat stretch, at LRs that
already harm the weights. The latest copy of the weights and optimizer state
taken at an LR at or below it comes back (copies are taken every `copy_decades` of LR, the last
`copies` kept, in CPU memory), and the rest of the run follows the 1cycle's descent from
``max_lr`` (Smith's: linearly to ``max_lr / min_lr_divisor``, then the annihilation to a
hundredth of that over the last `annihilation_fraction` of the run) with momentum rising from
low to high. The steps between the copy and the edge are lost: they stay in the history (their
losses and LRs) and count in the run's steps; the run's length does not change.

The search reads each step's loss (one device sync per step) until the edge, and nothing
after. Until the edge the search's rules judge the loss: the fit's stall check (an epoch's mean
loss 1.5x the best epoch's) waits for the epoch after the edge's. The `Trainer`'s checkpoints
saved before the edge carry the search's state and its copies (`copies_state`), so a resumed
search restores the copy an uninterrupted run would; the Lightning and Hugging Face callbacks'
checkpoints carry the state only: their resumed search restores the oldest copy taken since.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, fields
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Protocol, cast

import torch

from superconverge._checks import check_count, check_number
from superconverge._compare import gain, worse
from superconverge._environment import machine_memory
from superconverge._json import reject_unknown_keys
from superconverge._warnings import user_stacklevel, warn
from superconverge.finder.smoothing import LossSmoother
from superconverge.pytorch.distributed import world
from superconverge.pytorch.snapshot import TrainingSnapshot, training_state_nbytes
from superconverge.schedules.plans import Plan
from superconverge.schedules.primitives import Chain, Constant, Ramp

if TYPE_CHECKING:
    from superconverge.pytorch.scheduler import HyperparamScheduler
    from superconverge.training.history import History

logger = logging.getLogger(__name__)


class SearchHost(Protocol):
    """What the search reads of the fit that runs it (our `FitLoop`, or a Lightning or Hugging
    Face callback's stand-in): ``trainer`` with ``module``, ``optimizer``, ``scaler``,
    ``world_size``, ``rank`` and ``device``; the ``scheduler`` that sets each step's values;
    the ``history`` that takes the notes, the plan and the edge."""

    trainer: Any
    scheduler: HyperparamScheduler
    history: History


# no verdict before the smoothed loss has this many steps behind it (fewer on a short rise: a
# fifth of it, at least 5)
SETTLE_STEPS = 50
# fewer updates than this a decade of the rise (a run under ~330 updates at the defaults): the
# edge rests on a handful of losses, which the smoothing (time constant ~50 updates) blurs
FEW_STEPS_PER_DECADE = 20
# what the warning of a short rise advises, where a caller knows better (`short_search_advice`)
_SHORT_SEARCH_ADVICE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "short_search_advice", default=None
)


@contextlib.contextmanager
def short_search_advice(advice: str) -> Iterator[None]:
    """Inside it, a search whose rise has too few updates advises `advice` (``{enough}``: the
    updates that would do): `tune` chose the batch itself, so "a smaller batch" or "pass a
    max_lr" are not the user's to follow there (two users' checks)."""
    token = _SHORT_SEARCH_ADVICE.set(advice)
    try:
        yield
    finally:
        _SHORT_SEARCH_ADVICE.reset(token)


FINAL_DIVISOR = 100.0  # the annihilation ends at min_lr / this (smith_one_cycle's default)
# the patience rule waits until the smoothed loss has fallen this fraction below its first
# settled value: at the rise's low start a loss may stay flat for decades (SGD from 1e-4), and
# that is not the edge
FALL = 0.05


@dataclass(frozen=True)
class EdgeSettings:
    """The search's constants (measured in docs/benchmarks.md, "The LR search inside the final
    run")."""

    start_lr: float = 1e-4
    end_lr: float = 10.0
    rise_fraction: float = 0.3  # the rise's share of the run, were it to reach end_lr
    rise: float = 1.1  # the smoothed loss this many times its lowest: past the edge
    patience: float = 0.5  # decades of LR without a new lowest smoothed loss: past the edge
    # max_lr = the LR of the lowest smoothed loss / divisor where the loss turned up, and
    # / (divisor x plateau_factor) where it went flat (docs/benchmarks.md, "The divisor" and "The
    # edge's kind"): every CIFAR-10 edge was a plateau, where / 6 beat / 4 and / 10 on every
    # seed; every MNIST, SST-2 and digits edge turned up, where / 3 had a lower validation loss
    # than / 6 on 28 of 30 seeds
    divisor: float = 3.0
    plateau_factor: float = 2.0
    min_lr_divisor: float = 10.0  # the descent ends at max_lr / this (Smith: 10 to 20)
    annihilation_fraction: float = 0.137  # smith_one_cycle's
    copy_decades: float = 0.1  # a copy of the weights each this many decades of LR
    copies: int = 12  # copies kept at least (the span below makes it 15 at the defaults)
    # the copies take at most this share of the machine's memory (capped by its control
    # groups' limits; shared by the DDP ranks on one machine): fewer are kept, further apart,
    # where more would not fit (a large model under AdamW), none where fewer than two fit
    copy_memory: float = 0.25

    def __post_init__(self) -> None:
        for name in ("start_lr", "end_lr", "rise_fraction", "patience", "divisor",
                     "plateau_factor", "min_lr_divisor", "annihilation_fraction", "copy_decades",
                     "copy_memory"):  # fmt: skip
            if check_number(name, getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.end_lr <= self.start_lr:
            raise ValueError(
                f"end_lr must be > start_lr, got end_lr={self.end_lr!r}, start_lr={self.start_lr!r}"
            )
        if self.rise_fraction >= 1 or self.annihilation_fraction >= 1 or self.copy_memory > 1:
            raise ValueError(
                "rise_fraction and annihilation_fraction must be < 1 and copy_memory <= 1, got "
                f"{self.rise_fraction!r}, {self.annihilation_fraction!r} and "
                f"{self.copy_memory!r}"
            )
        if check_number("rise", self.rise) <= 1:
            raise ValueError(f"rise must be > 1, got {self.rise!r}")
        if self.plateau_factor < 1:
            raise ValueError(f"plateau_factor must be >= 1, got {self.plateau_factor!r}")
        check_count("copies", self.copies)


def search_constants(settings: EdgeSettings | None) -> dict[str, float | int]:
    """Every constant of `settings` (None: the defaults), as a plan records them: all of them,
    so that a plan re-runs the same search after a default changes.

    Example:
        >>> search_constants(EdgeSettings(divisor=10))["divisor"]
        10
    """
    return {f.name: getattr(settings or EdgeSettings(), f.name) for f in fields(EdgeSettings)}


# the constants a search recorded before they existed, at the value that searched as it did
# then (a plan or a checkpoint of before 2026-12-04 divided every edge by one divisor)
EARLIER_CONSTANTS: dict[str, float] = {"plateau_factor": 1.0}


def search_from_constants(values: dict[str, Any], what: str = "search") -> EdgeSettings:
    """The `EdgeSettings` of recorded constants (`search_constants`; those missing take their
    defaults, but for `EARLIER_CONSTANTS`: a record without them was made before they existed);
    a ValueError names an unknown constant or a bad value."""
    reject_unknown_keys(values, [f.name for f in fields(EdgeSettings)], f"constants in {what}")
    try:
        return EdgeSettings(**{**EARLIER_CONSTANTS, **values})
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what}: {error}") from None


def changed_constants(saved: Any, given: EdgeSettings | None) -> list[str]:
    """The constants a resumed search's checkpoint (`saved`: its state's ``settings``) holds
    other than those `given` now (None: the defaults), as ``"name X (the checkpoint's Y)"``: a
    resumed search goes on with the checkpoint's (a reviewer's check: a resume with
    ``search=EdgeSettings(divisor=10)`` searched at 3 without a word)."""
    if not isinstance(saved, dict):
        return []
    try:
        used = search_constants(search_from_constants(saved, "the checkpoint's search"))
    except ValueError:
        return []
    wanted = search_constants(given)
    return [f"{name} {wanted[name]!r} (the checkpoint's {used[name]!r})"
            for name in wanted if wanted[name] != used[name]]  # fmt: skip


def largest_divisor(settings: EdgeSettings) -> float:
    """What a plateau's lowest-loss LR is divided by (the most any edge's is)."""
    return settings.divisor * settings.plateau_factor


def check_edge_settings(value: object, name: str = "search") -> None:
    """`value` is an `EdgeSettings` or None; else a TypeError naming `name`."""
    if value is not None and not isinstance(value, EdgeSettings):
        raise TypeError(
            f"{name} must be an EdgeSettings (superconverge.training.EdgeSettings) or None, got "
            f"{type(value).__name__}"
        )


def search_host(scheduler: Any, history: History, **trainer: Any) -> SearchHost:
    """A front end's stand-in for the fit the search reads (`SearchHost`): its `scheduler`,
    the `history` that takes the notes, and ``trainer`` with ``module``, ``optimizer``,
    ``scaler``, ``world_size``, ``rank`` and ``device``."""
    return cast(
        SearchHost,
        SimpleNamespace(trainer=SimpleNamespace(**trainer), scheduler=scheduler, history=history),
    )


def check_search_request(max_lr: object, search: object, front: str, given: str, sets: str) -> bool:
    """A front end's arguments (Lightning's `OneCycle`, Hugging Face's `OneCycleTrainer`):
    whether `max_lr` asks for the in-run search. Raises when the search's settings are not an
    `EdgeSettings`, come with a max_lr of its own, or when `max_lr` is another string; and,
    with the search, when `given` names settings the search `sets` itself."""
    check_edge_settings(search)
    if not isinstance(max_lr, str):
        if search is not None:
            raise ValueError(
                f"search sets the constants of max_lr='search'; got it with max_lr={max_lr!r}"
            )
        return False
    if max_lr != "search":
        raise TypeError(
            f"max_lr must be a finite number > 0, None (a range test first) or 'search' (the "
            f"rise searches it), got {max_lr!r}"
        )
    if given:
        raise ValueError(
            f"{front}(max_lr='search') sets {sets} from what it finds; leave {given} unset"
        )
    return True


def local_ranks(world_size: int) -> int:
    """The ranks sharing this machine: torchrun's ``LOCAL_WORLD_SIZE``, else (not said) all of
    `world_size`, the cautious guess."""
    if world_size <= 1:
        return 1
    try:
        return max(1, min(world_size, int(os.environ["LOCAL_WORLD_SIZE"])))
    except (KeyError, ValueError):
        return world_size


def copies_that_fit(
    nbytes: int, memory: int | None, share: float, wanted: int, ranks: int = 1
) -> int:
    """How many copies of `nbytes` each of `ranks` processes may keep in `share` of `memory`
    (None: unknown, no cap), at most `wanted`; 0 where fewer than 2 fit."""
    if memory is None or nbytes <= 0:
        return wanted
    fits = min(wanted, int(share * memory / ranks // nbytes))
    return fits if fits >= 2 else 0


class EdgeSearch:
    """The state of one run's search (see the module's docstring): the rise's plan, the
    smoothed loss, its lowest value and LR, the copies, and once found the edge."""

    def __init__(
        self,
        total_steps: int,
        momentum: tuple[float, float] | None = (0.95, 0.85),
        settings: EdgeSettings | None = None,
        *,
        warn_short: bool = True,
    ) -> None:
        self.settings = settings = settings or EdgeSettings()
        self.total_steps = check_count("total_steps", total_steps, minimum=4)
        self.momentum = None if momentum is None else (float(momentum[0]), float(momentum[1]))
        self.rise_steps = max(2, round(settings.rise_fraction * total_steps))
        decades = math.log10(settings.end_lr / settings.start_lr)
        self.steps_per_decade = self.rise_steps / decades
        # said once, by rank 0 (each rank of a torchrun said it: a user's check)
        if warn_short and self.steps_per_decade < FEW_STEPS_PER_DECADE and world()[0] == 0:
            enough = math.ceil(FEW_STEPS_PER_DECADE * decades / settings.rise_fraction)
            advice = _SHORT_SEARCH_ADVICE.get() or (
                "give the run at least {enough} updates (more epochs or a smaller batch), or "
                "pass a max_lr (a range test's)"
            )
            warn(
                f"max_lr='search' on a run of {total_steps} optimizer updates: the LR's rise "
                f"has {self.steps_per_decade:.1f} updates a decade of LR (from "
                f"{settings.start_lr:g} to {settings.end_lr:g}), so the edge it finds rests on "
                f"a handful of losses; {advice.format(enough=enough)}",
                stacklevel=user_stacklevel(),
                key=("short search", total_steps),
            )
        self.patience_steps = max(1, round(settings.patience * self.steps_per_decade))
        self.copy_every = max(1, round(settings.copy_decades * self.steps_per_decade))
        self.settle_steps = min(SETTLE_STEPS, max(5, self.rise_steps // 5))
        # copies kept: at least 1.2 decades of them (the peak lies up to log10(divisor x
        # plateau_factor) + patience decades below the edge), whatever the rounding of
        # `copy_every`
        decades = math.log10(largest_divisor(settings)) + settings.patience + 0.2
        self.span_steps = decades * self.steps_per_decade  # the LRs the copies must cover
        self.copies_kept = max(settings.copies, math.ceil(self.span_steps / self.copy_every))
        self._sized = False  # the copies' count checked against the memory (at the first)
        self.smoother = LossSmoother()  # the range test's moving average (not its rule)
        self.lowest, self.lowest_lr, self.lowest_step = math.inf, math.nan, -1
        self.first = math.nan  # the smoothed loss when it settled
        self.edge: dict[str, Any] | None = None  # what was found, once found
        self._copies: list[tuple[int, float, TrainingSnapshot]] = []
        self._saved_copies: list[dict[str, Any]] = []  # a checkpoint's, until the first step

    @property
    def searching(self) -> bool:
        return self.edge is None

    def rise_plan(self) -> Plan:
        """The plan until the edge: the exponential rise (held at `end_lr` past its end, which
        the search never reaches: it ends the rise there), momentum at the middle of its
        range."""
        settings = self.settings
        rise = Ramp(settings.start_lr, settings.end_lr, self.rise_steps, "exponential")
        return Plan(
            Chain((rise, Constant(settings.end_lr))),
            None if self.momentum is None else Constant(sum(self.momentum) / 2),
            self.total_steps,
            None,
            "one_cycle_search",
        )

    def lr_at(self, step: int) -> float:
        settings = self.settings
        return float(
            settings.start_lr * (settings.end_lr / settings.start_lr) ** (step / self.rise_steps)
        )

    def observe(self, fit: SearchHost, step: int, loss: float) -> bool:
        """Step `step` (made at the rise's LR) had `loss`; True when it found the edge, after
        restoring a copy and giving the fit's scheduler the descent."""
        if self._saved_copies:  # a resumed search: the copies its checkpoint holds
            trainer = fit.trainer
            self._copies = [
                (int(saved["step"]), float(saved["lr"]), TrainingSnapshot.from_values(
                    saved["values"], trainer.module, trainer.optimizer, trainer.scaler))
                for saved in self._saved_copies
            ]  # fmt: skip
            self._saved_copies = []
        lr = self.lr_at(step)
        finite = math.isfinite(loss)
        smoothed = math.nan
        if finite:
            smoothed = self.smoother.add(loss)
            if self.smoother.count == self.settle_steps:
                self.first = smoothed
            if self.smoother.count >= self.settle_steps and smoothed < self.lowest:
                self.lowest, self.lowest_lr, self.lowest_step = smoothed, lr, step
        settled = self.smoother.count >= self.settle_steps and math.isfinite(self.lowest)
        why, flat = None, False
        if not finite:
            why = f"the loss was {loss} at lr {lr:.3g}"
        elif settled and worse(smoothed, self.lowest, self.settings.rise):
            why = (f"the smoothed loss rose to {smoothed / self.lowest:.2f}x its lowest "
                   f"({self.lowest:.4g} at lr {self.lowest_lr:.3g}) at lr {lr:.3g}")  # fmt: skip
        elif (
            settled
            and gain(self.lowest, self.first) >= FALL
            and step - self.lowest_step >= self.patience_steps
        ):
            why = (f"the smoothed loss made no new low for {self.settings.patience:g} decades "
                   f"of LR (its lowest {self.lowest:.4g} at lr {self.lowest_lr:.3g})")  # fmt: skip
            flat = True
        elif step + 1 >= self.rise_steps:
            why = f"the rise reached its end ({lr:.3g}) with the loss still falling"
            flat = True
        if why is None:
            # a copy each `copy_every` steps, and at the first step of a fit (a resumed one
            # too where its checkpoint held no copies: Lightning's, Hugging Face's)
            if step % self.copy_every == 0 or not self._copies:
                self._take_copy(fit, step, lr)
            return False
        self._found(fit, step, lr, why, flat)
        return True

    def _take_copy(self, fit: SearchHost, step: int, lr: float) -> None:
        trainer = fit.trainer
        if not self._sized:  # sized before the first copy is made: none where none fits
            self._sized = True
            nbytes = training_state_nbytes(
                trainer.module, trainer.optimizer, trainer.scaler, grads=False
            )
            self._size_copies(fit, nbytes, machine_memory())
        if self.copies_kept == 0:
            return
        # after an optimizer step: its gradients are spent (Lightning and HF keep them until
        # the next step, which replaces them), so a copy holds none
        snapshot = TrainingSnapshot(
            trainer.module, trainer.optimizer, trainer.scaler, rng=False, grads=False
        )
        self._copies.append((step, lr, snapshot))
        del self._copies[: -self.copies_kept]

    def _size_copies(self, fit: SearchHost, nbytes: int, memory: int | None) -> None:
        """Keep as many copies as fit in `copy_memory` of the machine's `memory`, each `nbytes`
        (under DDP the ranks on one machine share it: each gets its part): where fewer fit than
        the span of LRs needs, they are taken further apart so that the oldest still lies the
        span back (the restored copy lies up to one spacing below max_lr: more steps lost); none
        where fewer than two fit (one copy cannot both trail the edge and cover the span: the
        descent then starts from the edge's weights). Every rank keeps the same count (the
        fewest any rank can hold), so that every rank restores the same step."""
        trainer = fit.trainer
        fits = copies_that_fit(nbytes, memory, self.settings.copy_memory, self.copies_kept,
                               local_ranks(trainer.world_size))  # fmt: skip
        if trainer.world_size > 1:
            count = torch.tensor([fits], dtype=torch.float64, device=trainer.device)
            torch.distributed.all_reduce(count, op=torch.distributed.ReduceOp.MIN)
            fits = int(count.item())
        if fits >= self.copies_kept:
            return
        self.copies_kept = fits
        if fits:
            self.copy_every = max(self.copy_every, math.ceil(self.span_steps / (fits - 1)))
            what = (f"{fits} copies of the weights, one each "
                    f"{self.copy_every / self.steps_per_decade:.2g} decades of LR")  # fmt: skip
        else:
            what = "no copies of the weights: the descent starts from the edge's weights"
        note = (f"LR search: {what} (a copy is {nbytes / 2**20:.3g} MiB; copy_memory "
                f"{self.settings.copy_memory:g} of the machine's memory allows no more)")  # fmt: skip
        fit.history.notes.append(note)
        if trainer.rank == 0:
            logger.warning(note)

    def _found(self, fit: SearchHost, step: int, lr: float, why: str, flat: bool) -> None:
        settings = self.settings
        peak_lr = self.lowest_lr if math.isfinite(self.lowest_lr) else lr
        divisor = largest_divisor(settings) if flat else settings.divisor
        max_lr = peak_lr / divisor
        below = [c for c in self._copies if c[1] <= max_lr]
        copy = below[-1] if below else (self._copies[0] if self._copies else None)
        if copy is not None:
            copy[2].restore_training_state()
            if not below:  # the edge came later than the copies reach back (a slow rise)
                fit.history.notes.append(
                    f"LR search: no copy at or below max_lr {max_lr:.3g} was kept; restored the "
                    f"oldest, taken at LR {copy[1]:.3g}"
                )
        restored = None if copy is None else copy[0]
        self._copies = []
        done = step + 1  # steps made, this one included: the descent starts at the next
        plan = self.descent_plan(done, max_lr)
        fit.scheduler.plan = plan
        fit.history.plan = plan.to_dict()
        # the next step's values (a scheduler whose state holds more, a front end's, keeps it)
        fit.scheduler.load_state_dict({"step_count": fit.scheduler.step_count})
        self.edge = {
            "step": step,
            "lr": lr,
            "lowest_lr": peak_lr,
            "max_lr": max_lr,
            "restored_step": restored,
            "lost_steps": 0 if restored is None else step - restored,
            "why": why,
            "divisor": divisor,
        }
        fit.history.lr_search = dict(self.edge)
        fit.history.notes.append(self.note())

    def note(self) -> str:
        edge = self.edge
        assert edge is not None
        back = (
            "no copy to restore"
            if edge["restored_step"] is None
            else f"restored the weights of step {edge['restored_step']} "
            f"({edge['lost_steps']} steps lost)"
        )
        # an edge recorded before it held its divisor was divided by the settings' one
        divisor = edge.get("divisor", self.settings.divisor)
        return (
            f"LR search: {edge['why']} (step {edge['step']}); max_lr {edge['max_lr']:.3g} "
            f"(the lowest loss's LR / {divisor:g}); {back}; the cycle descends from there"
        )

    def descent_plan(self, done: int, max_lr: float) -> Plan:
        """The whole run's plan once the edge is found after `done` steps: the rise as it ran
        (steps 0 to done - 1), then Smith's descent from `max_lr` (step `done`) and the
        annihilation over the steps left; the run's last step ends it."""
        settings = self.settings
        left = self.total_steps - done
        annihilation = min(round(settings.annihilation_fraction * self.total_steps), left // 2)
        descent = max(1, left - annihilation)
        low = max_lr / settings.min_lr_divisor
        # a `Chain` gives a step on a boundary to the earlier phase: the rise's phase ends on
        # step done - 1, and each later phase starts one step into its ramp
        lr: list[Any] = [Ramp(max_lr, low, descent)]
        if annihilation > 0:
            lr.append(Ramp(low, low / FINAL_DIVISOR, annihilation))
        momentum: list[Any] = []
        if self.momentum is not None:
            high, low_m = self.momentum
            momentum = [Ramp(low_m, high, descent), Constant(high)]
        if done >= 2:
            lr.insert(
                0, Ramp(self.settings.start_lr, self.lr_at(done - 1), done - 1, "exponential")
            )
            if momentum:
                momentum.insert(0, Constant(sum(self.momentum or (0, 0)) / 2, done - 1))
        return Plan(
            Chain(tuple(lr)),
            Chain(tuple(momentum)) if momentum else None,
            self.total_steps,
            max_lr,
            "one_cycle_search",
        )

    # ----------------------------------------------------------------- checkpoints
    def copies_state(self) -> list[dict[str, Any]]:
        """The copies of the weights and optimizer state the search may still restore (none
        once the edge is found), as CPU tensors for the `Trainer`'s checkpoint: ``from_state(...,
        copies=...)`` takes them back, and the resumed search restores what an uninterrupted
        one would (a user's check: resumed before the edge, it restored step 162's weights where
        the uninterrupted run restored step 150's). The lowest loss's LR only rises, so max_lr
        never falls below its value / divisor now: copies older than the last one at or below
        that are never restored and are left out."""
        copies = self._copies
        if math.isfinite(self.lowest_lr):
            floor = self.lowest_lr / largest_divisor(self.settings)
            below = [i for i, (_, lr, _) in enumerate(copies) if lr <= floor]
            if below:
                copies = copies[below[-1] :]
        return [
            {"step": step, "lr": lr, "values": snapshot.values()} for step, lr, snapshot in copies
        ]

    def state_dict(self) -> dict[str, Any]:
        """Everything but the copies (`copies_state`; see the module's docstring)."""
        return {
            "total_steps": self.total_steps,
            "momentum": None if self.momentum is None else list(self.momentum),
            "settings": {k: getattr(self.settings, k) for k in EdgeSettings.__dataclass_fields__},
            "average": self.smoother.average,
            "count": self.smoother.count,
            "lowest": self.lowest,
            "lowest_lr": self.lowest_lr,
            "lowest_step": self.lowest_step,
            "first": self.first,
            "edge": self.edge,
            "copies_kept": self.copies_kept,
            "copy_every": self.copy_every,  # as the memory sized them (`_size_copies`)
            "sized": self._sized,
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], copies: list[dict[str, Any]] | None = None
    ) -> EdgeSearch:
        """The search `state_dict` saved, with the `copies` `copies_state` saved beside it
        (restored over the fit's model and optimizer at its first step)."""
        momentum = state.get("momentum")
        search = cls(
            int(state["total_steps"]),
            None if momentum is None else (float(momentum[0]), float(momentum[1])),
            search_from_constants(state["settings"], "the checkpoint's search"),
            warn_short=False,  # said when the search started
        )
        search.smoother.average = float(state["average"])
        search.smoother.count = int(state["count"])
        search.lowest, search.lowest_lr = float(state["lowest"]), float(state["lowest_lr"])
        search.lowest_step, search.edge = int(state["lowest_step"]), state["edge"]
        search.first = float(state.get("first", math.nan))
        if "copies_kept" in state:  # as the memory sized them (a checkpoint before: re-sized)
            search.copies_kept, search._sized = int(state["copies_kept"]), bool(state["sized"])
            # a reviewer's check: 4 copies fitting, the resumed search took them at the
            # settings' spacing and restored step 43's weights for step 35's
            search.copy_every = int(state.get("copy_every", search.copy_every))
        search._saved_copies = list(copies or [])
        return search
