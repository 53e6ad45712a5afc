"""Schedule primitives: a step (optimizer update, from 0) in, a float out.

Each schedule is a frozen dataclass: picklable, printable, comparable, and rebuildable from
``to_dict()``. Bigger schedules are built by chaining small ones (`Chain`). Every step >= 0 has
a value; past its last phase a schedule holds its final value and never raises.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from superconverge._checks import check_choice, check_count, check_number

RAMP_SHAPES = ("linear", "cosine", "exponential")
CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


class Schedule:
    """Base class of every schedule: callable on a step, serialisable to a plain dict."""

    _registry: ClassVar[dict[str, type[Schedule]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Schedule._registry[cls.__name__] = cls

    def __call__(self, step: float) -> float:
        raise NotImplementedError

    @property
    def duration(self) -> float | None:
        """Steps until the schedule reaches its final value, or None if it never ends."""
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict; `Schedule.from_dict` rebuilds an equal schedule."""
        out: dict[str, Any] = {"type": type(self).__name__}
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            if item.init:  # derived caches are not settings
                out[item.name] = _encode(getattr(self, item.name))
        return out

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Schedule:
        """Rebuild a schedule written by `to_dict`; unknown types or keys are rejected by name."""
        if not isinstance(data, dict) or "type" not in data:
            raise ValueError(f"a schedule dict needs a 'type' key, got {data!r}")
        kind = data["type"]
        cls = Schedule._registry.get(kind)
        if cls is None:
            known = sorted(Schedule._registry)
            raise ValueError(f"unknown schedule type {kind!r}; known types: {known}")
        names = {item.name for item in dataclasses.fields(cls) if item.init}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names - {"type"})
        if unknown:
            raise ValueError(f"unknown {kind} settings: {unknown}")
        return cls(**{key: _decode(value) for key, value in data.items() if key != "type"})


def _encode(value: Any) -> Any:
    if isinstance(value, Schedule):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_encode(item) for item in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        return Schedule.from_dict(value)
    if isinstance(value, list):
        return tuple(_decode(item) for item in value)
    return value


def _check_step(step: float) -> None:
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step!r}")


@dataclass(frozen=True)
class Constant(Schedule):
    """The same value at every step.

    Example:
        >>> Constant(0.1)(0), Constant(0.1)(10**6)
        (0.1, 0.1)
    """

    value: float
    steps: float | None = None  # how long it lasts when used as a phase of a `Chain`

    def __post_init__(self) -> None:
        check_number("value", self.value)
        if self.steps is not None and check_number("steps", self.steps) <= 0:
            raise ValueError(f"steps must be > 0 or None, got {self.steps!r}")

    def __call__(self, step: float) -> float:
        _check_step(step)
        return self.value

    @property
    def duration(self) -> float | None:
        return self.steps


@dataclass(frozen=True)
class Ramp(Schedule):
    """Moves from `start` to `end` over `steps` steps, then holds `end`.

    With x = min(step / steps, 1):
    linear ``start + (end - start) * x``; cosine ``end + (start - end) / 2 * (1 + cos(pi * x))``
    (the annealing of Loshchilov & Hutter, arXiv:1608.03983, as in torch's OneCycleLR);
    exponential ``start * (end / start) ** x`` (the LR range test's sweep, arXiv:1506.01186).
    `steps` may be fractional: torch's OneCycleLR puts phase boundaries at ``pct * total - 1``.

    Example:
        >>> r = Ramp(start=1.0, end=3.0, steps=4)
        >>> [r(t) for t in range(6)]
        [1.0, 1.5, 2.0, 2.5, 3.0, 3.0]
    """

    start: float
    end: float
    steps: float
    shape: str = "linear"

    def __post_init__(self) -> None:
        check_number("start", self.start)
        check_number("end", self.end)
        if check_number("steps", self.steps) <= 0:
            raise ValueError(f"steps must be > 0, got {self.steps!r}")
        check_choice("shape", self.shape, RAMP_SHAPES)
        if self.shape == "exponential" and (self.start <= 0 or self.end <= 0):
            raise ValueError(
                f"an exponential ramp needs start > 0 and end > 0, got {self.start!r}, {self.end!r}"
            )

    def __call__(self, step: float) -> float:
        _check_step(step)
        fraction = min(step / self.steps, 1.0)
        if fraction == 0.0:
            return self.start  # exact, where the cosine form would round (end + (start - end))
        if self.shape == "linear":
            return (self.end - self.start) * fraction + self.start
        if self.shape == "cosine":
            return self.end + (self.start - self.end) / 2.0 * (math.cos(math.pi * fraction) + 1)
        return float(self.start * (self.end / self.start) ** fraction)

    @property
    def duration(self) -> float:
        return self.steps


@dataclass(frozen=True)
class Chain(Schedule):
    """Phases one after another; a step on a boundary belongs to the earlier phase.

    Every phase but the last needs a finite `duration`. The last phase runs (and holds) forever.

    Example:
        >>> c = Chain((Ramp(0.0, 2.0, 2), Ramp(2.0, 0.0, 4)))
        >>> [c(t) for t in range(8)]
        [0.0, 1.0, 2.0, 1.5, 1.0, 0.5, 0.0, 0.0]
    """

    phases: tuple[Schedule, ...]
    _ends: tuple[float, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.phases, list):
            object.__setattr__(self, "phases", tuple(self.phases))
        if not self.phases or not all(isinstance(p, Schedule) for p in self.phases):
            raise ValueError(f"phases must be a non-empty tuple of schedules, got {self.phases!r}")
        ends: list[float] = []
        offset = 0.0
        for index, phase in enumerate(self.phases[:-1]):
            length = phase.duration
            if length is None:
                raise ValueError(f"phases[{index}] ({phase!r}) never ends, so it must be last")
            ends.append(offset + length)
            offset += length
        # where each phase ends, computed once: a schedule is called on every training step
        object.__setattr__(self, "_ends", tuple(ends))

    def __call__(self, step: float) -> float:
        _check_step(step)
        start = 0.0
        for phase, end in zip(self.phases, self._ends):  # noqa: B905 - the last phase has no end
            if step <= end:
                return phase(max(step - start, 0.0))
            start = end
        return self.phases[-1](max(step - start, 0.0))

    @property
    def duration(self) -> float | None:
        total = 0.0
        for phase in self.phases:
            length = phase.duration
            if length is None:
                return None
            total += length
        return total


@dataclass(frozen=True)
class Piecewise(Schedule):
    """Piecewise constant: ``values[i]`` from ``boundaries[i - 1]`` up to ``boundaries[i]``.

    The step-decay schedule of the baselines in arXiv:1708.07120 (0.35 → 0.035 → 0.0035).

    Example:
        >>> p = Piecewise(values=(0.35, 0.035, 0.0035), boundaries=(2, 4))
        >>> [p(t) for t in range(6)]
        [0.35, 0.35, 0.035, 0.035, 0.0035, 0.0035]
    """

    values: tuple[float, ...]
    boundaries: tuple[int, ...]

    def __post_init__(self) -> None:
        for name in ("values", "boundaries"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.values:
            raise ValueError("values must hold at least one value, got ()")
        for value in self.values:
            check_number("values", value)
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                "values must hold one more entry than boundaries, got "
                f"{len(self.values)} values and {len(self.boundaries)} boundaries"
            )
        previous = 0
        for boundary in self.boundaries:
            check_count("boundaries", boundary)
            if boundary <= previous:
                raise ValueError(
                    f"boundaries must be increasing steps >= 1, got {self.boundaries!r}"
                )
            previous = boundary

    def __call__(self, step: float) -> float:
        _check_step(step)
        return self.values[bisect.bisect_right(self.boundaries, step)]

    @property
    def duration(self) -> float | None:
        return float(self.boundaries[-1]) if self.boundaries else None


@dataclass(frozen=True)
class Cyclic(Schedule):
    """Cyclical schedule of Smith (arXiv:1506.01186): `base` → `peak` → `base`, repeated.

    A cycle takes ``2 * half_cycle`` steps (the paper's ``stepsize`` is `half_cycle`). With
    ``cycle = floor(1 + step / (2 * half_cycle))`` and x the position inside the cycle, the value
    is ``base + (peak - base) * triangle(x) * scale``, where scale is 1 (``triangular``),
    ``1 / 2 ** (cycle - 1)`` (``triangular2``: the amplitude halves every cycle) or
    ``gamma ** step`` (``exp_range``). The formula and its float arithmetic follow
    ``torch.optim.lr_scheduler.CyclicLR``. `peak` may be below `base`: cyclical momentum runs
    from high to low while the learning rate runs from low to high.

    Example:
        >>> s = Cyclic(base=1.0, peak=5.0, half_cycle=4)
        >>> [s(t) for t in range(11)]
        [1.0, 2.0, 3.0, 4.0, 5.0, 4.0, 3.0, 2.0, 1.0, 2.0, 3.0]
    """

    base: float
    peak: float
    half_cycle: int
    mode: str = "triangular"
    gamma: float = 1.0

    def __post_init__(self) -> None:
        check_number("base", self.base)
        check_number("peak", self.peak)
        check_count("half_cycle", self.half_cycle)
        check_choice("mode", self.mode, CYCLIC_MODES)
        if not 0.0 < check_number("gamma", self.gamma) <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma!r}")

    def __call__(self, step: float) -> float:
        _check_step(step)
        total = float(2 * self.half_cycle)
        cycle = math.floor(1 + step / total)
        position = 1.0 + step / total - cycle  # in [0, 1): where we are inside the cycle
        # torch's arithmetic, kept as is so that values agree to the last bit
        fraction_up = position / 0.5 if position <= 0.5 else (position - 1) / (0.5 - 1)
        if self.mode == "triangular":
            scale = 1.0
        elif self.mode == "triangular2":
            scale = 1 / (2.0 ** (cycle - 1))
        else:
            scale = float(self.gamma**step)
        return self.base + (self.peak - self.base) * fraction_up * scale
