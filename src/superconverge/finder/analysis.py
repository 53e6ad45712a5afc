"""Range-test analysis: pure functions on a recorded (lr, loss) curve. No torch.

Rules (each returns an LR, or None when the curve gives no honest answer):
- steepest: where the smoothed loss falls fastest per decade of LR (pytorch-lr-finder's rule,
  computed on the log-LR axis, unlike Lightning >= 2.5.3 which differentiates on the linear axis);
- valley: fastai's rule: a point about half-way down the longest descending run;
- minimum: the LR of the lowest smoothed loss, divided by 10 (fastai's ``minimum``);
- divergence: the LR at which the loss blew up (the stop of the sweep).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from superconverge.finder.smoothing import rose_past

RULES = ("minimum", "valley", "steepest")
SKIP_START_FRACTION = 0.1  # fastai and pytorch-lr-finder skip the noisy first points
MIN_POINTS = 10  # fewer points than this cannot be analysed
FLAT_RELATIVE_CHANGE = 0.02  # a smoothed curve moving less than 2% is "flat"
# a curve whose lowest point is less than 0.5% below its start never fell (SST-2 with SGD: flat
# at 0.69 within its noise, then divergence); a tiny-logit model's real start of a fall, 0.9%
# before the wide sweep found its LR, is kept
NO_FALL_FRACTION = 0.005


def _usable(
    lrs: Sequence[float], losses: Sequence[float], diverge_factor: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The analysable part of a curve: without the noisy first 10%, and ending at the first
    non-finite loss or (with `diverge_factor`) where the loss diverged."""
    x = np.asarray(lrs, dtype=float)
    y = np.asarray(losses, dtype=float)
    finite = np.isfinite(y)
    end = int(np.argmin(finite)) if not finite.all() else len(y)
    if diverge_factor is not None:
        running_min = np.minimum.accumulate(y[:end]) if end else y[:0]
        end = next(
            (i for i in range(end)
             if rose_past(float(y[i]), float(running_min[i]), float(y[0]), diverge_factor)),
            end,
        )  # fmt: skip
    start = int(len(y) * SKIP_START_FRACTION)
    return x[start:end], y[start:end]


def suggest_steepest(lrs: Sequence[float], losses: Sequence[float]) -> float | None:
    """The LR where the loss falls fastest per unit of log10(LR).

    Example:
        >>> lrs = [10 ** (-6 + 5 * i / 99) for i in range(100)]
        >>> losses = [1 / (1 + math.exp(4 * (math.log10(lr) + 3))) for lr in lrs]
        >>> round(math.log10(suggest_steepest(lrs, losses)), 1)
        -3.0
    """
    x, y = _usable(lrs, losses)
    lowest = int(np.argmin(y)) if len(y) else 0
    x, y = x[: lowest + 1], y[: lowest + 1]  # a descent comes before the minimum, never after
    if len(x) < 3:
        return None
    slopes = np.gradient(y, np.log10(x))
    index = int(np.argmin(slopes))
    return float(x[index]) if slopes[index] < 0 else None


def suggest_valley(lrs: Sequence[float], losses: Sequence[float]) -> float | None:
    """fastai's ``valley``: inside the longest strictly descending subsequence of the losses,
    the point a third plus a sixth of the way from its start to its end."""
    x, y = _usable(lrs, losses)
    n = len(y)
    if n < 3:
        return None
    lengths = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if y[i] < y[j] and lengths[i] < lengths[j] + 1:
                lengths[i] = lengths[j] + 1
            if lengths[max_end] < lengths[i]:
                max_end = i
                max_start = max_end - lengths[max_end]
    if max_end == max_start:
        return None
    sections = (max_end - max_start) / 3
    index = max_start + int(sections) + int(sections / 2)
    return float(x[index])


def suggest_minimum(lrs: Sequence[float], losses: Sequence[float]) -> float | None:
    """The LR of the lowest loss, divided by 10 (fastai's ``minimum``)."""
    x, y = _usable(lrs, losses)
    if len(x) == 0:
        return None
    return float(x[int(np.argmin(y))]) / 10.0


def divergence_lr(
    lrs: Sequence[float], smoothed: Sequence[float], diverge_factor: float
) -> float | None:
    """The first LR where the smoothed loss exceeds `diverge_factor` x its running minimum
    (for a minimum at or below 0: `rose_past`'s rise on the fall's scale), or is not finite;
    None if the loss never diverged."""
    best, first = math.inf, math.nan
    for lr, loss in zip(lrs, smoothed, strict=True):
        if not math.isfinite(loss):
            return float(lr)
        first = loss if math.isnan(first) else first
        best = min(best, loss)
        if rose_past(loss, best, first, diverge_factor):
            return float(lr)
    return None


@dataclass(frozen=True)
class Analysis:
    """What the rules say about one curve, and the recommended bounds."""

    suggestions: dict[str, float | None]
    max_lr: float | None
    rule: str
    reason: str
    warnings: tuple[str, ...] = field(default=())
    failure: str | None = None  # one of FAILURES when the curve supports no choice


# why a curve supports no suggestion, as a kind callers can act on (the reason says it in words):
# the sweep was too short or too unstable to read; the loss did not move, or was still falling
# at end_lr (both: sweep further); it only rose (start lower); it rose without first falling
# (another optimizer, or a model that does not learn); the chosen rule found no point
FAILURES = (
    "too_few_points",
    "unstable",
    "too_few_finite",
    "flat",
    "still_falling",
    "never_down",
    "no_fall",
    "no_point",
)
SWEEP_FURTHER = ("flat", "still_falling")


def _failure(
    lrs: Sequence[float], raw: Sequence[float], smoothed: Sequence[float], diverge_factor: float
) -> tuple[str, str] | None:
    """The kind (one of FAILURES) and a plain-words reason why this curve supports no
    suggestion, or None if it does."""
    count = len(raw)
    if count < MIN_POINTS:
        return "too_few_points", (
            f"only {count} points were recorded before the sweep stopped; at least {MIN_POINTS} "
            "are needed: lower start_lr or end_lr, or check why the loss blew up at once"
        )
    finite = [v for v in raw if math.isfinite(v)]
    if len(finite) < count / 2:
        return "unstable", (
            f"{count - len(finite)} of {count} losses were NaN or infinite; the model or loss "
            "is numerically unstable at these LRs: lower start_lr and check the inputs"
        )
    x, y = _usable(lrs, smoothed, diverge_factor)
    if len(y) < 3:
        return (
            "too_few_finite",
            "too few finite points after the noisy start to analyse; lower end_lr",
        )
    top, bottom = float(np.max(y)), float(np.min(y))
    scale = max(abs(top), abs(bottom), 1e-12)
    if (top - bottom) / scale < FLAT_RELATIVE_CHANGE:
        return "flat", (
            f"the loss is flat (it moved {100 * (top - bottom) / scale:.1f}% between LR "
            f"{x[0]:.2g} and {x[-1]:.2g}): the range is too low, or the model does not learn "
            "(frozen layers, wrong targets); raise end_lr or check the model"
        )
    lowest = int(np.argmin(y))
    diverged = divergence_lr(lrs, smoothed, diverge_factor) is not None
    if not diverged and lowest >= len(y) - max(1, len(y) // 20):
        return "still_falling", (
            f"the loss was still falling at the end of the sweep (LR {x[-1]:.3g}), so the top "
            "of the useful range is unknown; raise end_lr"
        )
    if lowest <= max(1, len(y) // 20) and y[-1] > y[0]:
        return "never_down", (
            f"the loss never went down: it rises from the first LRs ({x[0]:.2g}); start_lr is "
            "already too high or the model diverges at any LR; lower start_lr"
        )
    if (y[0] - bottom) / max(abs(y[0]), 1e-12) < NO_FALL_FRACTION:
        return "no_fall", (
            f"the loss never fell: its lowest point ({bottom:.4g}) is within "
            f"{100 * NO_FALL_FRACTION:.1f}% of its start ({y[0]:.4g}) between LR {x[0]:.2g} "
            f"and {x[-1]:.2g}, after which it rose; no LR of this sweep trains the model with "
            "this optimizer in these steps: try a longer sweep (num_steps), another optimizer "
            "(on SST-2 SGD's sweep never fell where AdamW's did), or check the model and targets"
        )
    return None


def analyse(
    lrs: Sequence[float],
    raw_losses: Sequence[float],
    smoothed_losses: Sequence[float],
    *,
    diverge_factor: float = 4.0,
    rule: str = "minimum",
) -> Analysis:
    """Apply every rule to a curve and recommend `max_lr`, or say plainly why not.

    The default rule, ``minimum``, takes the LR of the lowest smoothed loss divided by 10. On the
    MNIST CNN with SGD and Adam at batch 32 and 128 it never made a 1cycle run diverge and was
    the best or within 0.3 points of the best rule, where steepest descent (pytorch-lr-finder)
    diverged with SGD at batch 32 and fastai's valley undertrained (docs/benchmarks.md).

    Args:
        lrs: the LR of each recorded step.
        raw_losses: the training loss of each step.
        smoothed_losses: the bias-corrected smoothed losses.
        diverge_factor: the divergence threshold used by the sweep.
        rule: ``minimum`` (the default), ``valley`` or ``steepest``.

    Returns:
        An `Analysis`; ``max_lr`` is None, with the reason, when the curve supports no choice.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    if not len(lrs) == len(raw_losses) == len(smoothed_losses):
        raise ValueError(
            f"lrs, raw_losses and smoothed_losses must have the same length, got "
            f"{len(lrs)}, {len(raw_losses)}, {len(smoothed_losses)}"
        )
    end = len(lrs)
    diverged_at = divergence_lr(lrs, smoothed_losses, diverge_factor)
    if diverged_at is not None:
        end = list(lrs).index(diverged_at) + 1
    x, y = list(lrs[:end]), list(smoothed_losses[:end])
    suggestions: dict[str, float | None] = {
        "steepest": suggest_steepest(x, y),
        "valley": suggest_valley(x, y),
        "minimum": suggest_minimum(x, y),
        "divergence": diverged_at,
    }
    failure = _failure(lrs, raw_losses, smoothed_losses, diverge_factor)
    if failure is not None:
        return Analysis(suggestions, None, rule, failure[1], failure=failure[0])
    notes: list[str] = []
    if suggestions["divergence"] is None:
        notes.append("the smoothed loss turned upward but never passed the divergence threshold")
    valley, minimum = suggestions["valley"], suggestions["minimum"]
    if (
        valley is not None
        and minimum is not None
        and max(valley, minimum) / min(valley, minimum) > 10
    ):
        notes.append(
            f"valley ({valley:.3g}) and minimum/10 ({minimum:.3g}) disagree by more than 10x"
        )
    chosen_value = suggestions[rule]
    if chosen_value is None:
        reason = f"the {rule} rule found no point on this curve"
        return Analysis(suggestions, None, rule, reason, failure="no_point")
    lowest = 10 * minimum if minimum is not None else None
    explanation = {
        "minimum": f"minimum/10: the smoothed loss was lowest at LR {lowest:.3g}" if lowest else "",
        "valley": "fastai's valley: half-way down the longest descent of the loss",
        "steepest": "steepest descent of the smoothed loss per decade of LR",
    }[rule]
    return Analysis(suggestions, chosen_value, rule, explanation, tuple(notes))


def min_lr_for(max_lr: float, policy: str) -> tuple[float, str]:
    """The lower LR bound for a policy (Smith, arXiv:1803.09820 §4.1).

    One cycle: a factor of 10 to 20 below the maximum (we take 10); several cycles (CLR): a
    factor of 3 to 4 (we take 4).
    """
    if policy == "one_cycle":
        return max_lr / 10.0, "one cycle: min_lr = max_lr / 10 (the paper: /10 to /20)"
    if policy == "cyclic":
        return max_lr / 4.0, "several cycles: min_lr = max_lr / 4 (the paper: /3 to /4)"
    raise ValueError(f"policy must be 'one_cycle' or 'cyclic', got {policy!r}")


def agreement(values: Sequence[float | None]) -> float | None:
    """The ratio of the largest to the smallest of the values that exist (1 = all agree)."""
    present = [v for v in values if v is not None and v > 0]
    if len(present) < 2:
        return None
    return max(present) / min(present)
