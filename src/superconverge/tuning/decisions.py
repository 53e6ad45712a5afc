"""The recipe's decisions: pure functions on measured numbers (no torch)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from superconverge._compare import beats, gain, times, worse
from superconverge._display import plural
from superconverge.tuning.settings import DEFAULT_SETTINGS, RecipeSettings


def largest_batch_allowed(
    train_size: int, epochs: int, settings: RecipeSettings = DEFAULT_SETTINGS
) -> int:
    """The largest batch the automatic choice may take: at most 1/`min_steps_per_epoch` of the
    training set, and small enough that the final run gets `min_total_steps` updates (that floor
    alone never goes below `min_auto_batch`); at least 1.

    Example:
        >>> largest_batch_allowed(60_000, 3)  # 1/10 of the set allows 6,000; 1,000 updates 180
        180
        >>> largest_batch_allowed(1_293, 2)  # the update floor stops at 16
        16
    """
    by_epoch = train_size // settings.min_steps_per_epoch
    by_run = max(settings.min_auto_batch, train_size * epochs // settings.min_total_steps)
    return max(1, min(by_epoch, by_run))


def batch_sizes_to_try(max_batch: int, settings: RecipeSettings = DEFAULT_SETTINGS) -> list[int]:
    """The candidate sizes up to `max_batch`, or `max_batch` alone when every candidate is larger.

    Example:
        >>> batch_sizes_to_try(100)
        [16, 32, 64]
        >>> batch_sizes_to_try(10)
        [10]
    """
    return [size for size in settings.batch_candidates if size <= max_batch] or [max_batch]


def lr_for_batch(lr: float, from_batch: int, to_batch: int) -> float:
    """An LR found at one batch size, moved to another by the linear scaling rule (Goyal et al.,
    arXiv:1706.02677; README, "Reliability"): the LR follows the batch.

    Example:
        >>> lr_for_batch(0.1, 256, 128)
        0.05
    """
    return lr * to_batch / from_batch


def choose_batch_size(
    throughput: Mapping[int, float], max_batch: int, settings: RecipeSettings = DEFAULT_SETTINGS
) -> tuple[int, str]:
    """The batch where samples/s stops growing: the first size whose next doubling gains less
    than `settings.throughput_gain` (10%), never above `max_batch` (the training set allows no
    more).

    Example:
        >>> choose_batch_size({32: 1000.0, 64: 1800.0, 128: 1900.0, 256: 1950.0}, 10_000)
        (64, '128 gave 1,900 samples/s, only 6% more than 64 (1,800)')
        >>> choose_batch_size({32: 74549.0, 64: 32527.0}, 10_000)[1]
        '64 gave 32,527 samples/s, 56% fewer than 32 (74,549)'
    """
    sizes = sorted(size for size in throughput if size <= max_batch)
    if not sizes:
        raise ValueError(f"no measured batch size fits the training set ({max_batch} samples)")
    for small, large in itertools.pairwise(sizes):
        gain = throughput[large] / throughput[small] - 1.0
        if gain < settings.throughput_gain:
            # a slower larger batch is "fewer", not "only -56% more" (a user's check)
            change = f"only {100 * gain:.0f}% more" if gain >= 0 else f"{-100 * gain:.0f}% fewer"
            return small, (
                f"{large} gave {throughput[large]:,.0f} samples/s, {change} than {small} "
                f"({throughput[small]:,.0f})"
            )
    last = sizes[-1]
    if len(sizes) == 1:
        return (
            last,
            f"{last} is the only candidate size allowed ({throughput[last]:,.0f} samples/s)",
        )
    return last, f"samples/s still grew up to {last}, the largest size tried"


def weight_decay_midpoint(
    results: Mapping[float, float], settings: RecipeSettings = DEFAULT_SETTINGS
) -> float | None:
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
    if abs(results[partner] - results[best]) > settings.close_losses * abs(results[best]):
        return None
    middle = 10 ** ((math.log10(best) + math.log10(partner)) / 2)
    return None if middle in results else middle


def choose_max_lr(
    losses: Mapping[float, float], settings: RecipeSettings = DEFAULT_SETTINGS
) -> tuple[float | None, str]:
    """The max_lr candidate to keep after the short runs, and a sentence saying why.

    Start from the lowest LR whose run stayed finite; move up to a higher candidate only when its
    validation loss is more than `settings.lr_safety_margin` (2%) below the current choice. Above
    a finite choice, a run that diverged ends the walk: a finite run above a diverged one sits at
    the edge of stability (on a regression, 0.906 taken after 0.544 diverged left the model 4x
    worse than an LR 30x lower). None when every run diverged.

    Example:
        >>> choose_max_lr({0.01: 0.300, 0.02: 0.297, 0.033: 0.250})
        (0.033, '0.033 beat 0.01 by 16.7% (> 2.0%) on validation loss')
        >>> choose_max_lr({0.01: 0.300, 0.02: 0.297})[0]  # 1% better: not worth the risk
        0.01
        >>> choose_max_lr({0.27: 8.39, 0.54: float("nan"), 0.91: 7.58})
        (0.27, '0.27: the lowest candidate; 0.54 diverged, so nothing above it counts')
    """
    finite = sorted((lr, loss) for lr, loss in losses.items() if math.isfinite(loss))
    if not finite:
        return None, "every short run diverged"
    margin = settings.lr_safety_margin
    chosen, chosen_loss = finite[0]
    why = f"{chosen:.3g}: the lowest candidate; no higher one beat it by > {margin:.1%}"
    diverged = [lr for lr, loss in losses.items() if not math.isfinite(loss) and lr > chosen]
    edge = min(diverged, default=math.inf)  # nothing from here up is taken
    for lr, loss in finite[1:]:
        if lr > edge:
            break
        if beats(loss, chosen_loss, margin):
            by = gain(loss, chosen_loss)
            why = f"{lr:.3g} beat {chosen:.3g} by {by:.1%} (> {margin:.1%}) on validation loss"
            chosen, chosen_loss = lr, loss
    if any(lr > edge for lr, _ in finite):  # finite runs above it were not taken: say why
        if why.endswith(f"no higher one beat it by > {margin:.1%}"):
            why = why.split("; no higher")[0]
        why += f"; {edge:.3g} diverged, so nothing above it counts"
    return chosen, why


def lower_candidate(
    losses: Mapping[float, float],
    chosen: float | None,
    settings: RecipeSettings = DEFAULT_SETTINGS,
) -> float | None:
    """The next LR to try below those in `losses` (/ `settings.lr_extension_divisor`), or None
    when `chosen` is not the lowest tried. (None for `chosen` means every run diverged: look
    lower too.)

    Example:
        >>> lower_candidate({0.05: 1.7, 0.1: 2.3}, 0.05)
        0.016666666666666666
        >>> lower_candidate({0.05: 1.7, 0.1: 2.3}, 0.1) is None  # not at the edge of the grid
        True
    """
    lowest = min(losses)
    if chosen is not None and chosen != lowest:
        return None
    return lowest / settings.lr_extension_divisor


def higher_candidate(
    losses: Mapping[float, float],
    chosen: float | None,
    ceiling: float = math.inf,
    settings: RecipeSettings = DEFAULT_SETTINGS,
) -> float | None:
    """The next LR to try above those in `losses` (x `settings.lr_raise_factor`, at most
    `ceiling`), or
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
    return min(highest * settings.lr_raise_factor, ceiling)


def lr_grid(
    lowest_loss_lr: float,
    divergence_lr: float | None,
    settings: RecipeSettings = DEFAULT_SETTINGS,
) -> tuple[list[float], float]:
    """The max_lr candidates of the short runs, and the ceiling an upward extension may reach.

    The candidates are the range test's lowest-loss LR / each of `settings.lr_divisors`, none
    above the divergence LR / `settings.divergence_divisor`; the ceiling is the lower of that
    bound and the lowest-loss LR itself (past it the loss was rising).

    Example:
        >>> lr_grid(0.3, None)
        ([0.03, 0.06, 0.09999999999999999], 0.3)
        >>> lr_grid(0.3, 0.16)  # half the divergence LR caps the grid
        ([0.03, 0.06, 0.08], 0.08)
    """
    ceiling = (divergence_lr or math.inf) / settings.divergence_divisor
    candidates = sorted({min(lowest_loss_lr / d, ceiling) for d in settings.lr_divisors})
    return candidates, min(ceiling, lowest_loss_lr)


@dataclass(frozen=True)
class LrExtension:
    """The outcome of extending the LR grid past its edges (`extend_lr_grid`)."""

    max_lr: float | None  # the chosen candidate (None: every run diverged)
    why: str  # a sentence saying why it was chosen
    below: tuple[float, ...] = ()  # LRs tried under the grid, in order
    above: tuple[float, ...] = ()  # LRs tried over the grid, in order


def extend_lr_grid(
    losses: dict[float, float],
    chosen: float | None,
    why: str,
    ceiling: float,
    loss_at: Callable[[float], float],
    settings: RecipeSettings = DEFAULT_SETTINGS,
) -> LrExtension:
    """Look past the edge of the LR grid while the edge keeps winning.

    The lowest candidate won (or nothing finite): try / `lr_extension_divisor` while a lower LR
    gives any lower validation loss (lower is safer). The highest won: try x `lr_raise_factor`,
    never past `ceiling`, while a higher LR wins by `lr_safety_margin` (higher is riskier). At most
    `lr_extensions` extra runs. `loss_at(lr)` runs one short run; each result is added to `losses`.

    Example:
        >>> losses = {0.01: 0.5, 0.02: 0.4}
        >>> extend_lr_grid(losses, 0.02, "0.02 won", 1.0, lambda lr: 0.4 - lr).above
        (0.04, 0.08, 0.16)
        >>> extend_lr_grid({0.01: 0.5, 0.02: 0.6}, 0.01, "", 1.0, lambda lr: 0.3).below  # no gain
        (0.0033333333333333335, 0.0011111111111111111)
    """
    below: list[float] = []
    above: list[float] = []
    for _ in range(settings.lr_extensions):
        lower = lower_candidate(losses, chosen, settings)
        if lower is not None:
            losses[lower] = loss = loss_at(lower)
            below.append(lower)
            current = math.inf if chosen is None else losses[chosen]
            if not (math.isfinite(loss) and loss < current):  # lower is safer: any gain will do
                break
            chosen, why = lower, f"{lower:.3g}: below the grid, a lower validation loss than above"
            continue
        higher = higher_candidate(losses, chosen, ceiling, settings)
        if higher is None or chosen is None:
            break
        losses[higher] = loss = loss_at(higher)
        above.append(higher)
        # higher is riskier: the same margin as inside the grid
        winner, higher_why = choose_max_lr({chosen: losses[chosen], higher: loss}, settings)
        if winner != higher:
            break
        chosen, why = higher, f"above the grid, {higher_why}"
    lost = [lr for lr in below if lr != chosen and (chosen is None or lr < chosen)]
    if lost:  # "the lowest candidate" read as if nothing lower was tried
        why += f"; lower, {', '.join(f'{lr:.3g}' for lr in lost)} did no better"
    return LrExtension(chosen, why, tuple(below), tuple(above))


def choose_momentum(
    losses: Mapping[tuple[float, float] | float, float],
) -> tuple[float, float] | float:
    """The momentum (cyclical pair or constant) with the lowest finite validation loss; the
    first one listed (the cyclical default) when every run diverged or on a tie.

    Example:
        >>> choose_momentum({(0.95, 0.85): 0.31, 0.9: 0.30, 0.99: float("nan")})
        0.9
    """
    options = list(losses)
    return min(options, key=lambda m: losses[m] if math.isfinite(losses[m]) else math.inf)


def final_run_failed(
    status: str,
    final_loss: float | None,
    short_run_loss: float,
    settings: RecipeSettings = DEFAULT_SETTINGS,
) -> str | None:
    """Why the final run must be redone at a lower LR, or None when it is fine: it diverged, or
    its validation loss ends above `settings.retry_loss_factor` x its short run's.

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
    if math.isfinite(short_run_loss) and worse(
        final_loss, short_run_loss, settings.retry_loss_factor
    ):
        return (
            f"its validation loss {final_loss:.3g} is {times(final_loss, short_run_loss, '.1f')} "
            f"that of its short run ({short_run_loss:.3g})"
        )
    return None


def choose_weight_decay(
    results: Mapping[float, float], anchor: float | None = None, margin: float = 0.0
) -> tuple[float, str]:
    """The weight decay with the lowest validation loss, and a sentence saying why; with an
    `anchor` (the decay the LR was chosen at), another replaces it only when it beats the
    anchor's loss by more than `margin` (a fraction: the noise of a short run).

    Example:
        >>> choose_weight_decay({1e-4: 0.300, 1e-3: 0.296}, anchor=1e-4, margin=0.02)[0]
        0.0001
        >>> choose_weight_decay({1e-4: 0.300, 1e-3: 0.280}, anchor=1e-4, margin=0.02)[0]
        0.001
    """
    if not results:
        raise ValueError("results must hold at least one weight decay")
    finite = {wd: loss for wd, loss in results.items() if math.isfinite(loss)}
    if not finite:
        fallback = 0.0 if anchor is None else anchor
        return fallback, f"every candidate diverged; weight decay {fallback:g} by default"
    best = min(finite, key=lambda wd: finite[wd])
    ranking = ", ".join(
        f"{wd:g}: {finite[wd]:.4f}" for wd in sorted(finite, key=lambda w: finite[w])
    )
    if (
        anchor is not None
        and anchor in finite
        and not beats(finite[best], finite[anchor], margin)
        and best != anchor
    ):
        return anchor, (
            f"{anchor:g}, the anchor: no candidate beat it by more than {margin:.1%}, the "
            f"noise of a short run ({ranking})"
        )
    return best, f"lowest validation loss after the short runs ({ranking})"


def weight_decay_runs_skipped(
    train_loss: float | None,
    val_loss: float | None,
    margin: float,
    settings: RecipeSettings = DEFAULT_SETTINGS,
) -> str | None:
    """Why the weight-decay runs are not run (the anchor decay stays), or None when they are:
    with `settings.weight_decay_runs` ``"if_overfitting"`` (the default), only a short run at
    the chosen settings that may overfit asks for them — its training loss at its end below its
    validation loss by more than `margin` (the noise of a short run), or losses that cannot
    tell. Weight decay is a regulariser (arXiv:1803.09820, Remark 1); in the 30 recipe runs of
    issue 16's benchmarks where the stage compared candidates it kept its anchor every time, at
    up to a quarter of a run (docs/benchmarks.md, "Weight-decay runs only where the short run
    may overfit").

    Example:
        >>> weight_decay_runs_skipped(1.71, 1.62, 0.05).split(":")[0]
        'the short run shows no overfitting (training loss 1.71 is not below the validation loss 1.62 by more than 5.0%)'
        >>> weight_decay_runs_skipped(0.20, 0.35, 0.05) is None  # a generalisation gap
        True
    """
    if settings.weight_decay_runs == "always" or train_loss is None or val_loss is None:
        return None
    if not _shows_no_overfitting(train_loss, val_loss, margin):
        return None
    return (
        f"{_no_overfitting(train_loss, val_loss, margin)}: a regulariser has nothing to "
        "correct, so its runs are not run"
    )


def _shows_no_overfitting(train_loss: float, val_loss: float, margin: float) -> bool:
    """Both losses finite, and the training loss (at the short run's end) not below the
    validation loss by more than `margin` of it (also for a loss below 0)."""
    if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
        return False
    return train_loss >= val_loss - margin * abs(val_loss)


def _no_overfitting(train_loss: float, val_loss: float, margin: float) -> str:
    return (
        f"the short run shows no overfitting (training loss {train_loss:.3g} is not below the "
        f"validation loss {val_loss:.3g} by more than {margin:.1%})"
    )


def final_run_extension(
    left_samples: int,
    samples_per_epoch: int,
    train_loss: float | None,
    val_loss: float | None,
    margin: float,
    settings: RecipeSettings = DEFAULT_SETTINGS,
) -> tuple[int, str]:
    """Whole epochs the final run gains by taking the weight-decay runs' share of the budget
    (`left_samples`), and a sentence saying why (0: the weight-decay stage runs as usual).

    Only where the short run at the chosen settings shows no sign of overfitting: its training
    loss at its end (the mean of its last tenth of steps) is not below its validation loss by
    more than `margin` (the noise of a short run; relative to the validation loss's size).
    Weight decay is a regulariser; a model that does not overfit is not held back by it
    (arXiv:1803.09820, Remark 1: underfitting asks for less regularisation and more training),
    and the compute buys more as training (issue 16: on CIFAR-10 the recipe's own choices
    trained for twice the epochs matched schedule-free AdamW). Only whole epochs: a share below
    one epoch stays with the weight-decay runs.

    Example:
        >>> extra, why = final_run_extension(12_000, 5_000, 1.71, 1.62, 0.05)
        >>> extra, why.split(": ")[-1]
        (2, '10,000 of the 12,000 samples left buy 2 more epochs')
        >>> final_run_extension(12_000, 5_000, 0.20, 0.35, 0.05)[0]  # a generalisation gap
        0
        >>> final_run_extension(4_000, 5_000, 1.71, 1.62, 0.05)[0]  # under one epoch
        0
    """
    if not settings.extend_final_run:
        return 0, "off (RecipeSettings.extend_final_run)"
    epochs = max(0, left_samples) // max(1, samples_per_epoch)
    if train_loss is None or val_loss is None:
        return 0, "no training or validation loss of the chosen short run"
    if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
        return 0, "the chosen short run's losses are not finite"
    if not _shows_no_overfitting(train_loss, val_loss, margin):
        return 0, (
            f"the short run may overfit (training loss {train_loss:.3g} is below the validation "
            f"loss {val_loss:.3g} by more than {margin:.1%}): weight decay is searched"
        )
    if epochs < 1:
        return 0, (
            f"the {left_samples:,} samples left are less than one epoch ({samples_per_epoch:,})"
        )
    return epochs, (
        f"{_no_overfitting(train_loss, val_loss, margin)}: "
        f"{epochs * samples_per_epoch:,} of the {left_samples:,} samples left buy "
        f"{plural(epochs, 'more epoch')}"
    )


def searches_in_run(
    settings: RecipeSettings, weight_decays: object, compare_momentum: bool, parallel: bool = False
) -> bool:
    """Whether the recipe searches the LR inside its final run (`RecipeSettings.lr_search`):
    not where the call asks for what only short runs do: compare several weight decays or the
    momenta, or spread the short runs over processes (`workers`, a `study`): `parallel`.

    Example:
        >>> searches_in_run(RecipeSettings(), None, False)
        True
        >>> searches_in_run(RecipeSettings(), [1e-4, 1e-3], False)
        False
    """
    asked = only_short_runs(weight_decays, compare_momentum, parallel)
    return settings.lr_search == "in_run" and not asked


def only_short_runs(weight_decays: object, compare_momentum: bool, parallel: bool) -> list[str]:
    """What a call asks that only short runs do, as "this run ..." phrases; [] for nothing.

    Example:
        >>> only_short_runs([1e-4, 1e-3], True, False)
        ['compares several weight decays', 'compares the momenta']
    """
    several = weight_decays is not None and len(list(weight_decays)) > 1  # type: ignore[call-overload]
    return [
        reason
        for reason, asked in (
            ("compares several weight decays", several),
            ("compares the momenta", compare_momentum),
            ("spreads trials over processes (workers, a study)", parallel),
        )
        if asked
    ]
