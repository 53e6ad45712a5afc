"""Learning-rate and momentum plans: the policies users ask for by name.

A `Plan` pairs an LR schedule with an optional momentum schedule. The functions here build the
plans of the papers and of the libraries users know, in absolute values (`min_lr`, `max_lr`,
`final_lr`); each docstring states which convention its defaults follow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from superconverge._checks import (
    check_choice,
    check_count,
    check_flag,
    check_momentum,
    check_not_above,
    check_number,
    check_open_fraction,
    check_positive,
    plain_arguments,
)
from superconverge.schedules.primitives import (
    CYCLIC_MODES,
    Chain,
    Constant,
    Cyclic,
    Piecewise,
    Ramp,
    Schedule,
)

ONE_CYCLE_SHAPES = ("cosine", "linear")

# fastai's fit_one_cycle defaults: div=25, div_final=1e5 (both relative to the peak), pct_start=0.25
FASTAI_DIV = 25.0
FASTAI_DIV_FINAL = 1e5
# torch's OneCycleLR defaults: div_factor=25 (peak / start), final_div_factor=1e4 (start / end)
TORCH_DIV = 25.0
TORCH_FINAL_DIV = 1e4
# arXiv:1803.09820 §4.1: for one cycle the minimum LR can be 1/10 to 1/20 of the maximum
SMITH_MIN_DIV = 10.0
# "annihilation": the last part of training, with the LR falling orders of magnitude below min_lr
SMITH_FINAL_DIV = 100.0
# share of training given to annihilation in the author's published runs (about 13.7%)
SMITH_ANNIHILATION_FRACTION = 0.137


@dataclass(frozen=True)
class Plan:
    """What to set before each optimizer update: `lr(step)` and, if cycled, `momentum(step)`.

    Attributes:
        lr: the learning-rate schedule.
        momentum: the momentum schedule (SGD momentum, Adam's beta1), or None to leave it alone.
        total_steps: steps the plan was built for; past them the values are held. None: no end.
        max_lr: the peak learning rate; per-group LRs are given relative to it.
        policy: the name of the function that built the plan, for reports.
    """

    lr: Schedule
    momentum: Schedule | None = None
    total_steps: int | None = None
    max_lr: float | None = None
    policy: str = "custom"

    def __post_init__(self) -> None:
        if not isinstance(self.lr, Schedule):
            raise TypeError(f"lr must be a Schedule, got {self.lr!r}")
        if self.momentum is not None and not isinstance(self.momentum, Schedule):
            raise TypeError(f"momentum must be a Schedule or None, got {self.momentum!r}")
        if self.total_steps is not None:  # as Python numbers, for to_json (np.int64 too)
            object.__setattr__(self, "total_steps", check_count("total_steps", self.total_steps))
        if self.max_lr is not None:
            object.__setattr__(self, "max_lr", check_positive("max_lr", self.max_lr))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict; `Plan.from_dict` rebuilds an equal plan."""
        return {
            "policy": self.policy,
            "total_steps": self.total_steps,
            "max_lr": self.max_lr,
            "lr": self.lr.to_dict(),
            "momentum": None if self.momentum is None else self.momentum.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Rebuild a plan from `to_dict()` output; unknown keys are rejected by name."""
        unknown = sorted(set(data) - {"policy", "total_steps", "max_lr", "lr", "momentum"})
        if unknown:
            raise ValueError(f"unknown plan settings: {unknown}")
        if "lr" not in data:
            raise ValueError("a plan dict needs an 'lr' schedule")
        momentum = data.get("momentum")
        return cls(
            lr=Schedule.from_dict(data["lr"]),
            momentum=None if momentum is None else Schedule.from_dict(momentum),
            total_steps=data.get("total_steps"),
            max_lr=data.get("max_lr"),
            policy=data.get("policy", "custom"),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls.from_dict(json.loads(text))

    def values(self, steps: int | None = None) -> tuple[list[float], list[float] | None]:
        """The LR and momentum of steps 0..steps-1 (default: the plan's `total_steps`)."""
        count = self.total_steps if steps is None else check_count("steps", steps)
        if count is None:
            raise ValueError("steps must be given for a plan without total_steps")
        lrs = [self.lr(step) for step in range(count)]
        moms = None if self.momentum is None else [self.momentum(s) for s in range(count)]
        return lrs, moms


def _check_peak(max_lr: object) -> float:
    """The plan's one peak LR; per-group peaks (torch's ``OneCycleLR(max_lr=[...])``, fastai's
    ``slice``) are named with where they go: a plan scales every group from one peak."""
    if isinstance(max_lr, (list, tuple, slice)):
        raise TypeError(
            f"max_lr must be a number, the plan's peak, got {max_lr!r}; per-group peaks go to "
            "HyperparamScheduler(optimizer, plan, max_lr=...) or Trainer.fit_one_cycle(epochs, "
            "max_lr=...), which scale the plan per param group"
        )
    if max_lr is None:  # a range test that found no LR (`result.max_lr`), passed on as it is
        raise TypeError(
            "max_lr must be a number, got None: a range test that found no LR returns "
            "max_lr=None (its .reason says why; its .plot() shows the curve): pass an LR"
        )
    return check_positive("max_lr", max_lr)


def _lr_bounds(
    max_lr: object,
    min_lr: object,
    final_lr: object,
    min_div: float,
    final_div: float,
    final_from_peak: bool = False,
) -> tuple[float, float, float]:
    """Validate the three LRs and fill defaults: ``min = max / min_div`` and
    ``final = min / final_div`` (torch, the paper) or ``max / final_div`` (fastai)."""
    peak = _check_peak(max_lr)
    low = peak / min_div if min_lr is None else check_positive("min_lr", min_lr)
    default_final = (peak if final_from_peak else low) / final_div
    final = default_final if final_lr is None else check_positive("final_lr", final_lr)
    check_not_above("min_lr", low, "max_lr", peak)
    check_not_above("final_lr", final, "min_lr", low)
    return peak, low, final


def _too_few_steps(total_steps: int, detail: str) -> ValueError:
    return ValueError(f"total_steps={total_steps} is too few steps for the phases: {detail}")


@plain_arguments
def one_cycle(
    total_steps: int,
    max_lr: float,
    *,
    min_lr: float | None = None,
    final_lr: float | None = None,
    warmup_fraction: float = 0.3,
    shape: str = "cosine",
    three_phase: bool = False,
    momentum: tuple[float, float] | None = (0.95, 0.85),
) -> Plan:
    """The 1cycle policy with the values of ``torch.optim.lr_scheduler.OneCycleLR``.

    ``plan.lr(k)`` equals the optimizer's LR after k steps of ``OneCycleLR(max_lr=max_lr,
    total_steps=total_steps, pct_start=warmup_fraction, div_factor=max_lr / min_lr,
    final_div_factor=min_lr / final_lr, three_phase=three_phase)``. As in torch, the warm-up ends
    at step ``warmup_fraction * total_steps - 1`` and the last step (``total_steps - 1``) reaches
    `final_lr`. Defaults follow torch: ``min_lr = max_lr / 25``, ``final_lr = min_lr / 1e4``.
    Momentum runs high → low while the LR rises, then back (arXiv:1803.09820 §3.3).
    With `three_phase`, the LR climbs, falls back to `min_lr` symmetrically, then anneals to
    `final_lr` (momentum held high in the last phase).

    Args:
        total_steps: optimizer updates in the whole run (>= 2).
        max_lr: the peak LR.
        min_lr: the LR at step 0 (and, with three_phase, at the end of the cycle).
        final_lr: the LR at the last step.
        warmup_fraction: share of steps spent rising, in (0, 1); (0, 0.5) with three_phase.
        shape: ``"cosine"`` or ``"linear"`` interpolation inside each phase.
        three_phase: torch's three-phase variant (fastai v1 style) instead of two phases.
        momentum: ``(high, low)`` or None to leave momentum alone.

    Returns:
        A `Plan` with ``policy="one_cycle"``.

    Raises:
        ValueError: a value outside what is allowed; the message names the parameter.

    Example:
        >>> plan = one_cycle(100, max_lr=1.0)
        >>> round(plan.lr(0), 6), round(plan.lr(29), 6), plan.lr(99)
        (0.04, 1.0, 4e-06)
    """
    check_count("total_steps", total_steps, minimum=2)
    peak, low, final = _lr_bounds(max_lr, min_lr, final_lr, TORCH_DIV, TORCH_FINAL_DIV)
    check_choice("shape", shape, ONE_CYCLE_SHAPES)
    upper = 0.5 if check_flag("three_phase", three_phase) else 1.0
    check_open_fraction("warmup_fraction", warmup_fraction, upper=upper)
    moms = check_momentum(momentum)
    ramp_shape = "cosine" if shape == "cosine" else "linear"

    # phase ends as in torch: pct * total - 1, then 2 * pct * total - 2, then total - 1
    warmup_end = float(warmup_fraction * total_steps) - 1
    last = float(total_steps - 1)
    if three_phase:
        ends = [warmup_end, float(2 * warmup_fraction * total_steps) - 2, last]
        lr_points = [low, peak, low, final]
    else:
        ends = [warmup_end, last]
        lr_points = [low, peak, final]
    lengths = [ends[0]] + [ends[i] - ends[i - 1] for i in range(1, len(ends))]
    if min(lengths) <= 0:
        raise _too_few_steps(
            total_steps,
            f"warmup_fraction={warmup_fraction} gives phases of {[round(n, 3) for n in lengths]} "
            "steps; every phase must be longer than 0 steps, so use more steps or a larger "
            "fraction",
        )
    lr = Chain(
        tuple(
            Ramp(lr_points[i], lr_points[i + 1], lengths[i], ramp_shape) for i in range(len(ends))
        )
    )
    momentum_schedule: Schedule | None = None
    if moms is not None:
        high, low_m = moms
        mom_points = [high, low_m, high, high] if three_phase else [high, low_m, high]
        momentum_schedule = Chain(
            tuple(
                Ramp(mom_points[i], mom_points[i + 1], lengths[i], ramp_shape)
                for i in range(len(ends))
            )
        )
    return Plan(lr, momentum_schedule, total_steps, peak, "one_cycle")


@plain_arguments
def smith_one_cycle(
    total_steps: int,
    max_lr: float,
    *,
    min_lr: float | None = None,
    final_lr: float | None = None,
    annihilation_fraction: float = SMITH_ANNIHILATION_FRACTION,
    momentum: tuple[float, float] | None = (0.95, 0.85),
) -> Plan:
    """The 1cycle policy as the paper defines it (Smith, arXiv:1803.09820 §4.1).

    One cycle of two equal linear halves, `min_lr` → `max_lr` → `min_lr`, then a linear
    *annihilation* from `min_lr` to `final_lr` over the last `annihilation_fraction` of training.
    Step 0 uses `min_lr`; the peak falls on step ``h = round((total_steps - 1) * (1 -
    annihilation_fraction) / 2)``, the cycle ends on step ``2h``, and the last step
    (``total_steps - 1``) uses `final_lr`. Momentum runs
    high → low → high over the cycle and is held high during annihilation.

    Defaults: ``min_lr = max_lr / 10`` (the paper: 1/10 to 1/20 of the maximum for one cycle),
    ``final_lr = min_lr / 100`` (the paper: "several orders of magnitude less"),
    ``annihilation_fraction = 0.137`` (about the share the author's runs gave it).

    Args:
        total_steps: optimizer updates in the whole run (>= 4).
        max_lr: the peak LR, reached at the middle of the cycle.
        min_lr: the LR at the start and at the end of the cycle.
        final_lr: the LR at the last step.
        annihilation_fraction: share of the run spent annihilating, in (0, 1).
        momentum: ``(high, low)`` or None to leave momentum alone.

    Returns:
        A `Plan` with ``policy="smith_one_cycle"``.

    Raises:
        ValueError: a value outside what is allowed; the message names the parameter.

    Example:
        >>> plan = smith_one_cycle(11, max_lr=1.0, annihilation_fraction=0.2)
        >>> [round(plan.lr(k), 4) for k in (0, 4, 8, 10)]
        [0.1, 1.0, 0.1, 0.001]
    """
    check_count("total_steps", total_steps, minimum=4)
    peak, low, final = _lr_bounds(max_lr, min_lr, final_lr, SMITH_MIN_DIV, SMITH_FINAL_DIV)
    fraction = check_open_fraction("annihilation_fraction", annihilation_fraction)
    moms = check_momentum(momentum)
    span = total_steps - 1  # from step 0 to the last step
    # whole-step phases, so that the peak and the end of the cycle fall on real steps
    half = round(span * (1.0 - fraction) / 2.0)
    if span - 2 * half < 1:  # a short run still gets one step of annihilation
        half = (span - 1) // 2
    annihilation = span - 2 * half
    if half < 1:
        raise _too_few_steps(
            total_steps,
            f"annihilation_fraction={annihilation_fraction} leaves half-cycles of {half} and an "
            f"annihilation of {annihilation} steps; each needs at least 1 step, so use more "
            "steps or a smaller fraction",
        )
    lr = Chain((Ramp(low, peak, half), Ramp(peak, low, half), Ramp(low, final, annihilation)))
    momentum_schedule: Schedule | None = None
    if moms is not None:
        high, low_m = moms
        momentum_schedule = Chain(
            (Ramp(high, low_m, half), Ramp(low_m, high, half), Constant(high, annihilation))
        )
    return Plan(lr, momentum_schedule, total_steps, peak, "smith_one_cycle")


@plain_arguments
def fastai_one_cycle(
    total_steps: int,
    max_lr: float,
    *,
    min_lr: float | None = None,
    final_lr: float | None = None,
    warmup_fraction: float = 0.25,
    momentum: tuple[float, float] | None = (0.95, 0.85),
) -> Plan:
    """The curve of fastai's ``Learner.fit_one_cycle``.

    fastai evaluates ``combined_cos(pct_start, max/div, max, max/div_final)`` at the training
    position ``k / total_steps`` before update k: two cosine phases split at `warmup_fraction`
    of the run. Defaults follow fastai, relative to the peak (unlike torch):
    ``min_lr = max_lr / 25`` (``div``) and ``final_lr = max_lr / 1e5`` (``div_final``), and
    ``warmup_fraction = 0.25`` (``pct_start``). Because the position never reaches 1 during
    training, the last update uses slightly more than `final_lr`, as in fastai. Momentum
    follows ``moms=(0.95, 0.85, 0.95)``.

    Args:
        total_steps: optimizer updates in the whole run (>= 2).
        max_lr: the peak LR.
        min_lr: the LR at step 0.
        final_lr: the LR the curve ends at (position 1).
        warmup_fraction: fastai's ``pct_start``, in (0, 1).
        momentum: ``(high, low)`` or None to leave momentum alone.

    Returns:
        A `Plan` with ``policy="fastai_one_cycle"``.

    Example:
        >>> plan = fastai_one_cycle(100, max_lr=1.0)
        >>> plan.lr(0), plan.lr(25), plan.lr(100)
        (0.04, 1.0, 1e-05)
    """
    check_count("total_steps", total_steps, minimum=2)
    peak, low, final = _lr_bounds(
        max_lr, min_lr, final_lr, FASTAI_DIV, FASTAI_DIV_FINAL, final_from_peak=True
    )
    fraction = check_open_fraction("warmup_fraction", warmup_fraction)
    moms = check_momentum(momentum)
    up = fraction * total_steps
    down = total_steps - up
    lr = Chain((Ramp(low, peak, up, "cosine"), Ramp(peak, final, down, "cosine")))
    momentum_schedule: Schedule | None = None
    if moms is not None:
        high, low_m = moms
        momentum_schedule = Chain(
            (Ramp(high, low_m, up, "cosine"), Ramp(low_m, high, down, "cosine"))
        )
    return Plan(lr, momentum_schedule, total_steps, peak, "fastai_one_cycle")


@plain_arguments
def cyclic(
    base_lr: float,
    max_lr: float,
    step_size: int,
    *,
    mode: str = "triangular",
    gamma: float = 1.0,
    momentum: tuple[float, float] | None = (0.95, 0.85),
    total_steps: int | None = None,
) -> Plan:
    """Cyclical learning rates (Smith, arXiv:1506.01186) with cyclical momentum.

    The values of ``torch.optim.lr_scheduler.CyclicLR(base_lr, max_lr, step_size_up=step_size,
    mode=mode, gamma=gamma, base_momentum=low, max_momentum=high)``: the LR climbs from
    `base_lr` to `max_lr` in `step_size` steps and back in as many; momentum moves the
    other way, from high to low and back, shrinking with the LR's amplitude in
    ``triangular2`` and ``exp_range`` as torch does.

    Args:
        base_lr: the lower LR bound (the paper: max_lr / 3 to max_lr / 4 for several cycles).
        max_lr: the upper LR bound.
        step_size: half a cycle, in steps (the paper: 2 to 10 epochs' worth of steps).
        mode: ``"triangular"``, ``"triangular2"`` (amplitude halves each cycle) or
            ``"exp_range"`` (amplitude times ``gamma ** step``).
        gamma: the decay of ``exp_range``, in (0, 1].
        momentum: ``(high, low)`` or None to leave momentum alone.
        total_steps: the length of the run, if known (for plots and reports); the cycle itself
            has no end.

    Returns:
        A `Plan` with ``policy="cyclic"``.

    Example:
        >>> plan = cyclic(0.1, 0.5, step_size=2, momentum=None)
        >>> [round(plan.lr(k), 3) for k in range(6)]
        [0.1, 0.3, 0.5, 0.3, 0.1, 0.3]
    """
    low = check_positive("base_lr", base_lr)
    peak = _check_peak(max_lr)
    check_not_above("base_lr", low, "max_lr", peak)
    check_count("step_size", step_size)
    check_choice("mode", mode, CYCLIC_MODES)
    if not 0.0 < check_number("gamma", gamma) <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    moms = check_momentum(momentum)
    if total_steps is not None:
        check_count("total_steps", total_steps)
    lr = Cyclic(low, peak, step_size, mode, float(gamma))
    momentum_schedule = (
        None if moms is None else Cyclic(moms[0], moms[1], step_size, mode, float(gamma))
    )
    return Plan(lr, momentum_schedule, total_steps, peak, "cyclic")


@plain_arguments
def piecewise_constant(
    values: tuple[float, ...] | list[float],
    boundaries: tuple[int, ...] | list[int],
    *,
    momentum: float | None = None,
    total_steps: int | None = None,
) -> Plan:
    """Step decay: ``values[i]`` until ``boundaries[i]``, e.g. 0.35 → 0.035 → 0.0035.

    The piecewise-constant baseline of arXiv:1708.07120. `momentum`, if given, is held constant.

    Example:
        >>> plan = piecewise_constant([0.35, 0.035, 0.0035], [2, 4])
        >>> [plan.lr(k) for k in range(5)]
        [0.35, 0.35, 0.035, 0.035, 0.0035]
    """
    for value in values:
        check_positive("values", value)
    lr = Piecewise(tuple(float(v) for v in values), tuple(boundaries))
    return Plan(lr, _constant_momentum(momentum), total_steps, max(lr.values), "piecewise_constant")


@plain_arguments
def constant(lr: float, *, momentum: float | None = None, total_steps: int | None = None) -> Plan:
    """The same LR (and, if given, momentum) at every step.

    Example:
        >>> constant(0.01).lr(1000)
        0.01
    """
    value = check_positive("lr", lr)
    return Plan(Constant(value), _constant_momentum(momentum), total_steps, value, "constant")


def _constant_momentum(momentum: float | None) -> Schedule | None:
    if momentum is None:
        return None
    value = check_number("momentum", momentum)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    return Constant(value)
