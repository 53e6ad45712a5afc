"""The recipe's decisions: pure functions on measured numbers (no torch)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

THROUGHPUT_GAIN = 0.10  # a doubling of the batch must buy > 10% samples/s to be worth it
CLOSE_LOSSES = 0.02  # two weight decays whose validation losses differ < 2% are "close"
# a higher max_lr must beat the lower one's validation loss by more than this to be chosen: the
# short runs are noisy, and the highest candidate sits nearest the edge of stability
LR_SAFETY_MARGIN = 0.02
# a final run whose validation loss ends this many times above its short run's (same settings,
# fewer epochs) fell apart near the edge of stability: it is run once more at max_lr / 3
RETRY_LOSS_FACTOR = 1.5
# when the lowest max_lr candidate wins, the grid is extended downwards (each step / 3) while a
# lower LR keeps giving a lower validation loss, at most this many times
LR_EXTENSIONS = 3
LR_EXTENSION_DIVISOR = 3.0
# when the highest candidate wins (by the margin above), the grid is extended upwards, each step
# x 2, while a higher LR keeps winning by that margin, at most LR_EXTENSIONS times and never past
# the range test's lowest-loss LR (nor half its divergence point): at large batches minimum/3 is
# still timid
LR_RAISE_FACTOR = 2.0
RETRY_LR_DIVISOR = 3.0


def choose_batch_size(throughput: Mapping[int, float], max_batch: int) -> tuple[int, str]:
    """The batch where samples/s stops growing: the first size whose next doubling gains less
    than 10%, never above `max_batch` (the training set allows no more).

    Example:
        >>> choose_batch_size({32: 1000.0, 64: 1800.0, 128: 1900.0, 256: 1950.0}, 10_000)
        (64, '128 gave 1,900 samples/s, only 6% more than 64 (1,800)')
    """
    sizes = sorted(size for size in throughput if size <= max_batch)
    if not sizes:
        raise ValueError(f"no measured batch size fits the training set ({max_batch} samples)")
    for small, large in itertools.pairwise(sizes):
        gain = throughput[large] / throughput[small] - 1.0
        if gain < THROUGHPUT_GAIN:
            return small, (
                f"{large} gave {throughput[large]:,.0f} samples/s, only {100 * gain:.0f}% more "
                f"than {small} ({throughput[small]:,.0f})"
            )
    last = sizes[-1]
    if len(sizes) == 1:
        return (
            last,
            f"{last} is the only candidate size allowed ({throughput[last]:,.0f} samples/s)",
        )
    return last, f"samples/s still grew up to {last}, the largest size tried"


def weight_decay_midpoint(results: Mapping[float, float]) -> float | None:
    """If the best two neighbouring weight decays are close, the midpoint of their exponents.

    Weight decays are compared on validation loss (lower is better); zero has no exponent, so
    it never takes part in a midpoint (arXiv:1803.09820 §4.3: e.g. 10^-3.5 between 1e-3 and 1e-4).

    Example:
        >>> round(weight_decay_midpoint({1e-3: 0.300, 1e-4: 0.302, 1e-5: 0.4, 0.0: 0.5}), 6)
        0.000316
    """
    positive = sorted((wd for wd in results if wd > 0), reverse=True)
    if len(positive) < 2:
        return None
    best = min(positive, key=lambda wd: results[wd])
    index = positive.index(best)
    neighbours = [positive[i] for i in (index - 1, index + 1) if 0 <= i < len(positive)]
    partner = min(neighbours, key=lambda wd: results[wd])
    if abs(results[partner] - results[best]) > CLOSE_LOSSES * abs(results[best]):
        return None
    middle = 10 ** ((math.log10(best) + math.log10(partner)) / 2)
    return None if middle in results else middle


def choose_max_lr(losses: Mapping[float, float]) -> tuple[float | None, str]:
    """The max_lr candidate to keep after the short runs, and a sentence saying why.

    Start from the lowest LR whose run stayed finite; move up to a higher candidate only when its
    validation loss is more than `LR_SAFETY_MARGIN` (2%) below the current choice. None when
    every run diverged.

    Example:
        >>> choose_max_lr({0.01: 0.300, 0.02: 0.297, 0.033: 0.250})
        (0.033, '0.033 beat 0.01 by 17% (> 2%) on validation loss')
        >>> choose_max_lr({0.01: 0.300, 0.02: 0.297})[0]  # 1% better: not worth the risk
        0.01
    """
    finite = sorted((lr, loss) for lr, loss in losses.items() if math.isfinite(loss))
    if not finite:
        return None, "every short run diverged"
    chosen, chosen_loss = finite[0]
    why = f"{chosen:.3g}: the lowest candidate; no higher one beat it by > {LR_SAFETY_MARGIN:.0%}"
    for lr, loss in finite[1:]:
        if loss < chosen_loss * (1.0 - LR_SAFETY_MARGIN):
            gain = 1.0 - loss / chosen_loss
            why = (
                f"{lr:.3g} beat {chosen:.3g} by {gain:.0%} (> {LR_SAFETY_MARGIN:.0%}) on "
                "validation loss"
            )
            chosen, chosen_loss = lr, loss
    return chosen, why


def lower_candidate(losses: Mapping[float, float], chosen: float | None) -> float | None:
    """The next LR to try below those in `losses`, or None when `chosen` is not the lowest tried.
    (None for `chosen` means every run diverged: look lower too.)

    Example:
        >>> lower_candidate({0.05: 1.7, 0.1: 2.3}, 0.05)
        0.016666666666666666
        >>> lower_candidate({0.05: 1.7, 0.1: 2.3}, 0.1) is None  # not at the edge of the grid
        True
    """
    lowest = min(losses)
    if chosen is not None and chosen != lowest:
        return None
    return lowest / LR_EXTENSION_DIVISOR


def higher_candidate(
    losses: Mapping[float, float], chosen: float | None, ceiling: float = math.inf
) -> float | None:
    """The next LR to try above those in `losses` (x `LR_RAISE_FACTOR`, at most `ceiling`), or
    None when `chosen` is not the highest tried or the grid already reaches the ceiling.

    Example:
        >>> higher_candidate({0.02: 0.4, 0.05: 0.3}, 0.05)
        0.1
        >>> higher_candidate({0.02: 0.4, 0.05: 0.3}, 0.05, ceiling=0.08)
        0.08
        >>> higher_candidate({0.02: 0.3, 0.05: 0.4}, 0.02) is None  # a lower LR won
        True
    """
    highest = max(losses)
    if chosen is None or chosen != highest or highest >= ceiling:
        return None
    return min(highest * LR_RAISE_FACTOR, ceiling)


def final_run_failed(status: str, final_loss: float | None, short_run_loss: float) -> str | None:
    """Why the final run must be redone at a lower LR, or None when it is fine.

    Example:
        >>> final_run_failed("completed", 1.31, 0.12)
        'its validation loss 1.31 is 10.9x that of its short run (0.12)'
        >>> final_run_failed("completed", 0.10, 0.12) is None
        True
    """
    if status == "diverged":
        return "it diverged"
    if final_loss is None or not math.isfinite(final_loss):
        return f"its validation loss is {final_loss}"
    if math.isfinite(short_run_loss) and final_loss > RETRY_LOSS_FACTOR * short_run_loss:
        ratio = final_loss / short_run_loss
        return (
            f"its validation loss {final_loss:.3g} is {ratio:.1f}x that of its short run "
            f"({short_run_loss:.3g})"
        )
    return None


def choose_weight_decay(results: Mapping[float, float]) -> tuple[float, str]:
    """The weight decay with the lowest validation loss, and a sentence saying why."""
    if not results:
        raise ValueError("results must hold at least one weight decay")
    finite = {wd: loss for wd, loss in results.items() if math.isfinite(loss)}
    if not finite:
        return 0.0, "every candidate diverged; weight decay 0 by default"
    best = min(finite, key=lambda wd: finite[wd])
    ranking = ", ".join(
        f"{wd:g}: {finite[wd]:.4f}" for wd in sorted(finite, key=lambda w: finite[w])
    )
    return best, f"lowest validation loss after the short runs ({ranking})"
