"""`tune`: Smith's disciplined recipe (arXiv:1803.09820) as one call.

1. batch size (the largest that pays, measured), 2. LR bounds (range test, then short runs
at its lowest-loss LR / 10, / 5 and / 3), 3. weight decay
(range tests and short 1cycle runs per candidate, refined between close neighbours),
4. momentum (cyclical 0.95 → 0.85, optionally compared with constants), 5. the final 1cycle run,
6. a diagnosis of its validation curve. Each stage is one function that measures, decides and
returns its evidence record (`_evidence`): the decision, why, its cost in seconds, the details.
The constants come from `RecipeSettings`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from superconverge.batches import BatchFn
from superconverge.data.loader import Augment
from superconverge.data.sources import DataSource, LoaderOptions, as_source
from superconverge.finder.analysis import SWEEP_FURTHER
from superconverge.finder.result import RangeTestResult
from superconverge.losses import loss_name
from superconverge.metrics import MetricsSpec, resolve_metrics
from superconverge.pytorch.optimizers import (
    OptimizerSpec,
    check_optimizer_spec,
    decouples_weight_decay,
)
from superconverge.training.trainer import Trainer
from superconverge.tuning.decisions import (
    batch_sizes_to_try,
    choose_batch_size,
    choose_max_lr,
    choose_momentum,
    choose_weight_decay,
    extend_lr_grid,
    final_run_failed,
    largest_batch_allowed,
    lr_grid,
    weight_decay_midpoint,
)
from superconverge.tuning.journal import Journal
from superconverge.tuning.plan import TunePlan
from superconverge.tuning.probes import (
    Momentum,
    ShortRun,
    largest_batch_on_gpu,
    measure_throughput,
    run_short,
    run_short_runs,
)
from superconverge.tuning.resumable import (
    check_recipe_data,
    recipe_folder,
    remembered_runs,
    tune_settings,
)
from superconverge.tuning.settings import DEFAULT_SETTINGS, RecipeSettings

logger = logging.getLogger(__name__)


def tune(
    model_fn: Callable[[], nn.Module],
    train_data: Any,
    val_data: Any,
    *,
    epochs: int,
    test_data: Any = None,
    batch_size: int | str = "auto",
    weight_decays: Sequence[float] | None = None,
    momentum: tuple[float, float] = (0.95, 0.85),
    compare_momentum: bool = False,
    budget_fraction: float = 0.25,
    out_dir: str | Path | None = None,
    workers: int = 1,
    loss_fn: Callable[..., torch.Tensor] = nn.functional.cross_entropy,
    augment: Augment | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    overwrite: bool = False,
    settings: RecipeSettings = DEFAULT_SETTINGS,
    resume: bool = False,
    command: Sequence[str] | None = None,
    optimizer: OptimizerSpec = "sgd",
    metrics: MetricsSpec = "auto",
    batch_fn: BatchFn | None = None,
    steps_per_epoch: int | None = None,
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> TunePlan:
    """Choose batch size, LR bounds, weight decay and momentum by short runs, then train.

    Args:
        model_fn: builds a fresh model (a module-level function when ``workers > 1``).
        train_data, val_data: any data the `Trainer` takes (`superconverge.data.as_source`):
            `ArrayData` (the fast, device-resident path), a map-style ``Dataset`` (a
            ``DataLoader`` is built at each batch size tried; the data set is never read into
            memory), a loader factory ``make_loader(batch_size)``, or a stream with
            `steps_per_epoch`. The validation loss decides between candidates, whatever the task.
        epochs: epochs of the final 1cycle run.
        test_data: evaluated once, after the final run.
        batch_size: ``"auto"`` or a fixed size. Auto on CUDA: the largest batch whose measured
            peak memory stays under 80% of the GPU; on the CPU: the batch where samples/s stops
            growing (a doubling gains < 10%). Never more than 1/10 of the training set, nor so
            large that the final run gets fewer than 1,000 updates (that floor alone stops at 16).
        weight_decays: candidates; None: ``settings.weight_decays`` (the paper's 1e-3, 1e-4,
            1e-5, 0) for SGD, ``settings.decoupled_weight_decays`` (0.1, 0.03, 0.01, 0) for
            optimizers with decoupled decay (AdamW, NAdamW). Close neighbours get a run at the
            midpoint of their exponents.
        momentum: the cyclical momentum (high, low) of the final run.
        compare_momentum: also compare constant momenta 0.99/0.97/0.95/0.9 by short runs.
        budget_fraction: each short run lasts ``ceil(budget_fraction * epochs)`` epochs.
        out_dir: the run folder: the journal of every stage (``journal.json``, saved as each
            record is made) and the final run's checkpoints. One writer at a time.
        workers: worker processes for the weight-decay and momentum candidates.
        loss_fn, augment, seed, device: as for `Trainer`.
        overwrite: replace an earlier run in `out_dir`: it is first moved, whole, into
            ``out_dir/previous-<time>/``, and deleted once this run has finished.
        settings: the recipe's constants (the numbers above are the defaults').
        resume: continue the interrupted run in `out_dir` (give the same arguments): the
            journal's records are read back instead of recomputed, and the final run continues
            from its last epoch checkpoint (see `superconverge.tuning.resumable`).
        command: the command line that started the run, kept for ``superconverge tune
            --resume`` (the CLI passes it).

        optimizer: ``"sgd"`` (the paper's, default), ``"adamw"``, ``"nadamw"``, ``"adam"`` or
            a callable ``params -> Optimizer``; the momentum cycled is SGD's momentum or Adam's
            β1 (0.95 → 0.85 either way, arXiv:1803.09820).
        metrics: reported validation metrics, as for `Trainer` (``"auto"``: accuracy for
            classification, MSE/MAE for regression); they never decide, the loss does.
        batch_fn, steps_per_epoch, num_workers, collate_fn: how batches are read, as for
            `Trainer`.

    Raises:
        DataError: a label outside the model's outputs or a NaN/inf input (before any training).
        FolderBusyError: another process is writing to `out_dir`.
        FileExistsError: `out_dir` holds an earlier run, without `resume` or `overwrite`.

    Returns:
        A `TunePlan`: the chosen values, each stage's evidence and seconds, the final run's
        results (test metrics, diagnosis), ``history`` and ``trainer``, and ``range_tests``.
    """
    check_optimizer_spec(optimizer)
    resolve_metrics(metrics)
    decays: Sequence[float] = () if weight_decays is None else weight_decays
    if weight_decays is None and isinstance(settings, RecipeSettings):  # else: refused below
        decoupled = decouples_weight_decay(optimizer)
        decays = settings.decoupled_weight_decays if decoupled else settings.weight_decays
    _check_arguments(epochs, budget_fraction, decays, workers, batch_size, settings)
    run_device = _device(device)
    model = model_fn()
    named = [("train_data", train_data), ("val_data", val_data), ("test_data", test_data)]
    check_recipe_data(model, named, run_device)
    made_with = tune_settings(
        model,
        train_data,
        val_data,
        test_data,
        loss_fn=loss_fn,
        augment=augment,
        epochs=epochs,
        batch_size=batch_size,
        weight_decays=[float(w) for w in decays],
        momentum=list(momentum),
        compare_momentum=compare_momentum,
        budget_fraction=budget_fraction,
        seed=seed,
        settings=asdict(settings),
    )
    options = LoaderOptions(num_workers=num_workers, collate_fn=collate_fn)

    def source(data: Any, name: str, steps: int | None = None) -> DataSource:
        return as_source(data, name, steps_per_epoch=steps, batch_fn=batch_fn, options=options)

    trainer_options = {"optimizer": optimizer, "metrics": metrics, "batch_fn": batch_fn}
    with recipe_folder(
        out_dir, made_with, resume=resume, overwrite=overwrite, command=command
    ) as journal:
        setup = _Setup(
            model_fn,
            source(train_data, "train_data", steps_per_epoch),
            source(val_data, "val_data"),
            loss_fn,
            augment,
            seed,
            run_device,
            workers,
            settings,
            trainer_options,
            journal,
        )
        test = None if test_data is None else source(test_data, "test_data")
        return _recipe(
            setup,
            epochs,
            batch_size,
            decays,
            momentum,
            compare_momentum,
            budget_fraction,
            test,
            out_dir,
        )


def _recipe(
    setup: _Setup,
    epochs: int,
    batch_size: int | str,
    decays: Sequence[float],
    momentum: tuple[float, float],
    compare_momentum: bool,
    budget_fraction: float,
    test: DataSource | None,
    out_dir: str | Path | None,
) -> TunePlan:
    """The stages, each record kept in the journal as it is made. On resume every stage runs
    again, but what it measured (the batch timing, range tests, short runs, the final run) is
    read back, so its decision and evidence are the recorded ones."""
    journal, settings, seed = setup.journal, setup.settings, setup.seed
    optimizer, loss_fn = setup.options["optimizer"], setup.loss_fn
    batch_record = journal.remember(
        "batch_size", lambda: _batch_size_stage(setup, batch_size, epochs)[1]
    )
    chosen_batch = int(batch_record["decision"])
    short_epochs = max(1, math.ceil(budget_fraction * epochs))  # the budget of each short run
    short = setup.short_run(chosen_batch, short_epochs, (momentum[0], momentum[1]))
    range_tests: dict[str, RangeTestResult] = {}
    max_lr, bounds_record = _lr_bounds_stage(setup, short, range_tests)
    bounds_record = journal.remember("lr_bounds", lambda: bounds_record)
    min_lr = max_lr / settings.min_lr_divisor
    weight_decay, short_loss, wd_record = _weight_decay_stage(
        setup, short.at(max_lr, min_lr), decays, range_tests
    )
    wd_record = journal.remember("weight_decay", lambda: wd_record)
    chosen_momentum, momentum_record = _momentum_stage(
        setup, short.at(max_lr, min_lr, weight_decay), compare_momentum
    )
    momentum_record = journal.remember("momentum", lambda: momentum_record)
    plan = TunePlan(
        epochs=epochs,
        batch_size=chosen_batch,
        max_lr=max_lr,
        min_lr=min_lr,
        weight_decay=weight_decay,
        momentum=chosen_momentum,
        seed=seed,
        optimizer=optimizer if isinstance(optimizer, str) else None,
        loss=loss_name(loss_fn),
        evidence=[batch_record, bounds_record, wd_record, momentum_record],
        range_tests=range_tests,
    )
    final = _final_run_stage(setup, plan, short_loss, test, out_dir)
    plan.evidence += [*final, journal.remember("diagnosis", lambda: _diagnosis_stage(plan))]
    return plan


@dataclass(frozen=True)
class _Setup:
    """What every stage of one `tune` call shares."""

    model_fn: Callable[[], nn.Module]
    train_data: DataSource
    val_data: DataSource
    loss_fn: Callable[..., torch.Tensor]
    augment: Augment | None
    seed: int
    device: torch.device
    workers: int
    settings: RecipeSettings
    # the Trainer's other keyword arguments (optimizer, metrics, batch_fn), for every run
    options: dict[str, Any]
    journal: Journal  # what was measured, kept as it is made; read back on resume

    def short_run(self, batch_size: int, epochs: int, momentum: Momentum) -> ShortRun:
        """A short run at these settings (its LRs and weight decay set by `ShortRun.at`)."""
        return ShortRun(
            self.model_fn,
            self.loss_fn,
            self.train_data,
            self.val_data,
            batch_size,
            epochs,
            max_lr=0.0,
            min_lr=0.0,
            weight_decay=0.0,
            momentum=momentum,
            seed=self.seed,
            augment=self.augment,
            options=self.options,
        )

    def run_short_runs(self, runs: Sequence[ShortRun]) -> list[dict[str, Any]]:
        """`run_short_runs`, each result recorded in the journal as its batch ends; a run
        recorded before (on resume, or the same settings in an earlier stage) is not run."""
        labels = [_short_run_label(run) for run in runs]
        return remembered_runs(
            self.journal,
            "short_run",
            labels,
            list(runs),
            lambda todo: run_short_runs(todo, self.workers),
        )

    def run_short(self, run: ShortRun) -> dict[str, Any]:
        return remembered_runs(
            self.journal,
            "short_run",
            [_short_run_label(run)],
            [run],
            lambda todo: [run_short(todo[0])],
        )[0]

    def range_test(self, label: str, measure: Callable[[], Any]) -> RangeTestResult:
        """A range test, recorded in the journal as ``range_test/<label>`` (read back on
        resume): the same `RangeTestResult` either way."""
        recorded = self.journal.remember(f"range_test/{label}", lambda: measure().to_dict())
        return RangeTestResult.from_dict(recorded)

    def trainer(
        self, batch_size: int, weight_decay: float = 0.0, validate: bool = False
    ) -> Trainer:
        """A trainer on a fresh model (seeded) for a range test."""
        torch.manual_seed(self.seed)
        return Trainer(
            self.model_fn(),
            self.loss_fn,
            self.train_data,
            self.val_data if validate else None,
            batch_size=batch_size,
            weight_decay=weight_decay,
            seed=self.seed,
            augment=self.augment,
            progress=False,
            device=self.device,
            **self.options,
        )


def _short_run_label(run: ShortRun) -> str:
    """A short run's journal label: what varies between the recipe's short runs."""
    momentum = run.momentum if isinstance(run.momentum, float) else tuple(run.momentum)
    return (
        f"max_lr={run.max_lr!r} min_lr={run.min_lr!r} wd={float(run.weight_decay)!r} "
        f"momentum={momentum} epochs={run.epochs} batch={run.batch_size}"
    )


def _evidence(
    stage: str, decision: Any, why: str, seconds: float, **details: Any
) -> dict[str, Any]:
    """The evidence record of one stage of the recipe, as ``plan.json`` stores it."""
    logger.info("tune: %s = %s (%s) [%.1f s]", stage, decision, why, seconds)
    return {"step": stage, "decision": decision, "why": why, "seconds": seconds, "details": details}


def _check_arguments(
    epochs: int,
    budget_fraction: float,
    weight_decays: Sequence[float],
    workers: int,
    batch_size: int | str,
    settings: RecipeSettings,
) -> None:
    if not isinstance(settings, RecipeSettings):
        raise TypeError(f"settings must be a RecipeSettings, got {type(settings).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if not 0.0 < budget_fraction <= 1.0:
        raise ValueError(f"budget_fraction must be in (0, 1], got {budget_fraction!r}")
    if not weight_decays or any(not math.isfinite(w) or w < 0 for w in weight_decays):
        raise ValueError(f"weight_decays must be finite numbers >= 0, got {tuple(weight_decays)!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if batch_size != "auto" and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be 'auto' or an integer >= 1, got {batch_size!r}")


def _device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _batch_size_stage(
    setup: _Setup, batch_size: int | str, epochs: int
) -> tuple[int, dict[str, Any]]:
    """1. The batch size: given, or the largest that pays (GPU memory; CPU samples/s)."""
    start = time.perf_counter()
    settings, train_size = setup.settings, _samples_per_epoch(setup)
    if train_size is None:  # a stream: steps per epoch are fixed, whatever the batch
        max_batch = max(settings.batch_candidates)
    else:
        max_batch = largest_batch_allowed(train_size, epochs, settings)
    details: dict[str, Any] = {}
    if batch_size != "auto":
        chosen, why = int(batch_size), "given"
    elif setup.device.type == "cuda":
        chosen, peaks = largest_batch_on_gpu(
            setup.model_fn,
            setup.train_data,
            setup.loss_fn,
            setup.device,
            max_batch,
            settings=settings,
        )
        why = f"largest batch with peak memory under {settings.gpu_memory_margin:.0%} of the GPU"
        details["peak_memory_fraction"] = {str(k): v for k, v in peaks.items()}
    else:
        sizes = batch_sizes_to_try(max_batch, settings)
        throughput = measure_throughput(
            setup.model_fn, setup.train_data, sizes, setup.loss_fn, setup.device
        )
        chosen, why = choose_batch_size(throughput, max_batch, settings)
        details["samples_per_s"] = {str(k): v for k, v in throughput.items()}
    if (
        batch_size == "auto"
        and train_size is not None
        and max_batch < train_size // settings.min_steps_per_epoch
    ):
        why += (
            f"; sizes above {max_batch} were not tried: they would leave the {epochs}-epoch run "
            f"fewer than {settings.min_total_steps} updates"
        )
    return chosen, _evidence("batch_size", chosen, why, time.perf_counter() - start, **details)


def _samples_per_epoch(setup: _Setup) -> int | None:
    """Training samples per epoch: known for tensors and a ``Dataset``; for a loader factory
    its batches at the smallest candidate size times that size; None for a stream (its epoch
    is `steps_per_epoch` batches, whatever their size)."""
    source = setup.train_data
    if source.num_samples is not None:
        return source.num_samples
    if source.steps_per_epoch is not None:
        return None
    size = min(setup.settings.batch_candidates)
    return len(source.loader(size)) * size


def _bounds_range_test(setup: _Setup, batch_size: int) -> tuple[RangeTestResult, str]:
    """The range test behind the LR bounds (with validation), and a note when it was redone."""
    probe: Trainer | None = None

    def first_sweep() -> Any:  # a RangeTestResult
        nonlocal probe
        probe = setup.trainer(batch_size, validate=True)
        return probe.lr_find(val_data=probe.val_loader)

    range_test = setup.range_test("bounds", first_sweep)
    if range_test.max_lr is None and range_test.failure in SWEEP_FURTHER:
        # a loss still falling (or flat) at the sweep's end: sweep two decades further, at the
        # same density of points, instead of giving up (RecipeSettings.wide_sweep_end_lr)
        first_reason = range_test.reason
        end_lr = setup.settings.wide_sweep_end_lr

        def wide_sweep() -> Any:
            trainer = probe or setup.trainer(batch_size, validate=True)
            return trainer.lr_find(
                val_data=trainer.val_loader,
                end_lr=end_lr,
                num_steps=setup.settings.wide_sweep_steps,
            )

        range_test = setup.range_test("bounds, wide", wide_sweep)
        return range_test, f"first sweep to LR 10: {first_reason}; swept again to LR {end_lr:g}"
    return range_test, ""


def _lr_bounds_stage(
    setup: _Setup, short: ShortRun, range_tests: dict[str, RangeTestResult]
) -> tuple[float, dict[str, Any]]:
    """2. max_lr: a range test, then short runs on a grid below its lowest-loss LR, extended
    past the grid's edge while the edge keeps winning. Adds the range test to `range_tests`."""
    start = time.perf_counter()
    settings = setup.settings
    range_test, note = _bounds_range_test(setup, short.batch_size)
    if range_test.max_lr is None:
        raise ValueError(f"max_lr: the LR range test found none ({range_test.reason})")
    range_tests["weight decay 0 (bounds)"] = range_test
    # only a range test loaded from an old file lacks the lowest-loss LR: its max_lr is the anchor
    lowest = range_test.lowest_loss_lr or range_test.max_lr
    grid, ceiling = lr_grid(lowest, range_test.suggestions.get("divergence"), settings)

    def at(lr: float) -> ShortRun:
        return short.at(lr, lr / settings.min_lr_divisor)

    runs = dict(zip(grid, setup.run_short_runs([at(lr) for lr in grid]), strict=True))
    losses = {lr: run["val_loss"] for lr, run in runs.items()}
    chosen, chosen_why = choose_max_lr(losses, settings)

    def loss_at(lr: float) -> float:
        runs[lr] = setup.run_short(at(lr))
        return float(runs[lr]["val_loss"])

    extension = extend_lr_grid(losses, chosen, chosen_why, ceiling, loss_at, settings)
    max_lr = range_test.max_lr if extension.max_lr is None else extension.max_lr
    ranking = ", ".join(f"{lr:.3g}: {losses[lr]:.4f}" for lr in runs)
    divisors = "/".join(f"{d:g}" for d in settings.lr_divisors)
    why = (
        f"range test: {note + '; ' if note else ''}{range_test.reason}; short runs at lowest-loss "
        f"LR /{divisors} → validation loss {ranking}; chosen {extension.why}"
    )
    decision = {"max_lr": max_lr, "min_lr": max_lr / settings.min_lr_divisor}
    confidence, superconvergence = range_test.confidence, range_test.superconvergence
    return max_lr, _evidence(
        "lr_bounds",
        decision,
        why,
        time.perf_counter() - start,
        suggestions=range_test.suggestions,
        extended_below=list(extension.below),
        extended_above=list(extension.above),
        short_runs={f"{lr:.4g}": run for lr, run in runs.items()},
        confidence=None if confidence is None else asdict(confidence),
        superconvergence=None if superconvergence is None else superconvergence.explanation,
    )


def _weight_decay_stage(
    setup: _Setup,
    short: ShortRun,
    weight_decays: Sequence[float],
    range_tests: dict[str, RangeTestResult],
) -> tuple[float, float, dict[str, Any]]:
    """3. Weight decay: a range test per candidate (the curves, added to `range_tests`), then
    short 1cycle runs (the choice), plus one at the midpoint of two close neighbours. Returns
    the choice, its short run's validation loss and the evidence."""
    start = time.perf_counter()
    for wd in weight_decays:

        def measure(wd: float = wd) -> Any:
            return setup.trainer(short.batch_size, weight_decay=wd).lr_find()

        range_tests[f"weight decay {wd:g}"] = setup.range_test(f"weight decay {wd!r}", measure)

    def at(wd: float) -> ShortRun:
        return short.at(short.max_lr, short.min_lr, wd)

    candidates = list(dict.fromkeys(float(w) for w in weight_decays))
    results = setup.run_short_runs([at(wd) for wd in candidates])
    outcomes = dict(zip(candidates, results, strict=True))
    middle = weight_decay_midpoint(
        {wd: o["val_loss"] for wd, o in outcomes.items()}, setup.settings
    )
    if middle is not None:
        outcomes[middle] = setup.run_short(at(middle))
    losses = {wd: float(o["val_loss"]) for wd, o in outcomes.items()}
    chosen, why = choose_weight_decay(losses)
    return (
        chosen,
        losses[chosen],
        _evidence(
            "weight_decay",
            chosen,
            why,
            time.perf_counter() - start,
            short_run_epochs=short.epochs,
            midpoint=middle,
            runs={f"{wd:g}": o for wd, o in outcomes.items()},
        ),
    )


def _momentum_stage(
    setup: _Setup, short: ShortRun, compare: bool
) -> tuple[Momentum, dict[str, Any]]:
    """4. Momentum: the cyclical one, or (`compare`) the best of it and constant momenta."""
    start = time.perf_counter()
    chosen = short.momentum
    why = "cyclical momentum (high while the LR is low), the paper's default"
    runs: dict[str, Any] = {}
    if compare:
        constants = setup.settings.constant_momenta
        options: list[Momentum] = [short.momentum, *constants]
        short_runs = [short.at(short.max_lr, short.min_lr, short.weight_decay, m) for m in options]
        results = setup.run_short_runs(short_runs)
        runs = {str(m): r for m, r in zip(options, results, strict=True)}
        chosen = choose_momentum({m: r["val_loss"] for m, r in zip(options, results, strict=True)})
        why = f"lowest validation loss among cyclical {short.momentum} and constants {constants}"
    return chosen, _evidence("momentum", chosen, why, time.perf_counter() - start, runs=runs)


def _final_run_stage(
    setup: _Setup,
    plan: TunePlan,
    short_run_loss: float,
    test_data: DataSource | None,
    out_dir: str | Path | None,
) -> list[dict[str, Any]]:
    """5. The final 1cycle run. One that falls apart where its short run (same settings, fewer
    epochs) did not sits at the edge of stability: it is run once more, lower (one more record).
    A run in the journal continues from its last epoch checkpoint; the folder is this run's own
    (`recipe_folder` moved any earlier run aside), so its files may be replaced."""
    settings, journal = setup.settings, setup.journal

    def final_run() -> Any:
        return plan.run(
            setup.model_fn,
            setup.train_data,
            setup.val_data,
            test_data=test_data,
            out_dir=out_dir,
            loss_fn=setup.loss_fn,
            augment=setup.augment,
            overwrite=True,
            resume=True,
            **setup.options,
        )

    def record(why: str) -> dict[str, Any]:
        decision = f"{plan.epochs} epochs of 1cycle at max_lr {plan.max_lr:.3g}"
        return _evidence(
            "final_run", decision, why, time.perf_counter() - start, epochs=history.epochs
        )

    records = []
    start = time.perf_counter()
    first_attempt = journal.get("final_run/first_attempt")
    if first_attempt is None:
        history = final_run()
        failure = final_run_failed(
            history.status, plan.results.get("final_val_loss"), short_run_loss, settings
        )
        if failure is not None:
            why = f"redone at max_lr / {settings.retry_lr_divisor:g}: {failure}"
            first_attempt = journal.record("final_run/first_attempt", record(why))
    if first_attempt is not None:
        records.append(first_attempt)
        start = time.perf_counter()
        plan.max_lr /= settings.retry_lr_divisor
        plan.min_lr /= settings.retry_lr_divisor
        history = final_run()
    records.append(journal.remember("final_run", lambda: record(history.status)))
    return records


def _diagnosis_stage(plan: TunePlan) -> dict[str, Any]:
    """6. The diagnosis of the final run's validation curve (arXiv:1803.09820, Remark 1)."""
    verdict = plan.results["verdict"]
    return _evidence(
        "diagnosis", verdict["kind"], verdict["explanation"], 0.0, next_step=verdict["next_step"]
    )
