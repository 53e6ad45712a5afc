"""Argument checks shared by the schedule constructors, the trainer and the range test.

Every check raises ``ValueError`` (or ``TypeError`` for a wrong type) whose message starts with
the parameter's name, then says what is allowed and the value that was given. The CLI relies on
that shape to name the flag.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar, cast

_P = ParamSpec("_P")
_R = TypeVar("_R")


def plain(value: Any) -> Any:
    """`value` with NumPy's scalars (``np.int64(32)``, ``np.float32(1e-3)``: anything registered
    as a `numbers.Integral` or `numbers.Real`) made Python ``int`` and ``float``, also inside a
    tuple or list of numbers and a ``slice``; everything else is returned as it is (a bool, a
    tensor, a dataset). What is saved from the result stays JSON-serialisable."""
    if isinstance(value, bool) or type(value) in (int, float):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (tuple, list)) and value and all(_is_number(v) for v in value):
        items = [plain(v) for v in value]
        if all(item is v for item, v in zip(items, value, strict=True)):
            return value  # nothing to convert: the caller's own object, whatever its class
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, slice):
        return slice(plain(value.start), plain(value.stop), plain(value.step))
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def plain_arguments(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorate a public entry point so that its arguments go through `plain` first: torch takes
    NumPy scalars as LRs, batch sizes and step counts, and so does every entry point here."""

    @functools.wraps(function)
    def with_plain_arguments(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        positional = cast(Any, [plain(value) for value in args])
        keywords = cast(Any, {name: plain(value) for name, value in kwargs.items()})
        return function(*positional, **keywords)

    return with_plain_arguments


def check_number(name: str, value: object) -> float:
    """Return `value` as a float, or raise if it is not a real, finite number (a NumPy scalar
    is one)."""
    number = plain(value)
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(number)


def check_positive(name: str, value: object) -> float:
    """A finite number > 0, such as a learning rate."""
    number = check_number(name, value)
    if number <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return number


def check_count(name: str, value: object, minimum: int = 1) -> int:
    """An integer count >= `minimum`, such as `total_steps` or `step_size` (``np.int64`` too)."""
    count = plain(value)
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if count < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return count


def check_max_lr(value: object, *, optional: bool = False, searches: bool = False) -> float | None:
    """A peak LR: a finite number > 0 (None too where `optional`: the range test picks it;
    the message names ``'search'`` too where the front end takes it, `searches`). One message
    for every front end; TypeError for a value that is no number."""
    if value is None and optional:
        return None
    *others, last = ["a finite number > 0", *(["None"] * optional), *(["'search'"] * searches)]
    allowed = f"{', '.join(others)} or {last}" if others else last
    number = plain(value)
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise TypeError(f"max_lr must be {allowed}, got {value!r}")
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"max_lr must be {allowed}, got {value!r}")
    return float(number)


def check_flag(name: str, value: object) -> bool:
    """True or False, nothing that merely tests as one (``"yes"``, 0, None)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return value


def check_open_fraction(name: str, value: object, upper: float = 1.0) -> float:
    """A fraction strictly inside (0, upper)."""
    number = check_number(name, value)
    if not 0.0 < number < upper:
        raise ValueError(f"{name} must be in (0, {upper:g}), got {value!r}")
    return number


def check_unit_fraction(name: str, value: object, allowed: str = "a number in (0, 1]") -> float:
    """A fraction in (0, 1], such as the share of a fit's steps; a ValueError names `allowed`
    (the caller's wording: "None or in (0, 1]" where None is allowed too)."""
    number = plain(value)
    if not _is_number(number) or not 0.0 < float(number) <= 1.0:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return float(number)


def check_choice(name: str, value: object, allowed: Sequence[str]) -> str:
    """One of the strings in `allowed`."""
    if value not in allowed:
        options = ", ".join(repr(option) for option in allowed)
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return str(value)


def check_not_above(name: str, value: float, other_name: str, other: float) -> None:
    """`value` <= `other`, e.g. min_lr <= max_lr."""
    if value > other:
        raise ValueError(f"{name} must be <= {other_name} ({other!r}), got {value!r}")


def check_momentum(value: object, name: str = "momentum") -> tuple[float, float] | None:
    """`None`, or a `(high, low)` pair with 0 <= low <= high < 1; messages name `name`."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        hint = ""
        if _is_number(value):
            hint = f"; a constant {name} is ({value!r}, {value!r})"
        elif isinstance(value, Sequence) and len(value) == 3:  # fastai's moms=(high, low, high)
            hint = f"; fastai's moms=(0.95, 0.85, 0.95) is {name}=(0.95, 0.85)"
        raise ValueError(f"{name} must be None or a (high, low) pair, got {value!r}{hint}")
    high = check_number(name, value[0])
    low = check_number(name, value[1])
    for bound in (high, low):
        if not 0.0 <= bound < 1.0:
            raise ValueError(f"{name} values must be in [0, 1), got {tuple(value)!r}")
    if high < low:
        raise ValueError(f"{name} must be (high, low) with high >= low, got {tuple(value)!r}")
    return high, low


def check_non_negative(name: str, value: object) -> float:
    """A finite number >= 0, such as a weight decay."""
    number = check_number(name, value)
    if number < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return number


def check_optional_count(name: str, value: object, minimum: int = 1) -> int | None:
    """None, or an integer count >= `minimum`."""
    return None if value is None else check_count(name, value, minimum)


def import_extra(module: str, front_end: str, needs: str, extra: str) -> None:
    """Import `module` (the package a front end is built on), or an ImportError of one line
    naming the extra that installs it, as TensorBoardLogger, MLflowLogger and
    superconverge.keras name theirs; a module *inside* it that is missing is not re-worded."""
    import importlib

    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] != module.partition(".")[0]:
            raise
        raise ImportError(
            f"{front_end} needs {needs}: pip install 'superconverge[{extra}]'"
        ) from error


MAX_SEED = 2**32 - 1  # NumPy's and the DataLoader workers' seed range


def check_seed(value: object, name: str = "seed") -> int:
    """A seed every generator the library seeds takes: an integer in [0, 2**32 - 1] (a seed of
    -1 trained from Python and made a plan that ``fit --plan`` refused).

    Example:
        >>> check_seed(7)
        7
    """
    seed = plain(value)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"{name} must be an integer in [0, {MAX_SEED}], got {value!r}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{name} must be in [0, {MAX_SEED}], got {value!r}")
    return seed
