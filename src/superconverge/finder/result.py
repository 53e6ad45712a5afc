"""`RangeTestResult`: the recorded curve, what the rules say about it, and the chosen bounds."""

from __future__ import annotations

import collections
import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from superconverge._display import clip, number, pairs
from superconverge._json import (
    check_fields,
    decode_nonfinite,
    encode_nonfinite,
    reject_unknown_keys,
)
from superconverge.finder.analysis import agreement, analyse, min_lr_for

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SUPERCONVERGENCE_LR = (
    1.0  # Smith & Topin's resnet-56 kept high accuracy up to LR 3 (arXiv:1708.07120)
)
ACCURACY_DROP = 0.05  # "stays high": within 5 points of the best validation accuracy
# "high" must first be clearly above chance: 15% of the way from chance to perfect (10 balanced
# classes: 0.235). A CIFAR-10 network that never left chance (best 0.115) was called "likely to
# super-converge" without this floor (issue 17)
CLEAR_OF_CHANCE = 0.15


@dataclass(frozen=True)
class Superconvergence:
    """Does validation accuracy stay high up to large LRs (a sign of super-convergence)?"""

    likely: bool
    explanation: str
    # the points it was judged on: kept, not shown in the repr (whole curves)
    lrs: tuple[float, ...] = field(default=(), repr=False)
    accuracies: tuple[float, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class Confidence:
    """Whether the rules (and the repeats) agree on max_lr."""

    level: str  # "high", "medium" or "low"
    explanation: str
    method_ratio: float | None = None  # largest / smallest suggestion among the rules
    repeat_ratio: float | None = None  # largest / smallest max_lr among repeats


@dataclass(frozen=True)
class RangeTestResult:
    """One LR range test: the curve, the suggestions and the recommended bounds.

    ``max_lr`` is None when the curve gives no honest answer; ``reason`` then says why in
    plain words. ``min_lr`` follows `policy` (see `bounds`).
    """

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed_losses: tuple[float, ...]
    stop_reason: str
    suggestions: dict[str, float | None]
    max_lr: float | None
    min_lr: float | None
    rule: str
    reason: str
    policy: str = "one_cycle"
    val_steps: tuple[int, ...] = ()
    val_losses: tuple[float, ...] = ()
    val_accuracies: tuple[float | None, ...] = ()
    repeat_max_lrs: tuple[float | None, ...] = ()
    confidence: Confidence | None = None
    superconvergence: Superconvergence | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    # when max_lr is None: why, as one of analysis.FAILURES (e.g. "still_falling": sweep further)
    failure: str | None = None
    # the LR of the lowest smoothed loss (of the first repeat), whatever the rule: the recipe
    # places its max_lr candidates below it (None in files saved before it was recorded)
    lowest_loss_lr: float | None = None

    def bounds(self, policy: str | None = None) -> tuple[float | None, float | None]:
        """``(min_lr, max_lr)`` for one cycle (min = max/10) or several cycles (min = max/4);
        None: for the policy the test was run for, ``(self.min_lr, self.max_lr)``."""
        if self.max_lr is None:
            return None, None
        return min_lr_for(self.max_lr, policy or self.policy)[0], self.max_lr

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = encode_nonfinite(asdict(self))
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RangeTestResult:
        """The range test in `data` (as `to_dict` writes it), each field's type checked: a
        ValueError names a missing field, an unknown one, a value of another type, or curves
        of different lengths."""
        if not isinstance(data, dict):
            raise ValueError(f"a range test is a JSON object, got {type(data).__name__}")
        reject_unknown_keys(data, cls.__dataclass_fields__, "range-test result fields")
        check_fields(cls, data, "a range test")
        _check_curves(data)
        values = {key: decode_nonfinite(value) for key, value in data.items()}
        for key in (
            "lrs",
            "losses",
            "smoothed_losses",
            "val_steps",
            "val_losses",
            "val_accuracies",
            "repeat_max_lrs",
            "notes",
        ):
            if key in values:
                values[key] = tuple(values[key])
        if values.get("confidence") is not None:
            values["confidence"] = Confidence(**values["confidence"])
        if values.get("superconvergence") is not None:
            sc = dict(values["superconvergence"])
            sc["lrs"], sc["accuracies"] = tuple(sc["lrs"]), tuple(sc["accuracies"])
            values["superconvergence"] = Superconvergence(**sc)
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> RangeTestResult:
        return cls.from_dict(json.loads(text))

    def plot(self, ax: Any = None) -> Figure:
        """Loss against LR (log axis), raw and smoothed, with the suggestions and the bounds."""
        from superconverge.diagnostics.plots import plot_range_test

        return plot_range_test(self, ax=ax)

    def __repr__(self) -> str:
        """One line of a few hundred characters: the bounds, the rules, the sweep (the curve
        itself is in ``lrs``/``losses``, or ``plot()``)."""
        found = [(name, value) for name, value in self.suggestions.items() if value is not None]
        level = self.confidence.level if self.confidence is not None else None
        sweep = f"{len(self.lrs)} points" if self.lrs else "no points"
        if self.lrs:
            sweep += f" from lr {number(self.lrs[0])} to {number(self.lrs[-1])}"
        return (
            f"RangeTestResult(max_lr={number(self.max_lr)}, min_lr={number(self.min_lr)}, "
            f"rule={self.rule!r}, confidence={level!r}; rules: {clip(pairs(found), 90) or 'none'}; "
            f"{sweep}; stopped: {clip(self.stop_reason, 50)!r})"
        )

    def _repr_html_(self) -> str:
        """A small table for notebooks: the bounds, why, each rule's suggestion, the sweep."""
        from superconverge._display import html_table

        rows: list[tuple[str, Any]] = [
            ("max_lr", self.max_lr),
            ("min_lr", self.min_lr),
            ("rule", f"{self.rule} ({self.policy})"),
            ("why", clip(self.reason, 300)),
        ]
        rows += [(f"rule {name}", value) for name, value in self.suggestions.items()]
        if self.confidence is not None:
            rows.append(("confidence", f"{self.confidence.level}: {self.confidence.explanation}"))
        if self.superconvergence is not None:
            rows.append(("super-convergence", self.superconvergence.explanation))
        if self.lrs:
            first, last = number(self.lrs[0]), number(self.lrs[-1])
            rows.append(("sweep", f"{len(self.lrs)} points, lr {first} to {last}"))
        rows.append(("stopped", self.stop_reason))
        return html_table("RangeTestResult", rows, max_rows=len(rows))

    def summary(self) -> str:
        """A few lines for people: the bounds and the reason, or why there are none."""
        if self.max_lr is None:
            return f"no max_lr: {self.reason}"
        lines = [
            f"max_lr {self.max_lr:.3g}, min_lr {self.min_lr:.3g} ({self.policy}, rule {self.rule})",
            f"why: {self.reason}",
        ]
        others = ", ".join(
            f"{name} {value:.3g}" for name, value in self.suggestions.items() if value is not None
        )
        lines.append(f"rules: {others}")
        if self.confidence is not None:
            lines.append(f"confidence: {self.confidence.level} ({self.confidence.explanation})")
        if self.superconvergence is not None:
            lines.append(f"super-convergence: {self.superconvergence.explanation}")
        return "\n".join(lines)


def _check_curves(data: dict[str, Any]) -> None:
    """One loss and one smoothed loss per LR, one loss and accuracy per validation point, each
    at a step of the sweep: what the plots and the report pair up."""
    for names in (
        ("lrs", "losses", "smoothed_losses"),
        ("val_steps", "val_losses", "val_accuracies"),
    ):
        lengths = [len(data.get(name, ())) for name in names]
        if len(set(lengths)) > 1:
            raise ValueError(
                f"fields {', '.join(names)} must be as long as each other, got lengths "
                f"{', '.join(map(str, lengths))}"
            )
    for index, lr in enumerate(data.get("lrs", ())):  # plotted on a log axis: "math domain error"
        if isinstance(lr, (int, float)) and not lr > 0:
            raise ValueError(f"field lrs[{index}] must be an LR > 0, got {lr!r}")
    for index, step in enumerate(data.get("val_steps", ())):
        if not 0 <= step < len(data["lrs"]):
            raise ValueError(
                f"field val_steps[{index}] must be a step of the sweep (0 to "
                f"{len(data['lrs']) - 1}), got {step!r}"
            )


def superconvergence_check(
    lrs: tuple[float, ...], accuracies: tuple[float | None, ...], chance: float | None = None
) -> Superconvergence | None:
    """Smith's sign of super-convergence: validation accuracy that stays near its best up to
    large LRs (>= 1), as in the range tests of arXiv:1708.07120 (resnet-56 up to LR 3).

    The best accuracy must be clearly above `chance` (the accuracy of always answering the most
    common class): at least ``chance + CLEAR_OF_CHANCE * (1 - chance)``. A network that learned
    nothing stays "near its best" at every LR, which says nothing about super-convergence.

    Example:
        >>> lrs = (0.01, 0.1, 1.0, 3.0)
        >>> superconvergence_check(lrs, (0.10, 0.11, 0.115, 0.11), chance=0.1).likely
        False
        >>> superconvergence_check(lrs, (0.5, 0.8, 0.82, 0.8), chance=0.1).likely
        True
    """
    points = [(lr, acc) for lr, acc in zip(lrs, accuracies, strict=True) if acc is not None]
    if len(points) < 3:
        return None
    best_index = max(range(len(points)), key=lambda i: points[i][1])
    best = points[best_index][1]
    evidence_lrs = tuple(p[0] for p in points)
    evidence_accs = tuple(p[1] for p in points)
    floor = -math.inf if chance is None else chance + CLEAR_OF_CHANCE * (1 - chance)
    if not best >= floor:
        return Superconvergence(
            False,
            f"validation accuracy never rose clearly above chance (best {best:.3f}, chance "
            f"{chance:.3f}, needed {floor:.3f}): the range test says nothing about "
            "super-convergence",
            evidence_lrs,
            evidence_accs,
        )
    high_until = points[best_index][0]
    for lr, acc in points[best_index:]:
        if acc < max(best - ACCURACY_DROP, floor) or not math.isfinite(acc):
            break
        high_until = lr
    if high_until >= SUPERCONVERGENCE_LR:
        return Superconvergence(
            True,
            f"validation accuracy stays within {ACCURACY_DROP:.0%} of its best ({best:.3f}) up to "
            f"LR {high_until:.3g}: the architecture can likely super-converge (large max_lr)",
            evidence_lrs,
            evidence_accs,
        )
    return Superconvergence(
        False,
        f"validation accuracy falls more than {ACCURACY_DROP:.0%} below its best ({best:.3f}) "
        f"past LR {high_until:.3g} (< {SUPERCONVERGENCE_LR:g}): no sign of super-convergence",
        evidence_lrs,
        evidence_accs,
    )


def confidence_of(
    suggestions: dict[str, float | None], repeat_max_lrs: list[float | None]
) -> Confidence:
    method_ratio = agreement([suggestions.get(k) for k in ("valley", "minimum", "steepest")])
    repeat_ratio = agreement(repeat_max_lrs) if len(repeat_max_lrs) > 1 else None
    parts = []
    if method_ratio is not None:
        parts.append(f"the rules span a factor of {method_ratio:.1f}")
    if repeat_ratio is not None:
        parts.append(f"{len(repeat_max_lrs)} repeats span a factor of {repeat_ratio:.1f}")
    if any(v is None for v in repeat_max_lrs) and len(repeat_max_lrs) > 1:
        parts.append("some repeats gave no max_lr")
        return Confidence("low", "; ".join(parts), method_ratio, repeat_ratio)
    worst = max(r for r in (method_ratio, repeat_ratio, 1.0) if r is not None)
    level = "high" if worst <= 3.0 else "medium" if worst <= 10.0 else "low"
    return Confidence(
        level, "; ".join(parts) or "a single rule answered", method_ratio, repeat_ratio
    )


def build_result(
    curves: list[dict[str, Any]],
    *,
    diverge_factor: float,
    rule: str,
    policy: str,
    settings: dict[str, Any],
    chance: float | None = None,
) -> RangeTestResult:
    """Analyse each repeat's curve; the first curve is the one shown, max_lr is the median."""
    analyses = [
        analyse(c["lrs"], c["losses"], c["smoothed"], diverge_factor=diverge_factor, rule=rule)
        for c in curves
    ]
    first, main = curves[0], analyses[0]
    repeat_max_lrs = [a.max_lr for a in analyses]
    found = sorted(v for v in repeat_max_lrs if v is not None)
    max_lr: float | None
    failure: str | None = None
    if len(curves) == 1:
        max_lr, reason, failure = main.max_lr, main.reason, main.failure
    elif 2 * len(found) > len(curves):  # most repeats answered: their median
        middle = len(found) // 2
        max_lr = found[middle] if len(found) % 2 else math.sqrt(found[middle - 1] * found[middle])
        reason = f"median of {len(found)} of {len(curves)} repeats; first repeat: {main.reason}"
    else:
        max_lr = None
        reason = f"only {len(found)} of {len(curves)} repeats gave a max_lr; first: {main.reason}"
        failures = [a.failure for a in analyses if a.failure is not None]
        # the most common kind (ties: the first repeat's)
        failure = collections.Counter(failures).most_common(1)[0][0] if failures else None
    min_lr = None if max_lr is None else min_lr_for(max_lr, policy)[0]
    # fastai's minimum rule is, by its definition, the lowest-loss LR / 10 (analysis.py)
    minimum = main.suggestions.get("minimum")
    accuracies = tuple(first.get("val_accuracies", ()))
    val_steps = tuple(first.get("val_steps", ()))
    sc = (
        superconvergence_check(tuple(first["lrs"][s] for s in val_steps), accuracies, chance)
        if val_steps
        else None
    )
    return RangeTestResult(
        lrs=tuple(first["lrs"]),
        losses=tuple(first["losses"]),
        smoothed_losses=tuple(first["smoothed"]),
        stop_reason=first["stop_reason"],
        suggestions=main.suggestions,
        max_lr=max_lr,
        min_lr=min_lr,
        rule=rule,
        reason=reason,
        policy=policy,
        val_steps=val_steps,
        val_losses=tuple(first.get("val_losses", ())),
        val_accuracies=accuracies,
        repeat_max_lrs=tuple(repeat_max_lrs),
        confidence=None if max_lr is None else confidence_of(main.suggestions, repeat_max_lrs),
        superconvergence=sc,
        settings=settings,
        notes=main.warnings,
        failure=failure,
        lowest_loss_lr=None if minimum is None else 10 * minimum,
    )
