"""`OneCycle`: Smith's recipe as a Lightning callback — range test, then 1cycle with momentum."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import LearningRateFinder
from lightning.pytorch.utilities import CombinedLoader, rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.signature_utils import is_param_in_hook_signature

from superconverge._checks import check_max_lr
from superconverge._display import as_given
from superconverge._warnings import warn
from superconverge.finder.result import RangeTestResult
from superconverge.finder.sweep import check_sweep_arguments, sweep_settings
from superconverge.pytorch.external_loop import (
    Cycle,
    LoaderGenerators,
    average_gradients,
    check_cycle_settings,
    check_has_momentum,
    check_run_length,
    mean_across_ranks,
    sweep,
    warn_if_group_lrs_differ,
)
from superconverge.pytorch.scheduler import HyperparamScheduler
from superconverge.pytorch.snapshot import TrainingSnapshot
from superconverge.schedules import Plan, one_cycle
from superconverge.training.edge import (
    EdgeSearch,
    EdgeSettings,
    changed_constants,
    check_search_request,
    search_host,
)
from superconverge.training.history import History

logger = logging.getLogger(__name__)


def training_step(module: pl.LightningModule, batch: Any, batch_index: int) -> Any:
    """``module.training_step`` called as Lightning calls it: with ``batch_idx`` only when its
    signature takes one (``def training_step(self, batch)`` is valid Lightning)."""
    step = module.training_step
    if is_param_in_hook_signature(step, "batch_idx", min_args=2):
        return step(batch, batch_index)
    return step(batch)


MAX_SKIPPED = 100  # batches in a row a training_step may skip (return None) during a sweep


def _loss_of(output: Any) -> torch.Tensor:
    """The loss a ``training_step`` returned: a tensor, or a mapping with a ``"loss"`` key."""
    loss = output.get("loss") if isinstance(output, Mapping) else output
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(
            "OneCycle's range test (and max_lr='search') needs training_step to return the loss "
            f"(a scalar tensor or a dict with 'loss'), got {type(output).__name__}"
        )
    return loss


class _NoLogging:
    """Silences ``self.log``/``self.log_dict`` while the range test calls ``training_step``:
    the sweep's losses are not the run's, and Lightning allows no step logging at this point."""

    def __init__(self, module: pl.LightningModule) -> None:
        self.module = module

    def __enter__(self) -> None:
        self.module.log = _ignore  # type: ignore[method-assign]
        self.module.log_dict = _ignore  # type: ignore[method-assign]

    def __exit__(self, *exc: object) -> None:
        del self.module.log, self.module.log_dict  # the class's methods again


def _ignore(*args: Any, **kwargs: Any) -> None:
    return None


class _TrainBatches:
    """The batches ``training_step`` gets from ``trainer.train_dataloader``: one loader's as
    they are; from a collection of loaders (a dict or list, which Lightning combines), one
    batch of each in the same collection, combined as Lightning's fit loop combines them
    (``CombinedLoader(..., "max_size_cycle")``)."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self.combined = isinstance(data, (Mapping, list, tuple))
        self.loaders = CombinedLoader(data).flattened if self.combined else [data]

    def __iter__(self) -> Iterator[Any]:
        if not self.combined:
            return iter(self.data)
        return (batch for batch, _, _ in CombinedLoader(self.data, "max_size_cycle"))


class OneCycle(pl.Callback):
    """Run the LR range test at the start of ``fit``, then train with 1cycle and cyclical
    momentum (SGD ``momentum`` or Adam's β1), whatever the ``LightningModule`` and data.

    At ``on_train_start`` (data and optimizer are set up), unless `max_lr` is given: the range
    test sweeps the LR of the module's own optimizer from `start_lr` to `end_lr` over
    `num_steps` optimizer steps of the module's own ``training_step`` on the train dataloader
    (several, as a dict or list, combined as Lightning's fit combines them:
    ``"max_size_cycle"``; ``accumulate_grad_batches`` micro-batches per step; the gradients
    clipped as the Trainer's ``gradient_clip_val`` says, through the module's
    ``configure_gradient_clipping``, as in fit; under DDP the gradients and the loss are
    averaged over the ranks, so every rank takes the same decisions). Then the weights, buffers
    (BatchNorm), train/eval modes, gradients, the optimizer's state and every RNG (the global
    ones and the data loader's own generators) are restored exactly (`TrainingSnapshot`), also
    when the sweep fails: the run that follows is bitwise the run ``OneCycle(max_lr=...)`` with
    the same value would make. The suggestion is shown
    (``rank_zero_info``), logged to the trainer's loggers as ``lr_find/max_lr`` and
    ``lr_find/min_lr``, and kept in `result`.

    Every param group gets the plan's LR (as with torch's ``OneCycleLR`` and one max_lr),
    times the group's ``"lr_scale"`` where ``configure_optimizers`` gives one (discriminative
    LRs: ``{"params": backbone, "lr_scale": 0.01}``); groups with LRs of their own and no
    ``lr_scale`` are warned about. A group added mid-run (``BackboneFinetuning`` unfreezing a
    backbone) keeps the share of the plan's LR it was added with; an LR another callback writes
    between updates is replaced by the cycle's (both said once); ``LearningRateFinder`` beside
    this callback is warned about (the cycle replaces the LR it sets).

    Training then follows ``one_cycle(trainer.estimated_stepping_batches, max_lr, ...)``: before
    optimizer update k the optimizer holds the plan's values of step k, with k Lightning's
    ``global_step`` (optimizer steps: accumulation and DDP count once). The plan is saved in
    the checkpoint (this callback's state), so ``fit(ckpt_path=...)`` continues the same cycle
    mid-way without a new range test.

    ``max_lr="search"`` makes the cycle's rise the range test, as `Trainer.fit_one_cycle(epochs,
    "search")` does (`superconverge.training.edge`): no sweep before training; the LR rises
    exponentially from 1e-4 while the module trains, each update's loss (the mean of the losses
    ``training_step`` returned for its micro-batches, undivided by the accumulation, skipped
    batches left out; averaged over the ranks) is smoothed, and once it has passed its edge the weights
    and
    optimizer state copied at the LR of the lowest loss / 6 come back and Smith's descent
    follows (linear to max_lr / 10, then the annihilation), momentum rising back. What was
    found is in `lr_search` (and the loggers' ``lr_search/max_lr``); a checkpoint carries the
    search, so a resumed fit continues it (after the edge exactly; before it, searching on).

    Args:
        max_lr: the peak LR; None runs the range test and uses its ``max_lr``; ``"search"``
            searches it in the run's rise (above).
        momentum: ``(high, low)`` momentum/β1 of the cycle (Smith: 0.95 → 0.85), or None to
            leave it alone (needed for optimizers without momentum).
        warmup_fraction, min_lr, final_lr: as in `superconverge.one_cycle` (torch's
            ``OneCycleLR`` defaults: warmup 0.3, min_lr = max_lr / 25, final_lr = min_lr /
            1e4); with ``max_lr="search"`` the search sets them: leave them unset.
        search: the constants of ``max_lr="search"`` (`superconverge.training.EdgeSettings`).
        start_lr, end_lr, num_steps, mode, smoothing, diverge_factor, rule: the range test's
            settings, as in `superconverge.lr_find`.

    Under ``fast_dev_run`` the callback does nothing (a warning says so), as Lightning's own
    LR finder.

    Raises:
        ValueError: an invalid setting, when the callback is built (min_lr and final_lr
            against max_lr when it is given; without it, at fit, against the range test's);
            at fit, before the range test: an optimizer without momentum (e.g. Adagrad) while
            `momentum` is set, or a Trainer with too few optimizer steps for the cycle's
            phases (e.g. 3 with warmup_fraction=0.3).
        RuntimeError (at fit): the range test found no honest max_lr (its reason is in the
            message), the module has several optimizers, manual optimization or a scheduler of
            its own, or the Trainer has no end (max_epochs=-1 and no max_steps; said before
            the range test runs).

    Example:
        >>> callback = OneCycle(max_lr=0.1)
        >>> callback.plan is None  # built when fit starts, from the trainer's step count
        True
    """

    def __init__(
        self,
        max_lr: float | str | None = None,
        *,
        momentum: tuple[float, float] | None = (0.95, 0.85),
        warmup_fraction: float | None = None,
        min_lr: float | None = None,
        final_lr: float | None = None,
        start_lr: float = 1e-7,
        end_lr: float = 10.0,
        num_steps: int = 100,
        mode: str = "exp",
        smoothing: float = 0.98,
        diverge_factor: float = 4.0,
        rule: str = "minimum",
        search: EdgeSettings | None = None,
    ) -> None:
        searches = _check_search(max_lr, search, min_lr=min_lr, final_lr=final_lr,
                                 warmup_fraction=warmup_fraction)  # fmt: skip
        peak = None if searches or isinstance(max_lr, str) else max_lr
        check_max_lr(peak, optional=True, searches=True)
        warmup_fraction = 0.3 if warmup_fraction is None else warmup_fraction
        # the cycle's settings now, not after Lightning's set-up and the range test
        check_cycle_settings(
            peak,
            min_lr=min_lr,
            final_lr=final_lr,
            warmup_fraction=warmup_fraction,
            momentum=momentum,
        )
        # the range test's settings, named now rather than after Lightning's set-up at fit
        check_sweep_arguments(
            start_lr, end_lr, num_steps, mode, smoothing, diverge_factor, rule, "one_cycle", None
        )
        self.max_lr = None if peak is None else float(peak)
        # max_lr="search": the search's constants, and its state once the fit starts
        self.searches, self.search_settings = searches, search
        self.edge_search: EdgeSearch | None = None
        self.history = History()  # the search's notes and edge
        self._losses: list[torch.Tensor] = []  # the update's micro-batch losses, until read
        self.momentum, self.warmup_fraction = momentum, warmup_fraction
        self.min_lr, self.final_lr = min_lr, final_lr
        self.sweep_settings = sweep_settings(
            start_lr, end_lr, num_steps, mode, smoothing, diverge_factor, rule=rule
        )
        self.result: RangeTestResult | None = None
        self.plan: Plan | None = None
        self.scheduler: HyperparamScheduler | None = None
        self._restored: dict[str, Any] | None = None
        self._first_step = 0  # the trainer's global_step at the cycle's step 0
        self._past_end_said = False  # a resume into a longer run said the cycle ends first

    # --- Lightning hooks -----------------------------------------------------------------

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # a smoke test of a step or few: skipped, as Lightning's own LR finder skips it
        if getattr(trainer, "fast_dev_run", False):
            rank_zero_warn(
                "OneCycle: skipped under fast_dev_run (no range test, no schedule: the "
                "optimizer keeps its own LR)"
            )
            return
        optimizer = self._the_optimizer(trainer, pl_module)
        check_has_momentum(optimizer, self.momentum, "OneCycle")  # before the range test
        self._warn_of_lr_finder(trainer)
        warn_if_group_lrs_differ(optimizer, "OneCycle")
        self._past_end_said = False
        if self._restored is not None:  # resuming: the same plan, no new range test
            self.plan = Plan.from_dict(self._restored["plan"])
            self._first_step = int(self._restored.get("first_step", 0))
            search = self._restored.get("search")
            if search is not None:
                self.edge_search = EdgeSearch.from_state(search)
                self.history.lr_search = self.edge_search.edge
            result = self._restored.get("result")
            self.result = None if result is None else RangeTestResult.from_dict(result)
            saved = self._restored.get("settings")
            self._restored = None
            self._check_resumed_plan(trainer)
            self._check_resumed_settings(saved if isinstance(saved, dict) else {}, search)
        else:  # a new fit: a reused callback forgets the last fit's search, notes and sweep
            self.history, self.edge_search, self.result = History(), None, None
            total = trainer.estimated_stepping_batches
            if not math.isfinite(total):  # said before the range test, not after it
                raise RuntimeError(
                    "OneCycle needs a finite run: set max_epochs or max_steps on the Trainer"
                )
            # a fit that starts past update 0 without a cycle saved (a second `fit` of the
            # same Trainer, a checkpoint written without OneCycle): a whole new cycle over
            # the updates left, not the tail of one over the whole run
            self._first_step = trainer.global_step
            left = int(total) - self._first_step
            if self._first_step:
                rank_zero_info(
                    f"OneCycle: this fit starts at update {self._first_step} with no cycle "
                    f"saved: a new cycle over its {left} updates left"
                )
            self.plan = self._new_plan(trainer, pl_module, optimizer, left)
        self._losses = []  # an update's micro-batch losses, for the search
        self.scheduler = HyperparamScheduler(optimizer, self.plan)
        if self._past_end_said:
            self.scheduler.past_end_said()
        self.scheduler.load_state_dict({"step_count": self._step(trainer)})

    def _step(self, trainer: pl.Trainer) -> int:
        """The cycle's step of the trainer's next update: its ``global_step`` counted from
        the update this cycle started at."""
        return trainer.global_step - self._first_step

    def _new_plan(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any, total: int
    ) -> Plan:
        """The plan of a fit that does not resume one: the search's rise, or 1cycle at the
        max_lr given or found by the range test."""
        if self.searches:
            if total < 4:
                raise ValueError(
                    f"OneCycle(max_lr='search') needs at least 4 optimizer steps; this "
                    f"Trainer runs {total}: raise max_epochs or max_steps"
                )
            self.edge_search = EdgeSearch(total, self.momentum, self.search_settings)
            return self.edge_search.rise_plan()
        check_run_length(total, self.warmup_fraction, "OneCycle", "this Trainer")
        max_lr = self.max_lr
        if max_lr is None:
            self.result = self.range_test(trainer, pl_module, optimizer)
            max_lr = self._suggestion(trainer, self.result)
        try:
            return one_cycle(
                total,
                max_lr,
                min_lr=self.min_lr,
                final_lr=self.final_lr,
                warmup_fraction=self.warmup_fraction,
                momentum=self.momentum,
            )
        except ValueError as error:
            if self.max_lr is not None:
                raise
            raise ValueError(
                f"OneCycle: the range test's max_lr {max_lr:.3g} does not fit the LRs "
                f"given ({error}); lower min_lr/final_lr or pass OneCycle(max_lr=...)"
            ) from error

    def _warn_of_lr_finder(self, trainer: pl.Trainer) -> None:
        """Lightning's ``LearningRateFinder`` beside this callback: its sweep (at fit start)
        only sets the optimizer's starting LR, which the cycle replaces at the first update."""
        if self._restored is not None or not any(
            isinstance(callback, LearningRateFinder)
            for callback in getattr(trainer, "callbacks", ())
        ):
            return
        uses = (
            "its own range test's max_lr (a second sweep)"
            if self.max_lr is None
            else f"max_lr={self.max_lr:g}"
        )
        warn(
            "OneCycle: LearningRateFinder's suggestion is not used: it sets the optimizer's "
            f"starting LR, and OneCycle sets every update's LR from {uses}; remove "
            "LearningRateFinder (OneCycle(max_lr=None) runs a range test itself), or pass its "
            "suggestion as OneCycle(max_lr=...)",
            key=("lightning lr finder", self.max_lr),
        )

    def _check_resumed_plan(self, trainer: pl.Trainer) -> None:
        """Say when a resumed plan does not fit this Trainer: more (or fewer) steps than it
        was built for (max_epochs raised to train longer: past its end the LR stays at its
        final value, ~0), or a max_lr given now that the saved plan replaces."""
        assert self.plan is not None
        planned = self.plan.total_steps
        total = _resumed_run_updates(trainer) - self._first_step  # the cycle's updates
        if planned is not None and math.isfinite(total) and int(total) != planned:
            self._past_end_said = int(total) > planned  # not again mid-run (the docs say so)
            if int(total) > planned:
                what = (
                    f"past step {planned} the LR stays at its final value "
                    f"{self.plan.lr(planned - 1):.3g}; to train longer, start a new cycle on the "
                    "checkpoint's weights (load them into the module, fit without ckpt_path)"
                )
            else:
                what = (
                    f"the run stops at step {int(total)}, mid-cycle at LR "
                    f"{self.plan.lr(int(total) - 1):.3g}, before the cycle anneals"
                )
            warn(
                f"OneCycle: the checkpoint's cycle has {planned} steps, this Trainer runs "
                f"{int(total)} (max_epochs, max_steps or accumulate_grad_batches changed): a "
                "resumed run continues the "
                f"saved cycle, so {what}; or resume with the Trainer settings the cycle was "
                "made for",
                key=("lightning resume steps", planned, int(total)),
            )

    def _settings(self) -> dict[str, Any]:
        """The cycle's settings as given, kept in each checkpoint: a resume with other ones
        is said (their values: JSON-compatible, as a checkpoint's state)."""
        momentum = None if self.momentum is None else [float(m) for m in self.momentum]
        return {"momentum": momentum, "warmup_fraction": self.warmup_fraction,
                "min_lr": self.min_lr, "final_lr": self.final_lr}  # fmt: skip

    def _check_resumed_settings(self, saved: dict[str, Any], search: object) -> None:
        """Say which settings given now a resumed run does not use: it continues the
        checkpoint's cycle (a user's check: momentum, warmup_fraction, min_lr, momentum=None
        and even "search" on a fixed cycle's checkpoint were dropped without a word; only
        another max_lr was said). One warning names each with the checkpoint's value."""
        assert self.plan is not None
        peak = self.plan.max_lr
        given, kept = [], []
        if self.searches and search is None:
            given.append("max_lr='search'")
            kept.append("no search: max_lr " + ("?" if peak is None else f"{peak:.3g}"))
        elif not self.searches and search is not None:
            given.append("max_lr=None (a range test)" if self.max_lr is None
                         else f"max_lr={self.max_lr:g}")  # fmt: skip
            edge = self.edge_search.edge if self.edge_search is not None else None
            found = "its edge not found yet" if edge is None else f"max_lr {edge['max_lr']:.3g}"
            kept.append(f"max_lr='search', {found}")
        elif self.max_lr is not None and peak is not None and not math.isclose(self.max_lr, peak):
            given.append(f"max_lr={self.max_lr:g}")
            kept.append(f"max_lr {peak:.3g}")
        if self.searches and isinstance(search, dict):  # the checkpoint's search constants
            constants = changed_constants(search.get("settings"), self.search_settings)
            if constants:
                given.append("search=EdgeSettings(...)")
                kept.append(f"its search's constants: {', '.join(constants)}")
        mine = self._settings()
        for name, before in saved.items():  # a checkpoint of an older version keeps none
            if name in mine and before != mine[name]:
                given.append(f"{name}={as_given(mine[name])!r}")
                kept.append(f"{name} {as_given(before)!r}")
        if not given:
            return
        warn(
            f"OneCycle: {', '.join(given)} {'is' if len(given) == 1 else 'are'} not used: a "
            f"resumed run continues the checkpoint's cycle ({', '.join(kept)}); to train with "
            "them, start a new cycle on the checkpoint's weights (load them into the module, "
            "fit without ckpt_path)",
            key=("lightning resume settings", *given),
        )

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        scheduler = self.scheduler
        if scheduler is None:
            return
        # a group an unfreezing callback (BackboneFinetuning) added keeps its share of the LR
        for index, lr, scale in scheduler.adopt_added_groups():
            warn(
                f"OneCycle: param group {index} was added to the optimizer at update "
                f"{trainer.global_step} (e.g. by BackboneFinetuning) with LR {lr:.3g}: it "
                f"follows the cycle at that share of the plan's LR (lr_scale {scale:.3g}), and LRs "
                "written into it later (BackboneFinetuning's per-epoch changes) are replaced "
                "by the cycle's; to choose its share, add the group with an 'lr_scale'",
                key=("lightning added group", index),
            )
        # the values of update global_step (they are written after each update already; this
        # only acts when something else moved the step, e.g. a loop restarted mid-epoch)
        if scheduler.step_count != self._step(trainer):
            scheduler.load_state_dict({"step_count": self._step(trainer)})
        # an LR another callback wrote since the last update (BackboneFinetuning's per-epoch
        # LR, a callback's own schedule) is replaced by the cycle's, and said once
        for index, found, written in scheduler.rewrite_if_changed():
            warn(
                f"OneCycle: the LR of param group {index} was changed between updates (to "
                f"{found:.3g}; the cycle's is {written:.3g} at update {trainer.global_step}) by "
                "another callback (e.g. BackboneFinetuning) or the module: OneCycle sets every "
                "update's LR, so the cycle's is used; remove the other LR schedule, or drop "
                "OneCycle to keep it",
                key=("lightning lr changed", index),
            )

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, *args: Any
    ) -> None:
        scheduler, search = self.scheduler, self.edge_search
        if scheduler is None:
            return
        searching = search is not None and search.searching
        if searching:  # every micro-batch's loss, as training_step returned it: Lightning
            # divides it by the accumulation, which the search's notes would show
            loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
            if isinstance(loss, torch.Tensor) and loss.numel() == 1:  # None: a skipped batch
                self._losses.append(loss.detach().double() * trainer.accumulate_grad_batches)
        # after an update (not after a micro-batch of an accumulation), write the next values
        if scheduler.step_count >= self._step(trainer):
            return
        scheduler.step()
        if search is None or not searching:
            return
        # the search reads each update's loss, the mean of its micro-batches' (one sync; the
        # mean over the ranks that had one, so that every rank finds the same edge and restores
        # the same copy; every rank joins the sync, also one whose batches were all skipped)
        losses, self._losses = self._losses, []
        mine = torch.stack(losses).mean() if losses else torch.zeros((), dtype=torch.float64)
        local = torch.stack([mine, torch.tensor(float(bool(losses)), dtype=torch.float64)])
        total, ranks = trainer.strategy.reduce(local.to(pl_module.device), reduce_op="sum").tolist()
        if ranks == 0:
            return
        precision = getattr(trainer, "precision_plugin", None)
        host = search_host(
            scheduler, self.history, module=pl_module, optimizer=scheduler.optimizer,
            scaler=getattr(precision, "scaler", None), world_size=trainer.world_size,
            rank=trainer.global_rank, device=pl_module.device,
        )  # fmt: skip
        if search.observe(host, scheduler.step_count - 1, total / ranks):
            self.plan = scheduler.plan
            edge = search.edge
            assert edge is not None
            rank_zero_info(f"OneCycle: {self.history.notes[-1]}")
            logger.info("lightning %s", self.history.notes[-1])
            if trainer.is_global_zero:
                for each in trainer.loggers:
                    each.log_metrics(
                        {"lr_search/max_lr": edge["max_lr"], "lr_search/step": edge["step"]},
                        step=trainer.global_step,
                    )

    @property
    def lr_search(self) -> dict[str, Any] | None:
        """With ``max_lr="search"``, once found: where the rise found its edge, the max_lr it
        chose, the step whose weights came back and why (as `History.lr_search`)."""
        return self.history.lr_search

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.scheduler = None

    def state_dict(self) -> dict[str, Any]:
        if self.plan is None:
            return {}
        return {
            "plan": self.plan.to_dict(),
            "result": None if self.result is None else self.result.to_dict(),
            "search": None if self.edge_search is None else self.edge_search.state_dict(),
            "first_step": self._first_step,  # the update the cycle started at
            "settings": self._settings(),  # as given: a resume with others is said
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restored = dict(state_dict) if state_dict.get("plan") is not None else None

    # --- the range test ------------------------------------------------------------------

    def range_test(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> RangeTestResult:
        """Sweep the LR over the module's ``training_step``; leave everything as it was."""
        data = trainer.train_dataloader
        if data is None:
            raise RuntimeError("OneCycle's range test needs a train dataloader")
        # before the first iter(data): creating a DataLoader iterator draws from the RNGs
        loaders = _TrainBatches(data)
        snapshot = TrainingSnapshot(pl_module, optimizer)
        generators = [LoaderGenerators(loader) for loader in loaders.loaders]
        accumulate = int(trainer.accumulate_grad_batches)
        world = trainer.world_size if torch.distributed.is_initialized() else 1
        params = [p for p in pl_module.parameters() if p.requires_grad]
        batch_index = 0

        def train_step() -> float:
            nonlocal batch_index
            total = 0.0
            for _ in range(accumulate):
                for _skipped in range(MAX_SKIPPED):  # None: the step skips this batch, as in fit
                    batch = trainer.strategy.batch_to_device(next(batches))
                    with trainer.precision_plugin.train_step_context():
                        output = training_step(pl_module, batch, batch_index)
                    batch_index += 1
                    if output is not None:
                        break
                else:
                    raise RuntimeError(
                        f"OneCycle's range test: training_step returned None (skipped the "
                        f"batch) for {MAX_SKIPPED} batches in a row; it needs losses to sweep"
                    )
                loss = _loss_of(output)
                torch.autograd.backward(loss / accumulate)
                total += float(loss.detach())
            average_gradients(params, world)
            # the Trainer's gradient_clip_val/algorithm, through the module's own hook, as fit
            # clips before each update: a sweep without it probes another run (clipped SGD
            # takes far higher LRs)
            pl_module.configure_gradient_clipping(
                optimizer,
                gradient_clip_val=trainer.gradient_clip_val,
                gradient_clip_algorithm=trainer.gradient_clip_algorithm,
            )
            return mean_across_ranks(total / accumulate, world)

        try:
            batches = Cycle(loaders, "train_dataloader")
            pl_module.train()
            with _NoLogging(pl_module):
                return sweep(
                    optimizer,
                    train_step,
                    **self.sweep_settings,
                    settings={
                        "framework": "lightning",
                        "accumulation_steps": accumulate,
                        "world_size": world,
                        "gradient_clip_val": trainer.gradient_clip_val,
                    },
                )
        finally:
            snapshot.restore()
            for each in generators:
                each.restore()

    def _suggestion(self, trainer: pl.Trainer, result: RangeTestResult) -> float:
        if result.max_lr is None:
            raise RuntimeError(
                f"OneCycle: the range test gave no max_lr: {result.reason} (stopped: "
                f"{result.stop_reason}); pass OneCycle(max_lr=...) or change the sweep"
            )
        rank_zero_info(f"OneCycle range test: {result.summary()}")
        logger.info("lightning range test: %s", result.summary().replace("\n", "; "))
        if trainer.is_global_zero:
            for each in trainer.loggers:
                each.log_metrics(
                    {"lr_find/max_lr": result.max_lr, "lr_find/min_lr": result.min_lr or 0.0},
                    step=trainer.global_step,
                )
        return result.max_lr

    @staticmethod
    def _the_optimizer(trainer: pl.Trainer, pl_module: pl.LightningModule) -> Any:
        if not pl_module.automatic_optimization:
            raise RuntimeError(
                "OneCycle needs automatic optimization (one optimizer step per step)"
            )
        if len(trainer.optimizers) != 1:
            raise RuntimeError(
                f"OneCycle drives one optimizer; configure_optimizers gave {len(trainer.optimizers)}"
            )
        if trainer.lr_scheduler_configs:
            raise RuntimeError(
                "OneCycle sets the LR itself: remove the scheduler configure_optimizers returns "
                f"({type(trainer.lr_scheduler_configs[0].scheduler).__name__})"
            )
        optimizer = trainer.optimizers[0]
        if type(optimizer).__name__ == "_MockOptimizer":  # Lightning's stand-in for None
            # its steps change nothing: a range test on it printed a max_lr read from noise
            raise RuntimeError(
                "OneCycle needs an optimizer: configure_optimizers returned None (Lightning "
                "then trains nothing); return one, e.g. torch.optim.AdamW(self.parameters())"
            )
        return optimizer


def _resumed_run_updates(trainer: pl.Trainer) -> float:
    """The update a resumed fit ends at: the updates made before the resume plus those left,
    at this Trainer's accumulation (``estimated_stepping_batches`` counts every epoch at it: a
    user's check, accumulation 1 -> 2 at update 32 of 64, was told the run stopped at 32, and
    it ran to 48). Lightning steps after each `accumulate` batches and after an epoch's last."""
    estimated = trainer.estimated_stepping_batches
    batches, epochs = trainer.num_training_batches, trainer.max_epochs
    try:
        ready = int(trainer.fit_loop.epoch_loop.batch_progress.current.ready)
    except (AttributeError, TypeError, ValueError):  # another Lightning: its own estimate
        return estimated
    if not math.isfinite(batches) or epochs is None or epochs < 0:
        return estimated  # a run set by max_steps alone: the count is global already
    batches, accumulate = int(batches), int(trainer.accumulate_grad_batches)
    done = ready if ready < batches else 0  # at an epoch's end, the next one has begun
    rest = batches // accumulate - done // accumulate + (1 if batches % accumulate else 0)
    per_epoch = -(-batches // accumulate)
    updates = trainer.global_step + rest + (epochs - trainer.current_epoch - 1) * per_epoch
    if trainer.max_steps is not None and trainer.max_steps >= 0:
        updates = min(updates, trainer.max_steps)
    return updates


def _check_search(max_lr: object, search: object, **cycle: float | None) -> bool:
    """Whether `max_lr` asks for the in-run search (`check_search_request`); the cycle's LRs
    and warm-up, which the search sets, are refused with it."""
    given = ", ".join(f"{name}={value!r}" for name, value in cycle.items() if value is not None)
    return check_search_request(max_lr, search, "OneCycle", given, "the cycle's LRs and its rise")
