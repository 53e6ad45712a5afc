"""The recipe's stages. Each measures (through `RecipeSetup`, which records and charges every
measurement), decides with `decisions`, and returns its evidence record (`evidence`): the
decision, why, its seconds and training samples, the details."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from superconverge._compare import beats, gain, worse
from superconverge._display import decision as decision_text
from superconverge._display import plural
from superconverge.data.sources import DataSource
from superconverge.finder.analysis import SWEEP_FURTHER
from superconverge.finder.result import RangeTestResult
from superconverge.training.progress import tell
from superconverge.tuning.batch_size import find_batch_size
from superconverge.tuning.budget import SearchBudget
from superconverge.tuning.decisions import (
    batch_sizes_to_try,
    choose_max_lr,
    choose_momentum,
    choose_weight_decay,
    extend_lr_grid,
    largest_batch_allowed,
    lr_grid,
    weight_decay_midpoint,
)
from superconverge.tuning.probes import Momentum, ShortRun
from superconverge.tuning.settings import RecipeSettings
from superconverge.tuning.setup import RecipeSetup, short_run_label, with_seed

logger = logging.getLogger(__name__)


def evidence(
    stage: str, decision: Any, why: str, seconds: float, samples: int = 0, **details: Any
) -> dict[str, Any]:
    """The evidence record of one stage of the recipe, as ``plan.json`` stores it."""
    tell(
        f"tune: {stage} = {decision_text(decision)} ({why}) [{seconds:.1f} s, {samples:,} samples]",
        logger,
    )
    return {
        "step": stage,
        "decision": decision,
        "why": why,
        "seconds": seconds,
        "samples": samples,
        "details": details,
    }


def in_run_search_record(
    optimizer: Any,
    weight_decay: float,
    epochs: int,
    per_epoch: int,
    budget: SearchBudget,
    settings: RecipeSettings,
) -> dict[str, Any]:
    """2-4 when the LR is searched inside the final run (`RecipeSettings.lr_search`): the
    optimizer (the one given, or `in_run_optimizer`), its anchor weight decay, the momentum
    given, and the final run's length: `epochs` plus the whole epochs the budget's samples hold
    (with `extend_final_run`), since no short run spends them."""
    extra = budget.left() // per_epoch if settings.extend_final_run else 0
    name = optimizer if isinstance(optimizer, str) else "your optimizer"
    length = (
        f"{plural(epochs + extra, 'epoch')}: {epochs} asked + {extra} from the budget's "
        f"{budget.left():,} samples"
        if extra
        else plural(epochs, "epoch")
    )
    why = (
        f"{name} at weight decay {weight_decay:g}; the final run's rise is the range test "
        f"(no short runs); {length}"
    )
    return evidence(
        "lr_search",
        "in the final run",
        why,
        0.0,
        0,
        optimizer=name,
        weight_decay=weight_decay,
        extra_epochs=extra,
    )


def samples_per_epoch(setup: RecipeSetup) -> int | None:
    """Training samples per epoch: known for tensors and a ``Dataset``; for a loader factory
    its batches at the smallest candidate size times that size; None for a stream (its epoch
    is `steps_per_epoch` batches, whatever their size)."""
    source = setup.train_data
    if source.num_samples is not None:
        return source.num_samples
    if source.steps_per_epoch is not None:
        return None
    size = min(setup.settings.batch_candidates)
    loader = source.loader(size)
    # the factory's own loader (`FactoryLoader.iterable`: what make_loader returned)
    return _loader_samples(getattr(loader, "iterable", loader)) or len(loader) * size


def _loader_samples(loader: Any) -> int | None:
    """A factory's ``DataLoader`` that batches its sampler's indices itself: the samples of
    an epoch, its last batch's short count included (``len(loader) * size`` counted it full:
    1,824 samples reported for 1,800); None for any other loader."""
    from torch.utils.data import BatchSampler, DataLoader

    if not isinstance(loader, DataLoader) or not isinstance(loader.batch_sampler, BatchSampler):
        return None
    if loader.batch_sampler.drop_last:
        return len(loader) * int(loader.batch_sampler.batch_size)
    try:
        return len(loader.batch_sampler.sampler)  # type: ignore[arg-type]
    except TypeError:  # a sampler without a length
        return None


def own_batch_size(source: DataSource) -> int | None:
    """The batch size of a loader the user built (its ``batch_size``; for one whose items are
    batches, ``batch_size=None``, its first item's samples; for one with a batch sampler its
    samples over its batches, rounded up); None for data tune batches itself."""
    if source.fixed_batch_size is not None:  # a DataLoader over a stream has one too
        return source.fixed_batch_size
    if source.kind != "loader":
        return None
    if getattr(source.data, "batch_sampler", None) is None:  # items are batches of unknown size
        return None
    samples = source.num_samples
    batches = len(source.data) if samples else 0
    return -(-samples // batches) if samples and batches else None


def batch_size_stage(setup: RecipeSetup, batch_size: int | str, epochs: int) -> dict[str, Any]:
    """1. The batch size: given; on CUDA `find_batch_size` (the largest whose peak memory fits,
    halved while it runs out of memory); on the CPU the
    largest candidate the data allow (not timed: timings of neighbouring sizes fall within a
    busy machine's noise and chose differently from call to call, issue 16)."""
    start = time.perf_counter()
    settings, train_size = setup.settings, samples_per_epoch(setup)
    if train_size is None:  # a stream: steps per epoch are fixed, whatever the batch
        max_batch = settings.max_stream_batch
    else:
        max_batch = largest_batch_allowed(train_size, epochs, settings)
    details: dict[str, Any] = {}
    samples = 0
    own = own_batch_size(setup.train_data)
    if own is not None:  # a DataLoader the user built: its batches are not ours to size
        how = "its batch_size" if setup.train_data.fixed_batch_size else "its samples / batches"
        why = (
            f"your loader's own ({how}); pass its Dataset or make_loader(batch_size) to let "
            "tune choose"
        )
        return evidence("batch_size", own, why, time.perf_counter() - start, 0)
    if batch_size != "auto":
        chosen, why = int(batch_size), "given"
    elif setup.device.type == "cuda":
        found = find_batch_size(
            setup.model_fn,
            setup.train_data,
            setup.loss_fn,
            device=setup.device,
            max_batch=max_batch,
            settings=settings,
        )
        chosen, why, samples = found.batch_size, found.why, found.samples
        details["peak_memory_fraction"] = {str(k): v for k, v in found.measurements.items()}
        details["out_of_memory"] = list(found.out_of_memory)
    else:
        chosen = batch_sizes_to_try(max_batch, settings)[-1]
        why = (
            f"the largest candidate size the data allow ({chosen}); on the CPU sizes are not timed"
        )
    if batch_size == "auto" and train_size is None:
        why += (
            f"; at most {max_batch} for a stream: its epoch is steps_per_epoch batches whatever "
            "their size, so a larger batch would only read more samples per epoch"
        )
    if (
        batch_size == "auto"
        and train_size is not None
        and max_batch < train_size // settings.min_steps_per_epoch
    ):
        larger = [size for size in settings.batch_candidates if size > max_batch]
        sizes = f"{min(larger)} and larger" if larger else f"sizes above {max_batch}"
        why += (
            f"; {sizes} were not tried: they would leave the {epochs}-epoch run fewer than "
            f"{settings.min_total_steps} updates"
        )
    seconds = time.perf_counter() - start
    return evidence("batch_size", chosen, why, seconds, samples, **details)


@dataclass
class FamilyBounds:
    """One optimizer's range test and LR short runs (at its anchor weight decay)."""

    optimizer: str | Any
    weight_decay: float  # the anchor
    range_test: RangeTestResult
    note: str
    short: ShortRun  # at the anchor decay; LRs set per run
    losses: dict[float, float]
    runs: dict[float, dict[str, Any]]
    ceiling: float


def _name(optimizer: Any) -> str:
    return optimizer if isinstance(optimizer, str) else getattr(optimizer, "__name__", "custom")


def _bounds_range_test(
    setup: RecipeSetup, batch_size: int, optimizer: Any, weight_decay: float, long: bool = False
) -> tuple[RangeTestResult, str]:
    """The range test behind the LR bounds (with validation), and a note when it was redone;
    with `long`, the sweep over `settings.long_sweep_steps` only (every optimizer's usual sweep
    found nothing). The trainers it makes are closed before it returns: their DataLoader
    workers stop before the short runs start their own."""
    made: list[Any] = []  # the Trainer(s) of the sweeps (none when read back from the journal)
    label = f"bounds {_name(optimizer)} wd={weight_decay!r}"

    def sweep(**kwargs: Any) -> Any:  # a RangeTestResult
        if not made:
            made.append(setup.trainer(batch_size, optimizer, weight_decay, validate=True))
        return made[0].lr_find(val_data=made[0].val_loader, **kwargs)

    try:
        if long:
            steps = setup.settings.long_sweep_steps
            range_test = setup.range_test(
                "lr_bounds", f"{label}, long", lambda: sweep(num_steps=steps), batch_size
            )
            note = f"swept over {steps} steps: no optimizer's shorter sweep found an LR"
            return range_test, note
        range_test = setup.range_test("lr_bounds", label, sweep, batch_size)
        if range_test.max_lr is None and range_test.failure in SWEEP_FURTHER:
            # a loss still falling (or flat) at the sweep's end: sweep two decades further, at
            # the same density of points, instead of giving up (RecipeSettings.wide_sweep_end_lr)
            first_reason = range_test.reason
            end_lr = setup.settings.wide_sweep_end_lr
            range_test = setup.range_test(
                "lr_bounds",
                f"{label}, wide",
                lambda: sweep(end_lr=end_lr, num_steps=setup.settings.wide_sweep_steps),
                batch_size,
            )
            return range_test, f"first sweep to LR 10: {first_reason}; swept again to LR {end_lr:g}"
        if range_test.max_lr is None and range_test.failure == "never_down":
            # the loss may fall too slowly for the sweep's steps to show it (a noisy regression):
            # the same LRs, more steps
            first_reason, steps = range_test.reason, setup.settings.long_sweep_steps
            range_test = setup.range_test(
                "lr_bounds", f"{label}, long", lambda: sweep(num_steps=steps), batch_size
            )
            return range_test, f"first sweep: {first_reason}; swept again over {steps} steps"
        return range_test, ""
    finally:
        for trainer in made:
            trainer.close()


@dataclass(frozen=True)
class FamilyFailure:
    """Why an optimizer's LR search found nothing, and whether a longer sweep may (a curve
    that never fell, or short runs that did not move, in the usual sweep's steps)."""

    reason: str
    sweep_longer: bool = False


# short runs whose validation losses all lie within this fraction of each other over the
# grid's LRs (a factor of 3 or more) did not learn: the LRs were too small to move the model
# (SST-2 at batch 16: SGD's 1.96e-07 to 6.54e-07 all gave 0.6945, chance)
UNMOVED_SHORT_RUNS = 0.001
UNMOVED_FALL = 0.01  # ... and none of them more than 1% below the untrained model's loss


def family_bounds(
    setup: RecipeSetup, short: ShortRun, optimizer: Any, weight_decay: float, long: bool = False
) -> FamilyBounds | FamilyFailure:
    """One optimizer's range test (`long`: over more steps), then short runs on the grid below
    its lowest-loss LR; why it found no LR when it found none or its short runs did not learn."""
    settings = setup.settings
    range_test, note = _bounds_range_test(setup, short.batch_size, optimizer, weight_decay, long)
    if range_test.max_lr is None:
        return FamilyFailure(range_test.reason, range_test.failure == "no_fall" and not long)
    # only a range test loaded from an old file lacks the lowest-loss LR: its max_lr is the anchor
    lowest = range_test.lowest_loss_lr or range_test.max_lr
    grid, ceiling = lr_grid(lowest, range_test.suggestions.get("divergence"), settings)
    runs = dict(
        zip(
            grid,
            setup.run_short_runs("lr_bounds", [_at(setup, short, lr) for lr in grid]),
            strict=True,
        )
    )
    losses = {lr: float(run["val_loss"]) for lr, run in runs.items()}
    finite = [loss for loss in losses.values() if math.isfinite(loss)]
    start = next(
        (v for v in (*range_test.val_losses[:1], *range_test.losses[:1]) if math.isfinite(v)),
        math.inf,
    )  # the untrained model's: the sweep's first validation (else training) loss
    if did_not_learn(finite, start):
        return FamilyFailure(
            f"its short runs did not learn: validation loss {finite[0]:.4g} at every LR from "
            f"{min(grid):.3g} to {max(grid):.3g} (the range test's lowest point, at "
            f"{lowest:.3g}, was noise on a flat curve)",
            not long,
        )
    return FamilyBounds(optimizer, weight_decay, range_test, note, short, losses, runs, ceiling)


def did_not_learn(losses: list[float], start: float) -> bool:
    """Whether short runs at three or more LRs left the model where it started: the highest
    loss within `UNMOVED_SHORT_RUNS` of the lowest, which beats the untrained model's `start`
    by no more than `UNMOVED_FALL` (runs that all reach one floor, a noisy regression's, did
    learn).

    Example:
        >>> did_not_learn([0.6945, 0.6945, 0.6946], 0.6950), did_not_learn([9.49, 9.49, 9.491], 40.0)
        (True, False)
    """
    if len(losses) < 3 or worse(max(losses), min(losses), 1 + UNMOVED_SHORT_RUNS):
        return False
    return not beats(min(losses), start, UNMOVED_FALL)


def _at(
    setup: RecipeSetup, short: ShortRun, lr: float, weight_decay: float | None = None
) -> ShortRun:
    """`short` at max_lr `lr` (min_lr = lr / the settings' divisor) and `weight_decay` (default:
    its own)."""
    wd = short.weight_decay if weight_decay is None else weight_decay
    return short.at(lr, lr / setup.settings.min_lr_divisor, wd)


def _best(family: FamilyBounds) -> tuple[float, float]:
    finite = {lr: loss for lr, loss in family.losses.items() if math.isfinite(loss)}
    if not finite:
        return math.nan, math.inf
    lr = min(finite, key=lambda key: finite[key])
    return lr, finite[lr]


def measure_noise(setup: RecipeSetup, family: FamilyBounds) -> dict[str, Any] | None:
    """Repeat the family's best short run from another seed: the relative difference of the two
    validation losses is the noise no decision may rest on (None: no budget, or no finite run)."""
    lr, loss = _best(family)
    if not setup.settings.measure_noise or not math.isfinite(loss):
        return None
    repeat = with_seed(_at(setup, family.short, lr), setup.seed + 1)
    if not setup.budget.affords_needed(repeat.samples):
        return None
    again = float(setup.run_short("noise", repeat)["val_loss"])
    if not math.isfinite(again):
        return {"max_lr": lr, "val_losses": [loss, again], "relative": None}
    relative = abs(again - loss) / max(min(abs(loss), abs(again)), 1e-12)
    return {"max_lr": lr, "val_losses": [loss, again], "relative": relative}


MAX_MARGIN = 0.99  # the most a measured noise can ask of a gain (`margin_for`)


def margin_for(settings: RecipeSettings, noise: dict[str, Any] | None) -> float:
    """The relative gain a choice away from the default (a higher LR, another optimizer or
    weight decay) must show: the measured noise of a short run (at least
    `settings.noise_floor`), or `settings.lr_safety_margin` when it was not measured. A fixed 2%
    was too strict where losses sit near chance (SST-2: AdamW's 0.681 lost to SGD's 0.690 with
    a measured noise of 0.3%) and too loose where short runs are noisy (digits: 31%).

    Capped at `MAX_MARGIN`: two seeds' losses can differ by more than the smaller one (100%+,
    e.g. digits at 40 epochs, losses near 0), and then only a gain of 99% counts (every choice
    stays at its default) instead of a margin of 100% or more that no setting accepts."""
    measured = None if noise is None else noise.get("relative")
    if measured is None:
        return settings.lr_safety_margin
    return min(max(settings.noise_floor, float(measured)), MAX_MARGIN)


def lr_bounds_stage(
    setup: RecipeSetup, families: list[FamilyBounds], failed: dict[str, str], start: float
) -> tuple[FamilyBounds, float, float, dict[str, Any]]:
    """2. The optimizer (when several were compared) and max_lr: the short runs' validation
    losses, each choice away from the first family and the lowest LR needing to win by more
    than the margin (the settings' or the measured noise); the grid extended past its edge
    while the edge keeps winning and the budget allows. Returns the family, max_lr, the margin
    and the evidence (`start`: when the families' range tests began)."""
    settings = setup.settings
    noise = measure_noise(setup, min(families, key=lambda f: _best(f)[1]))
    margin = margin_for(settings, noise)
    decide = replace(settings, lr_safety_margin=margin)
    # each family's max_lr first (the grid extended while its edge wins and the budget allows,
    # the most promising family first): on SST-2 both grids sat within 0.1% of each other at
    # their top edges, and only AdamW's extension showed it learning (issue 16)
    picks = {}
    for family in sorted(families, key=lambda f: _best(f)[1]):
        picks[id(family)] = _family_max_lr(setup, family, decide)
    chosen = families[0]
    family_why = ""
    for other in families[1:]:
        other_loss, chosen_loss = picks[id(other)][1], picks[id(chosen)][1]
        if beats(other_loss, chosen_loss, margin):
            family_why = (
                f"{_name(other.optimizer)} beat {_name(chosen.optimizer)} by "
                f"{gain(other_loss, chosen_loss):.1%} "
                f"(> {margin:.1%}) at its chosen LR; "
            )
            chosen = other
    if len(families) > 1 and not family_why:
        family_why = f"{_name(chosen.optimizer)}: no other optimizer beat it by > {margin:.1%}; "
    extension, losses = picks[id(chosen)][2], chosen.losses
    range_test = chosen.range_test
    max_lr = extension.max_lr if extension.max_lr is not None else float(range_test.max_lr or 0)
    ranking = ", ".join(
        f"{lr:.3g}: {losses[lr]:.4f}"
        if math.isfinite(losses[lr])
        else f"{lr:.3g}: {chosen.runs[lr].get('status') or 'no loss'}"  # not "nan"
        for lr in chosen.runs
    )
    divisors = "/".join(f"{d:g}" for d in settings.lr_divisors)
    note = chosen.note + "; " if chosen.note else ""
    why_text = (
        f"{family_why}range test: {note}{range_test.reason}; short runs at lowest-loss LR "
        f"/{divisors} → validation loss {ranking}; chosen {extension.why}"
    )
    if failed:
        why_text += "; " + "; ".join(f"{name} dropped: {reason}" for name, reason in failed.items())
    measured = None if noise is None else noise.get("relative")
    if measured is not None and measured >= MAX_MARGIN:
        why_text += (
            f"; the same short run from another seed differed by {measured:.0%}: too noisy "
            f"for a gain under {MAX_MARGIN:.0%} to count, so every choice stays at its default"
        )
    decision = {
        "optimizer": _name(chosen.optimizer),
        "max_lr": max_lr,
        "min_lr": max_lr / settings.min_lr_divisor,
    }
    confidence, superconvergence = range_test.confidence, range_test.superconvergence
    spent = setup.budget.spent
    record = evidence(
        "lr_bounds",
        decision,
        why_text,
        time.perf_counter() - start,
        spent.get("lr_bounds", 0) + spent.get("noise", 0),
        suggestions=range_test.suggestions,
        extended_below=list(extension.below),
        extended_above=list(extension.above),
        short_runs={f"{lr:.4g}": run for lr, run in chosen.runs.items()},
        optimizers={
            _name(f.optimizer): {
                "max_lr": picks[id(f)][0],
                "val_loss": picks[id(f)][1],
                "short_runs": {f"{lr:.4g}": loss for lr, loss in f.losses.items()},
            }
            for f in families
        },
        failed_optimizers=failed,
        noise=noise,
        margin=margin,
        short_run={"epochs": chosen.short.epochs, "samples": chosen.short.samples},
        confidence=None if confidence is None else asdict(confidence),
        superconvergence=None if superconvergence is None else superconvergence.explanation,
    )
    return chosen, max_lr, margin, record


def _family_max_lr(
    setup: RecipeSetup, family: FamilyBounds, decide: RecipeSettings
) -> tuple[float, float, Any]:
    """One family's max_lr (its grid extended while the edge wins, within the budget), that
    LR's validation loss and the extension; adds the extension's runs to the family."""

    def loss_at(lr: float) -> float:
        family.runs[lr] = setup.run_short("lr_bounds", _at(setup, family.short, lr))
        family.losses[lr] = float(family.runs[lr]["val_loss"])
        return family.losses[lr]

    best_lr, why = choose_max_lr(family.losses, decide)
    affordable = max(0, setup.budget.left() // max(1, family.short.samples))
    extend = replace(decide, lr_extensions=min(decide.lr_extensions, affordable))
    extension = extend_lr_grid(dict(family.losses), best_lr, why, family.ceiling, loss_at, extend)
    if extension.max_lr is None:
        return float(family.range_test.max_lr or 0), math.inf, extension
    return extension.max_lr, family.losses[extension.max_lr], extension


def weight_decay_stage(
    setup: RecipeSetup, short: ShortRun, weight_decays: Sequence[float], margin: float
) -> tuple[float, float, dict[str, Any]]:
    """3. Weight decay: short runs of the other candidates at the chosen LR, in order, while
    the budget allows; one replaces the anchor (the first, at which the LR was chosen) only by
    beating it by more than `margin`; a midpoint between close neighbours when the budget
    allows. Returns the choice, its short run's validation loss and the evidence."""
    start = time.perf_counter()
    anchor = float(short.weight_decay)
    outcomes = {anchor: setup.run_short("weight_decay", short)}  # the LR stage's run: no cost
    skipped, todo, pending = [], {}, 0
    # the candidates the budget holds, decided before any runs (each costs the same), so that
    # they run as one batch: in parallel with workers or a study's trials
    for wd in dict.fromkeys(float(w) for w in weight_decays):
        if wd in outcomes:
            continue
        if not setup.budget.affords(pending + short.samples):
            skipped.append(wd)
            continue
        todo[wd] = _at(setup, short, short.max_lr, wd)
        pending += 0 if short_run_label(todo[wd]) in setup.budget.charged else short.samples
    results = setup.run_short_runs("weight_decay", list(todo.values()))
    outcomes.update(zip(todo, results, strict=True))
    losses = {wd: float(o["val_loss"]) for wd, o in outcomes.items()}
    middle = weight_decay_midpoint(losses, setup.settings)
    if middle is not None and setup.budget.affords(short.samples):
        outcomes[middle] = setup.run_short("weight_decay", _at(setup, short, short.max_lr, middle))
        losses[middle] = float(outcomes[middle]["val_loss"])
    else:
        middle = None
    chosen, why = choose_weight_decay(losses, anchor, margin)
    if len(losses) == 1:
        why = f"{anchor:g}, the anchor the LR was chosen at"
    if skipped:
        why += f"; not run (budget): {', '.join(f'{wd:g}' for wd in skipped)}"
    return (
        chosen,
        losses[chosen],
        evidence(
            "weight_decay",
            chosen,
            why,
            time.perf_counter() - start,
            setup.budget.spent.get("weight_decay", 0),
            short_run_epochs=short.epochs,
            anchor=anchor,
            margin=margin,
            midpoint=middle,
            skipped=skipped,
            runs={f"{wd:g}": o for wd, o in outcomes.items()},
        ),
    )


def extension_stage(
    short: ShortRun, run: dict[str, Any], extra_epochs: int, why: str
) -> tuple[float, float, dict[str, Any]]:
    """3'. No weight-decay runs: the short run at the chosen settings (`short`, its result `run`)
    shows no overfitting, so the anchor decay stays; the samples the weight-decay runs would
    have spent lengthen the final run by `extra_epochs` (`decisions.final_run_extension`) or,
    with 0, are not spent (`decisions.weight_decay_runs_skipped`). Returns the anchor, its short
    run's validation loss and the evidence (no run: 0 s, 0 samples; the anchor's short run is
    the LR stage's)."""
    anchor = float(short.weight_decay)
    longer = (
        f"; the final run trains {plural(extra_epochs, 'epoch')} longer" if extra_epochs else ""
    )
    return (
        anchor,
        float(run["val_loss"]),
        evidence(
            "weight_decay",
            anchor,
            f"{anchor:g}, the anchor, not searched: {why}{longer}",
            0.0,
            0,
            anchor=anchor,
            extra_epochs=extra_epochs,
            extension=why,
            runs={f"{anchor:g}": run},
        ),
    )


DEFAULT_MOMENTUM = (0.95, 0.85)  # tune's default: the paper's cycle


def momentum_stage(
    setup: RecipeSetup, short: ShortRun, compare: bool
) -> tuple[Momentum | None, dict[str, Any]]:
    """4. Momentum: the cyclical one, or (`compare`, when the budget allows) the best of it and
    constant momenta."""
    start = time.perf_counter()
    chosen = short.momentum
    if chosen is None:  # momentum=None: an optimizer without momentum (Rprop), left alone
        why = "none: the optimizer's own momentum is left alone (momentum=None)"
        return None, evidence("momentum", None, why, 0.0, 0, runs={})
    high, low = (chosen, chosen) if isinstance(chosen, float) else chosen
    if high == low:
        why = f"constant {high:g} (given)"
    elif (high, low) == DEFAULT_MOMENTUM:
        why = "cyclical momentum (high while the LR is low), the paper's default"
    else:
        why = f"cyclical momentum {high:g} → {low:g} (given)"
    runs: dict[str, Any] = {}
    constants = setup.settings.constant_momenta
    if compare and not setup.budget.affords(len(constants) * short.samples):
        why += "; constant momenta not compared: the budget is spent"
    elif compare:
        options: list[Momentum] = [chosen, *constants]
        short_runs = [short.at(short.max_lr, short.min_lr, short.weight_decay, m) for m in options]
        results = setup.run_short_runs("momentum", short_runs)
        runs = {str(m): r for m, r in zip(options, results, strict=True)}
        chosen = choose_momentum({m: r["val_loss"] for m, r in zip(options, results, strict=True)})
        kind = "constant" if high == low else "cyclical"
        why = f"lowest validation loss among {kind} {short.momentum} and constants {constants}"
    seconds = time.perf_counter() - start
    samples = setup.budget.spent.get("momentum", 0)
    return chosen, evidence("momentum", chosen, why, seconds, samples, runs=runs)
