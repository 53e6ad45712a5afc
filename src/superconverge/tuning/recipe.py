"""`tune`: Smith's disciplined recipe (arXiv:1803.09820) as one call, within a budget.

By default (`RecipeSettings.lr_search` "in_run"): 1. batch size, then the final run at once,
AdamW (or the optimizer given) at its anchor weight decay with cyclical momentum; its rise is
the LR range test (`fit_one_cycle(max_lr="search")`, `superconverge.training.edge`), and the
budget's samples lengthen it by whole epochs; then the diagnosis.

The search by short runs ("short_runs", and wherever the call asks for a comparison):
1. batch size (the largest the data allow; GPU memory on CUDA), 2. the optimizer (SGD against
AdamW when not given) and LR bounds (a range test each, then short runs at its lowest-loss LR
/ 10, / 5 and / 3, one repeated from another seed to measure the noise), 3. weight decay (short
runs of the candidates at the chosen LR; the anchor stays unless beaten by more than the noise;
or, when the short run at the chosen settings shows no overfitting, their share of the budget
as whole extra epochs of the final run), 4. momentum (cyclical 0.95 → 0.85, optionally compared
with constants), 5. the final 1cycle run (a divergence restores the epoch's weights and halves
the LR), 6. a diagnosis of its validation curve. The search spends at most `budget` runs' worth
(runs of `epochs`) of training samples (sized before it starts, counted as it goes:
`superconverge.tuning.budget`); each stage is a function in `superconverge.tuning.stages`
returning its evidence record. The constants are `RecipeSettings`.
"""

from __future__ import annotations

import gc
import logging
import math
import pickle
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import superconverge
from superconverge._checks import check_choice, check_seed, plain_arguments
from superconverge._display import plural
from superconverge._files import FolderBusyError, FolderLock
from superconverge._warnings import shown_once
from superconverge.batches import BatchFn
from superconverge.data.checks import check_rereadable
from superconverge.data.datasets import ArrayData
from superconverge.data.loader import Augment, resolve_device
from superconverge.data.sources import DataSource, LoaderOptions, as_source, check_dataset_options
from superconverge.losses import check_loss_fn, loss_name
from superconverge.metrics import MetricsSpec, resolve_metrics
from superconverge.pytorch.distributed import world as process_world
from superconverge.pytorch.optimizers import (
    OptimizerSpec,
    check_optimizer_spec,
    decouples_weight_decay,
    takes_weight_decay,
)
from superconverge.pytorch.snapshot import kept_global_rng
from superconverge.training.callbacks import Callback
from superconverge.training.device import PRECISIONS
from superconverge.training.edge import check_edge_settings, search_constants
from superconverge.training.inputs import check_callbacks, own_batch_message
from superconverge.training.progress import format_seconds, tell
from superconverge.tuning.budget import (
    SearchBudget,
    ShortRunSize,
    can_subset,
    size_short_runs,
    use_usable_cores,
)
from superconverge.tuning.decisions import (
    final_run_extension,
    only_short_runs,
    searches_in_run,
    weight_decay_runs_skipped,
)
from superconverge.tuning.final import diagnosis_stage, final_run_stage, judge_one_epoch
from superconverge.tuning.plan import SEARCH, TunePlan, save_run
from superconverge.tuning.probes import ShortRun
from superconverge.tuning.resumable import check_recipe_data, tune_settings
from superconverge.tuning.roles import RecipeJob
from superconverge.tuning.settings import DEFAULT_SETTINGS, RecipeSettings
from superconverge.tuning.setup import RecipeSetup
from superconverge.tuning.stages import (
    FamilyBounds,
    FamilyFailure,
    batch_size_stage,
    extension_stage,
    family_bounds,
    in_run_search_record,
    lr_bounds_stage,
    momentum_stage,
    own_batch_size,
    samples_per_epoch,
    weight_decay_stage,
)
from superconverge.tuning.trials import TrialStudy, as_study

logger = logging.getLogger(__name__)
RANGE_TEST_STEPS = 100  # lr_find's default sweep, for sizing the short runs before it runs


@shown_once()  # a warning about the data once, not once per range test and short run
@kept_global_rng()  # it seeds torch for its runs; the caller's generator is given back
@plain_arguments
def tune(
    model_fn: Callable[[], nn.Module],
    train_data: Any,
    val_data: Any,
    *,
    epochs: int,
    test_data: Any = None,
    batch_size: int | str = "auto",
    optimizer: OptimizerSpec = "auto",
    weight_decays: Sequence[float] | None = None,
    momentum: tuple[float, float] | float | None = (0.95, 0.85),
    compare_momentum: bool = False,
    budget: float = 1.0,
    out_dir: str | Path | None = None,
    workers: int = 1,
    loss_fn: Callable[..., torch.Tensor] = nn.functional.cross_entropy,
    augment: Augment | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    precision: str = "auto",
    overwrite: bool = False,
    settings: RecipeSettings | None = None,
    resume: bool = False,
    command: Sequence[str] | None = None,
    metrics: MetricsSpec = "auto",
    batch_fn: BatchFn | None = None,
    steps_per_epoch: int | None = None,
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    val_steps: int | None = None,
    test_steps: int | None = None,
    study: str | TrialStudy | None = None,
    join: bool = False,
    callbacks: Sequence[Callback] | Callback = (),
) -> TunePlan:
    """Choose batch size, optimizer, LR bounds, weight decay and momentum, then train (README,
    "The recipe"). By default the LR is searched in the final run's own rise and the budget
    lengthens that run; with ``settings=RecipeSettings(lr_search="short_runs")`` (or several
    `weight_decays`, `compare_momentum`, ``workers > 1``, a `study`) short runs within `budget`
    compare optimizers, LRs and decays first (``settings=None``: `RecipeSettings()`). ``train_data``/``val_data``/``test_data``: any
    data the `Trainer` takes; the validation loss decides, whatever the task. ``optimizer``:
    ``"auto"`` (AdamW in the in-run search; SGD against AdamW by short runs), a name or a
    callable ``fn(param_groups) -> Optimizer``.
    ``momentum``: ``(high, low)``, cycled against the LR (β1 for Adam-family optimizers), or one
    number kept constant. ``model_fn``: builds a new model (each run trains its own).
    ``weight_decays``: candidates, the first the anchor (default per optimizer: `settings`).
    ``budget``: the search's training samples in runs of `epochs` (1.0: the recipe costs at most
    twice one; the final run may take the weight-decay runs' share as whole extra epochs when
    the short run shows no overfitting: ``settings=RecipeSettings(extend_final_run=False)``
    keeps it at `epochs`). ``out_dir``,
    ``resume``, ``overwrite``: the run folder and its journal. ``workers``: processes for the
    short runs. ``val_steps``/``test_steps``: batches per evaluation of a `val_data`/`test_data`
    stream (a finite one is read to its end without them; an endless one needs them).
    ``study``: an Optuna storage URL (or `TrialStudy`): the short runs become trials there, for
    any process to take; ``join=True`` makes this call a worker of that study (same arguments as
    the coordinator's; returns the coordinator's plan, untrained). Under torchrun rank 0
    searches and every rank trains the final run. ``callbacks``: `Callback` objects for the
    final run only (the short runs are the recipe's; give the same ones to a ``resume``; a
    final run redone at a lower LR calls them again, from ``on_fit_start``). The rest as for
    `Trainer`.

    Raises:
        DataError: a bad label or NaN/inf input (before any training). FolderBusyError: another
        process writes to `out_dir`. FileExistsError: an earlier run there.

    Returns:
        A `TunePlan`: the choices, each stage's evidence (seconds, samples), ``compute``,
        ``environment``, the final run's ``results``, ``history`` and ``trainer``.
    """
    settings = DEFAULT_SETTINGS if settings is None else settings  # None: the defaults
    families = _check_arguments(
        optimizer, metrics, precision, epochs, budget, weight_decays, workers, batch_size, settings
    )
    check_model_fn(model_fn)
    check_loss_fn(loss_fn)
    check_seed(seed)  # -1 trained, and made a plan that fit --plan refused
    final_callbacks = tuple(check_callbacks(callbacks))
    momentum = _momentum_pair(momentum)
    _check_momentum_to_cycle(families, momentum)
    if momentum is None and compare_momentum:
        raise ValueError(
            "compare_momentum compares momenta, but momentum=None leaves the optimizer's alone: "
            "give a (high, low) pair, or drop compare_momentum"
        )
    if study is not None and workers > 1:
        raise ValueError(
            f"workers must be 1 with a study (got {workers}): more processes join the study "
            "(tune(..., join=True), superconverge tune --join URL)"
        )
    if workers > 1:
        _check_picklable(
            model_fn=model_fn, loss_fn=loss_fn, metrics=metrics, batch_fn=batch_fn,
            collate_fn=collate_fn, augment=augment, optimizer=optimizer,
            **{name: data for name, data in (("train_data", train_data), ("val_data", val_data))
               if not isinstance(data, (ArrayData, tuple))},  # tensors pickle; a Dataset may not
        )  # fmt: skip
    if join and study is None:
        raise ValueError("join=True needs study: the storage URL of the study whose trials to run")
    _check_search(settings, weight_decays, compare_momentum, workers > 1 or study is not None)
    run_device = resolve_device(device)  # before any folder is made: a bad one costs nothing
    named = [("train_data", train_data), ("val_data", val_data), ("test_data", test_data)]
    loading = LoaderOptions(num_workers=num_workers, collate_fn=collate_fn)
    train, val, test = _sources(named, (steps_per_epoch, val_steps, test_steps), batch_fn, loading)
    sources = [("train_data", train), ("val_data", val), ("test_data", test)]
    _check_own_batch(batch_size, train)
    _check_final_steps(batch_size, epochs, train)
    check_dataset_options(loading, (train, val, test), "tune")
    check_recipe_data(model_fn(), sources, run_device, resolve_metrics(metrics, loss_fn), loss_fn)
    request = _Request(epochs, batch_size, families, weight_decays, momentum, compare_momentum)
    fingerprint = request.fingerprint(budget, seed, precision, settings)
    made_with = tune_settings(
        model_fn(), *(d for _, d in named), loss_fn=loss_fn, augment=augment, **fingerprint
    )
    options = {"metrics": metrics, "batch_fn": batch_fn, "precision": precision}
    common = {
        "model_fn": model_fn,
        "train_data": train,
        "val_data": val,
        "loss_fn": loss_fn,
        "augment": augment,
        "seed": seed,
        "device": run_device,
        "workers": workers,
        "settings": settings,
        "options": options,
        "callbacks": final_callbacks,
    }
    job = RecipeJob(
        common, request, test, made_with, as_study(study), tuple(families), budget, _search, _finish
    )
    rank, world = process_world()
    threads_before, environment = torch.get_num_threads(), _environment(run_device, seed)
    try:
        if join:
            plan = job.join()
        elif rank > 0:
            plan = job.follow(out_dir, world)
        else:
            plan = job.coordinate(out_dir, resume, overwrite, command, world)
    finally:
        torch.set_num_threads(threads_before)
    plan.environment = {**environment, "world_size": world} if world > 1 else environment
    if not plan.data_options:  # from Python: what fit --plan can serve the same way again
        plan.data_options = _python_options(metrics, loss_fn, num_workers)
    if out_dir is not None and rank == 0 and not join:
        _save(Path(out_dir), plan)
    return plan


def _python_options(metrics: MetricsSpec, loss_fn: Any, num_workers: int) -> dict[str, Any]:
    """A plan's ``data_options`` for a tune called from Python: the built-in metrics by name,
    the names of the user's own (which a plan cannot hold: `fit --plan` says they are not
    measured) and the DataLoader workers. They were not recorded, and `fit --plan` silently
    reported other metrics."""
    options: dict[str, Any] = {"num_workers": num_workers} if num_workers else {}
    if metrics == "auto":  # fit --plan's default too
        return options
    named: list[tuple[str, Any]] = []  # (its name, the built-in's name or the function)
    if isinstance(metrics, str):
        named = [(metrics, metrics)]
    elif isinstance(metrics, Mapping):
        named = list(metrics.items())
    elif metrics is not None:
        named = [
            (m if isinstance(m, str) else getattr(m, "__name__", "metric"), m) for m in metrics
        ]
    options["metrics"] = [spec for _, spec in named if isinstance(spec, str)]
    own = [name for name, spec in named if not isinstance(spec, str)]
    if own:
        options["own_metrics"] = own
    return options


def _save(folder: Path, plan: TunePlan) -> None:
    """``plan.json``, ``history.json`` and ``range_tests.json`` beside the journal, so that a
    folder made from Python is as complete as the CLI's (``superconverge report DIR`` renders
    its report; ``superconverge fit --plan DIR/plan.json`` re-runs it)."""
    try:
        with FolderLock(folder):
            save_run(folder, plan)
    except FolderBusyError as error:  # another run took the folder since: keep the plan
        logger.warning("tune: plan.json not written: %s", error)


@dataclass(frozen=True)
class _Request:
    """What the caller asked of the recipe's stages."""

    epochs: int
    batch_size: int | str
    families: list[Any]  # the optimizers to compare (one unless "auto")
    weight_decays: Sequence[float] | None  # None: the settings' per optimizer
    momentum: tuple[float, float] | None
    compare_momentum: bool

    def fingerprint(
        self, budget: float, seed: int, precision: str, settings: RecipeSettings
    ) -> dict[str, Any]:
        """The arguments the journal's records depend on (checked on resume)."""
        decays = self.weight_decays
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "momentum": None if self.momentum is None else list(self.momentum),
            "weight_decays": None if decays is None else [float(w) for w in decays],
            "compare_momentum": self.compare_momentum,
            "budget": budget,
            "seed": seed,
            "precision": precision,
            "optimizer": [f if isinstance(f, str) else "callable" for f in self.families],
            "settings": asdict(settings),
        }


def _sources(
    named: list[tuple[str, Any]],
    steps: tuple[int | None, int | None, int | None],
    batch_fn: BatchFn | None,
    loading: LoaderOptions,
) -> tuple[DataSource, DataSource, DataSource | None]:
    """The training, validation and (optional) test data as `DataSource`s; `steps`: batches
    per epoch (training) and per evaluation (validation, test)."""
    (_, train), (_, val), (_, test) = named
    train_steps, val_steps, test_steps = steps
    check_rereadable(val, "val_data", val_steps)  # every short run reads it again
    if test is None and test_steps is not None:
        raise ValueError(f"test_steps needs test_data, got test_steps={test_steps!r}")

    def source(data: Any, name: str, steps: int | None, evaluation: bool = True) -> DataSource:
        return as_source(
            data,
            name,
            steps_per_epoch=steps,
            batch_fn=batch_fn,
            options=loading,
            evaluation=evaluation,
        )

    return (
        source(train, "train_data", train_steps, evaluation=False),
        source(val, "val_data", val_steps),
        None if test is None else source(test, "test_data", test_steps),
    )


def _environment(device: torch.device, seed: int) -> dict[str, Any]:
    """Where the recipe runs (after capping torch's threads at the usable cores)."""
    return {
        **use_usable_cores(),
        "device": str(device),
        "seed": seed,
        "torch": torch.__version__,
        "superconverge": superconverge.__version__,
        "python": platform.python_version(),
    }


def _search(setup: RecipeSetup, request: _Request) -> tuple[TunePlan, float]:
    """The search's stages, each record kept in the journal as it is made: the plan and the
    chosen settings' short-run validation loss. On resume every stage runs again, but what it
    measured (range tests, short runs) is read back, so its decision and evidence are the
    recorded ones, and its cost is counted the same."""
    journal, settings, budget = setup.journal, setup.settings, setup.budget
    epochs, batch_size, families = request.epochs, request.batch_size, request.families
    weight_decays, momentum = request.weight_decays, request.momentum
    resumed = bool(journal.keys())  # measurements read back take no time: no speed to tell
    batch_record = journal.remember(
        "batch_size", lambda: batch_size_stage(setup, batch_size, epochs)
    )
    batch = int(batch_record["decision"])
    budget.charge("batch_size", int(batch_record.get("samples", 0)), "batch_size")
    per_epoch = samples_per_epoch(setup) or batch * (setup.train_data.steps_per_epoch or 1)
    budget.final_samples = epochs * per_epoch

    def decays_for(family: Any) -> list[float]:
        if weight_decays is not None:
            return [float(w) for w in weight_decays]
        if not takes_weight_decay(family):  # Rprop, a custom optimizer: nothing to search
            return [0.0]
        decoupled = decouples_weight_decay(family)
        return list(settings.decoupled_weight_decays if decoupled else settings.weight_decays)

    parallel = setup.workers > 1 or setup.trials is not None
    if searches_in_run(settings, request.weight_decays, request.compare_momentum, parallel):
        family = families[0] if len(families) == 1 else settings.in_run_optimizer
        return _search_in_run(
            setup, request, batch_record, per_epoch, family, decays_for(family)[0]
        )
    if settings.lr_search == "in_run" and not resumed:  # the default, overridden: say why
        asked = only_short_runs(request.weight_decays, request.compare_momentum, parallel)
        tell(
            "tune: the LR is searched by range tests and short runs before the final run, not "
            f"inside it: this run {' and '.join(asked)}, which only short runs do",
            logger,
        )

    room = len(families)  # the optimizers whose LR search the budget holds (at least one)
    size = _short_run_size(setup, batch, per_epoch, epochs, room, decays_for(families[0]))
    one = RANGE_TEST_STEPS * batch + len(settings.lr_divisors) * size.samples
    if budget.allowance < room * one:
        room = max(1, budget.allowance // one)
        size = _short_run_size(setup, batch, per_epoch, epochs, room, decays_for(families[0]))
    if batch_size != "auto":
        advice = "more epochs or a smaller batch"
    elif own_batch_size(setup.train_data) is not None:
        advice = "more epochs or a smaller batch in your loader"
    else:
        advice = "more epochs (or more data)"
    _warn_over_budget(budget, batch, epochs, size, len(settings.lr_divisors), advice, resumed)
    # held back for a longer final run until the short runs show whether the model overfits:
    # the short runs are sized within the rest (at least `min_short_steps` each), and no LR
    # grid extension may use it
    reserve = int(settings.extension_reserve_fraction * budget.allowance)
    if not (settings.extend_final_run and reserve >= per_epoch):
        reserve = 0
    if reserve:
        budget.handed = reserve
        size = _short_run_size(setup, batch, per_epoch, epochs, room, decays_for(families[0]))
    start = time.perf_counter()
    bounds, failed = _families(setup, batch, size, momentum, families, room, decays_for)
    _release_workers()
    chosen, max_lr, margin, bounds_record = lr_bounds_stage(setup, bounds, failed, start)
    bounds_record = journal.remember("lr_bounds", lambda: bounds_record)
    budget.handed = 0
    if not resumed:
        _estimate(budget, time.perf_counter() - start)
    min_lr = max_lr / settings.min_lr_divisor
    anchor = chosen.short.at(max_lr, min_lr, chosen.weight_decay)
    decays = decays_for(chosen.optimizer)
    anchor_run = setup.run_short("weight_decay", anchor)  # charged (if new) before the share
    share = _extension_share(budget, anchor, decays, reserve, request.compare_momentum, settings)
    if weight_decays is not None:  # candidates the caller named are compared, not handed over
        extra, extension_why, skipped = 0, "the weight decays given are compared", None
    else:
        extra, extension_why = final_run_extension(
            share, per_epoch, *_losses(anchor_run), margin, settings
        )
        skipped = weight_decay_runs_skipped(*_losses(anchor_run), margin, settings)
    if extra:
        weight_decay, short_loss, wd_record = extension_stage(
            anchor, anchor_run, extra, extension_why
        )
    elif skipped is not None:
        why = f"{skipped}; the final run is not lengthened: {extension_why}"
        weight_decay, short_loss, wd_record = extension_stage(anchor, anchor_run, 0, why)
    else:
        weight_decay, short_loss, wd_record = weight_decay_stage(setup, anchor, decays, margin)
        wd_record["details"]["extension"] = extension_why
    wd_record = journal.remember("weight_decay", lambda: wd_record)
    extra = int(wd_record["details"].get("extra_epochs", 0))  # as recorded (read back on resume)
    budget.handed = extra * per_epoch
    _say_longer(epochs, extra, wd_record["details"].get("extension", ""))
    chosen_momentum, momentum_record = momentum_stage(
        setup, anchor.at(max_lr, min_lr, weight_decay), request.compare_momentum
    )
    momentum_record = journal.remember("momentum", lambda: momentum_record)
    name = chosen.optimizer
    plan = TunePlan(
        epochs=epochs + extra,
        batch_size=batch,
        max_lr=max_lr,
        min_lr=min_lr,
        weight_decay=weight_decay,
        momentum=chosen_momentum,
        seed=setup.seed,
        optimizer=name if isinstance(name, str) else None,
        loss=loss_name(setup.loss_fn),
        weight_average=setup.settings.weight_average,
        evidence=[batch_record, bounds_record, wd_record, momentum_record],
        range_tests={
            f"{f.optimizer if isinstance(f.optimizer, str) else 'custom'} (bounds)": f.range_test
            for f in bounds
        },
    )
    return plan, short_loss


def _search_in_run(
    setup: RecipeSetup,
    request: _Request,
    batch_record: dict[str, Any],
    per_epoch: int,
    family: Any,
    decay: float,
) -> tuple[TunePlan, float]:
    """The search inside the final run (`RecipeSettings.lr_search` "in_run"): the plan of a
    final run whose rise finds max_lr, lengthened by the budget's whole epochs; no short run
    (its validation loss: inf)."""
    batch, epochs, budget = int(batch_record["decision"]), request.epochs, setup.budget
    record = setup.journal.remember(
        "lr_search",
        lambda: in_run_search_record(family, decay, epochs, per_epoch, budget, setup.settings),
    )
    extra = int(record["details"]["extra_epochs"])
    budget.handed = extra * per_epoch
    _say_longer(epochs, extra, "the LR is searched inside it, so the budget's samples train")
    plan = TunePlan(
        epochs=epochs + extra,
        batch_size=batch,
        max_lr=math.nan,  # found by the final run
        min_lr=math.nan,
        weight_decay=float(record["details"]["weight_decay"]),
        momentum=request.momentum,
        policy=SEARCH,
        seed=setup.seed,
        optimizer=family if isinstance(family, str) else None,
        loss=loss_name(setup.loss_fn),
        search=search_constants(setup.settings.search),
        weight_average=setup.settings.weight_average,
        evidence=[batch_record, record],
    )
    return plan, math.inf


def _check_search(
    settings: RecipeSettings, weight_decays: Any, compare_momentum: bool, parallel: bool
) -> None:
    """`settings.search`: an `EdgeSettings`, and only where the LR is searched in the run."""
    if settings.search is None:
        return
    check_edge_settings(settings.search, "settings.search")
    if not searches_in_run(settings, weight_decays, compare_momentum, parallel):
        raise ValueError(
            "settings.search sets the constants of the LR search inside the final run, but this "
            "call searches by short runs (lr_search='short_runs', several weight_decays, "
            "compare_momentum, workers > 1 or a study): drop settings.search, or what asks for "
            "short runs"
        )


def _say_longer(epochs: int, extra: int, why: str) -> None:
    """A final run longer than the epochs asked for is not what the caller asked for: say so
    beside the decisions (as information: a warning on every default run was noise, and the
    CLI showed it under -q and again on --resume)."""
    if extra:
        tell(
            f"tune: the final run trains {epochs + extra} epochs, not {epochs}: {why} (keep "
            f"{epochs}: settings=RecipeSettings(extend_final_run=False), --exact-epochs)",
            logger,
        )


def _finish(
    setup: RecipeSetup,
    plan: TunePlan,
    short_loss: float,
    test: DataSource | None,
    out_dir: str | Path | None,
) -> TunePlan:
    """The final run (read back from its checkpoint on resume) and the diagnosis."""
    options = {**setup.options, "optimizer": plan.optimizer or setup.families[0]}
    _release_workers()
    final = final_run_stage(setup, plan, short_loss, test, out_dir, options)
    judge_one_epoch(plan, short_loss, final)  # also on resume: the records are read back
    plan.evidence += [*final, setup.journal.remember("diagnosis", lambda: diagnosis_stage(plan))]
    plan.compute = setup.budget.summary(sum(int(r.get("samples", 0)) for r in final))
    return plan


def _extension_share(
    budget: SearchBudget,
    short: ShortRun,  # at the chosen settings
    decays: list[float],
    reserve: int,
    compare_momentum: bool,
    settings: RecipeSettings,
) -> int:
    """The samples a longer final run may take from the allowance: what the weight-decay stage
    would spend at most (its other candidates and a midpoint), or the samples held back for it
    if more, within what is left once a momentum comparison (if asked) is paid for."""
    others = len({float(w) for w in decays} - {float(short.weight_decay)})
    momenta = len(settings.constant_momenta) if compare_momentum else 0
    samples = int(short.samples)
    left = budget.left() - momenta * samples
    return max(0, min(left, max((others + 1) * samples, reserve)))


def _losses(run: dict[str, Any]) -> tuple[float | None, float | None]:
    """A short run's training loss at its end (`probes.run_short`) and final validation loss
    (None where a run recorded before short runs kept their training loss lacks it)."""
    train, val = run.get("train_loss"), run.get("val_loss")
    return (None if train is None else float(train)), (None if val is None else float(val))


MIN_FINAL_STEPS = 4  # what the 1cycle plans need (smith_one_cycle's total_steps)


def _check_own_batch(batch_size: int | str, train: DataSource) -> None:
    """A batch size given for a loader with batches of its own (a user's DataLoader) would be
    ignored while the plan records it: refused (with "auto" tune uses the loader's own)."""
    own = train.fixed_batch_size
    theirs = train.kind == "loader" or own is not None  # a DataLoader over a stream too
    if theirs and batch_size != "auto" and (own is None or int(batch_size) != own):
        raise ValueError(own_batch_message(int(batch_size), own, "train_data"))


def _check_final_steps(batch_size: int | str, epochs: int, train: DataSource) -> None:
    """A fixed batch size (given, or a user's loader's own) that leaves the final run fewer
    updates than a 1cycle needs fails here, not after the range test (a batch size tune
    chooses keeps enough)."""
    samples, own = train.num_samples, own_batch_size(train)
    size = own or batch_size
    if not isinstance(size, int) or samples is None:
        return
    steps = epochs * math.ceil(samples / size)
    if steps < MIN_FINAL_STEPS:
        fix = "use a smaller batch in your loader" if own else "lower batch_size"
        raise ValueError(
            f"batch_size {size} with {plural(epochs, 'epoch')} leaves the final run {steps} optimizer "
            f"updates over {samples} training samples; a 1cycle needs at least "
            f"{MIN_FINAL_STEPS}: {fix} or raise epochs"
        )


def _check_picklable(**named: Any) -> None:
    """With ``workers > 1`` the short runs go to spawned processes, which get what builds them
    by pickling: a lambda or a function defined inside another fails there, mid-search, as
    ``PicklingError``; say so before anything runs."""
    for name, value in named.items():
        try:
            pickle.dumps(value)
        except Exception as error:
            raise ValueError(
                f"{name} cannot be sent to the worker processes of workers>1 (spawned: they get "
                f"it by pickling, which failed: {error}); define it at module level (not a "
                "lambda or a function inside another), or pass workers=1"
            ) from None


def _release_workers() -> None:
    """Free the finished runs' trainers now: the first trainer of a process sits in a reference
    cycle (torch's first lazy import keeps the frames that built its optimizer) until the
    garbage collector runs. Their DataLoader workers no longer wait for it (each run closes its
    trainer: `Trainer.close`); their models and optimizers do."""
    gc.collect()


def _estimate(budget: SearchBudget, seconds: float) -> None:
    """Log how long the rest of the recipe should take, at the speed of the samples so far."""
    done = budget.total_spent
    if done <= 0 or seconds <= 0:
        return
    left = max(0, budget.allowance - done) + budget.final_samples
    tell(
        f"tune: about {format_seconds(left * seconds / done)} left "
        f"({max(0, budget.allowance - done):,} search samples at most, then the final run's "
        f"{budget.final_samples:,}, at {done / seconds:,.0f} samples/s so far)",
        logger,
    )


def _warn_over_budget(
    budget: SearchBudget,
    batch: int,
    epochs: int,
    size: ShortRunSize,
    grid: int,
    advice: str,
    resumed: bool,
) -> None:
    """Say before the search when its least useful form (one range test, one LR grid of
    the shortest short runs) is more than the allowance, and record it: the search still runs
    (a choice made on fewer updates decides nothing), so the budget is overspent. (Said once:
    not again when the run is resumed.) An estimate: the range test may stop early or sweep
    further."""
    floor = RANGE_TEST_STEPS * batch + grid * size.samples
    if floor <= budget.allowance:
        return
    budget.floor = floor
    if resumed:
        return
    runs = floor / max(1, budget.final_samples)
    logger.warning(
        "tune: the search will spend about %.1fx the final run, over its budget of %g: at batch "
        "%d the least search that decides (a %d-step range test, %s of %s samples) is about %s "
        "samples, the final run (%s) %s; %s keep it within budget",
        runs,
        budget.budget,
        batch,
        RANGE_TEST_STEPS,
        plural(grid, "short run"),
        f"{size.samples:,}",
        f"{floor:,}",
        plural(epochs, "epoch"),
        f"{budget.final_samples:,}",
        advice,
    )


def _short_run_size(
    setup: RecipeSetup, batch: int, per_epoch: int, epochs: int, families: int, decays: list[float]
) -> ShortRunSize:
    """Each short run's length: the allowance left after the range tests, shared by the runs
    the decisions need (each family's LR grid, the noise repeat, the other decays)."""
    settings = setup.settings
    planned = families * len(settings.lr_divisors) + int(settings.measure_noise) + len(decays) - 1
    return size_short_runs(
        per_epoch,
        epochs,
        batch,
        max(0, setup.budget.allowance - setup.budget.handed - families * RANGE_TEST_STEPS * batch),
        planned,
        max_fraction=settings.max_short_fraction,
        min_steps=settings.min_short_steps,
        can_subset=can_subset(setup.train_data),
    )


def _families(
    setup: RecipeSetup,
    batch: int,
    size: ShortRunSize,
    momentum: tuple[float, float] | None,
    families: list[Any],
    room: int,
    decays_for: Callable[[Any], list[float]],
) -> tuple[list[FamilyBounds], dict[str, str]]:
    """Each optimizer's range test and LR short runs (at its anchor decay), as many families as
    the budget holds (at least one); a family whose range test found no LR is dropped with its
    reason and the next one in line takes its place; when every family failed the recipe stops
    with those reasons."""
    bounds: list[FamilyBounds] = []
    failed: dict[str, str] = {}
    longer: list[Any] = []  # families a longer sweep may rescue, should none find an LR

    def search(family: Any, long: bool = False) -> None:
        name = family if isinstance(family, str) else "custom"
        short = setup.short_run(batch, size, momentum, family)
        anchor = decays_for(family)[0]
        result = family_bounds(setup, short.at(0.0, 0.0, anchor), family, anchor, long)
        if isinstance(result, FamilyFailure):
            failed[name] = result.reason if not long else f"{failed[name]}; {result.reason}"
            if result.sweep_longer:
                longer.append(family)
        else:
            failed.pop(name, None)
            bounds.append(result)

    for family in families:
        if len(bounds) >= room:
            name = family if isinstance(family, str) else "custom"
            failed[name] = f"not compared: the budget holds the LR search of {room} optimizer(s)"
            continue
        search(family)
    if not bounds:  # a loss that falls too slowly for 100 steps to show it (a small text set)
        for family in longer:
            search(family, long=True)
    if not bounds:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in failed.items())
        raise ValueError(f"max_lr: the LR range test found none ({reasons})")
    return bounds, failed


def check_model_fn(model_fn: Any, name: str = "model_fn", made: str = "model") -> None:
    """A model where a function that builds one is needed: every run of the recipe starts from
    a new model (a module is callable, and failed later as "forward() missing 1 required
    positional argument"). `name` and `made`: the argument and what it builds, as the caller
    (`tune`, `tune_module`) calls them."""
    if isinstance(model_fn, nn.Module):
        kind = type(model_fn).__name__
        raise TypeError(
            f"{name} must be a function that returns a new {made} (each run of the recipe "
            f"trains its own), got a {kind} instance; pass its class, a function, or "
            f"lambda: {kind}(...)"
        )
    if not callable(model_fn):
        raise TypeError(f"{name} must be a function that returns a {made}, got {model_fn!r}")


def _momentum_pair(momentum: Any) -> tuple[float, float] | None:
    """``(high, low)`` in [0, 1) (cycled against the LR), or one number kept constant; None
    leaves the optimizer's own momentum alone (one without momentum or betas, such as Rprop)."""
    if momentum is None:
        return None
    given = momentum
    if isinstance(momentum, (int, float)) and not isinstance(momentum, bool):
        momentum = (momentum, momentum)
    valid = (
        isinstance(momentum, (tuple, list))
        and len(momentum) == 2
        and all(
            isinstance(m, (int, float)) and not isinstance(m, bool) and 0 <= m < 1 for m in momentum
        )
    )
    if not valid:
        raise ValueError(
            f"momentum must be a (high, low) pair in [0, 1) (cycled against the LR; β1 for "
            f"Adam-family optimizers), one number kept constant, or None (for an optimizer "
            f"without momentum), got {given!r}"
        )
    return float(momentum[0]), float(momentum[1])


def _check_momentum_to_cycle(families: Sequence[Any], momentum: Any) -> None:
    """A momentum to cycle needs optimizers that have one: said by tune's own argument (the
    scheduler's "build the plan with momentum=None" named nothing tune takes), before any run."""
    from superconverge.pytorch.external_loop import check_has_momentum
    from superconverge.pytorch.optimizers import build_optimizer

    for family in families if momentum is not None else ():
        try:  # on a probe parameter: a callable that needs the model's (Muon's 2-D ones, a
            # filter that leaves none) is checked by its first run instead
            built = build_optimizer(family, [torch.nn.Parameter(torch.zeros(2, 2))])
        except Exception:
            continue
        check_has_momentum(built, momentum, "tune")


def _check_arguments(
    optimizer: OptimizerSpec,
    metrics: MetricsSpec,
    precision: str,
    epochs: int,
    budget: float,
    weight_decays: Sequence[float] | None,
    workers: int,
    batch_size: int | str,
    settings: RecipeSettings,
) -> list[Any]:
    """Every argument checked before anything runs; the optimizers the recipe compares."""
    if optimizer != "auto":
        check_optimizer_spec(optimizer)
    resolve_metrics(metrics)
    check_choice("precision", precision, PRECISIONS)
    if not isinstance(settings, RecipeSettings):
        raise TypeError(f"settings must be a RecipeSettings, got {type(settings).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
        raise ValueError(
            f"budget must be a number > 0 (final runs' worth of samples), got {budget!r}"
        )
    if not math.isfinite(budget):
        raise ValueError(f"budget must be a finite number > 0, got {budget!r}")
    decays = (0.0,) if weight_decays is None else weight_decays
    if not decays or any(not math.isfinite(w) or w < 0 for w in decays):
        raise ValueError(f"weight_decays must be finite numbers >= 0, got {tuple(decays)!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if batch_size != "auto" and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be 'auto' or an integer >= 1, got {batch_size!r}")
    return list(settings.optimizer_families) if optimizer == "auto" else [optimizer]
