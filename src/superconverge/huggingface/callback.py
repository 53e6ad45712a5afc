"""`OneCycleCallback`: 1cycle and cyclical β1/momentum for a plain ``transformers.Trainer``."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import torch
import transformers
from torch.optim.lr_scheduler import LRScheduler

from superconverge._checks import check_max_lr, check_momentum
from superconverge.pytorch.external_loop import (
    check_cycle_settings,
    check_has_momentum,
    check_run_length,
    warn_if_group_lrs_differ,
)
from superconverge.pytorch.scheduler import HyperparamScheduler
from superconverge.schedules import Plan, one_cycle

# transformers >= 4.41: a callback's state() is written into each checkpoint's trainer_state.json
_ExportableState: Any = getattr(transformers.trainer_callback, "ExportableState", object)


# TrainingArguments' own learning_rate: one that differs was given, and a 1cycle run ignores it
DEFAULT_LEARNING_RATE = next(
    field.default
    for field in dataclasses.fields(transformers.TrainingArguments)
    if field.name == "learning_rate"
)


def unused_scheduler_arguments(args: Any, *quiet: str, lr_used: bool = False) -> list[str]:
    """The ``TrainingArguments`` that shape the Trainer's own scheduler (``get_scheduler``'s
    type, warm-up and kwargs) and its peak (``learning_rate``, where it is not the default: the
    default cannot be told from one given), which a 1cycle plan overrides, as ``name=value``;
    the scheduler types in `quiet` (the default, or the cheapest) are not named, nor
    ``learning_rate`` where the run uses it (`lr_used`: a search trial's)."""
    unused = []
    kind = transformers.SchedulerType(args.lr_scheduler_type).value
    if kind not in quiet:
        unused.append(f"lr_scheduler_type={kind!r}")
    for name in ("warmup_steps", "warmup_ratio", "lr_scheduler_kwargs"):
        value = getattr(args, name, None)
        if value:
            unused.append(f"{name}={value!r}")
    if not lr_used and args.learning_rate != DEFAULT_LEARNING_RATE:
        unused.append(f"learning_rate={args.learning_rate!r}")
    return unused


class OneCycleCallback(transformers.TrainerCallback, _ExportableState):
    """Train a plain ``transformers.Trainer`` with 1cycle and cyclical momentum (Adam's β1 or
    SGD's ``momentum``), without subclassing it: ``Trainer(..., callbacks=[OneCycleCallback(
    max_lr=3e-4)])``. Smith, arXiv:1708.07120 and arXiv:1803.09820.

    The plan is ``one_cycle(state.max_steps, max_lr, ...)``: the Trainer's own count of optimizer
    updates, whether it comes from ``max_steps`` or from epochs, with gradient accumulation
    counted once per update. Update k (the Trainer's ``global_step``) uses the plan's step k.

    How it cooperates with the Trainer's own scheduler: a callback cannot replace
    ``trainer.lr_scheduler`` (no hook receives the Trainer), and the Trainer steps its scheduler
    (``lr_scheduler_type``, linear by default, or the one passed in ``optimizers``) after every
    update, which writes its own LR. So this callback writes the plan's LR and β1 in
    ``on_pre_optimizer_step``, the last hook before ``optimizer.step()``: whatever scheduler ran
    before, each update uses the plan's values. It writes them again in ``on_step_end``, after the
    Trainer's scheduler, so that evaluation and other callbacks between updates see them too, and
    in ``on_optimizer_step`` it sets the Trainer's scheduler's last LR (what ``get_last_lr()``
    returns) to the one the update used, so the logged ``learning_rate`` is the plan's. The
    Trainer's scheduler keeps running underneath; its ``learning_rate`` (and ``warmup_*``) have
    no effect (setting them, or a scheduler type other than linear or constant, is warned
    about), except under ``hyperparameter_search``: a trial's ``learning_rate`` is that trial's
    max_lr. The Trainer's scheduler type does not matter; ``lr_scheduler_type="constant"``
    makes it cheapest.

    Every param group gets the plan's LR, times its ``"lr_scale"`` where the optimizer passed
    in ``optimizers=(optimizer, None)`` gives one (discriminative LRs); groups with LRs of their
    own and no ``lr_scale`` are warned about.

    Resume: the step is the Trainer's ``global_step`` (``trainer_state.json``) and the plan is
    rebuilt from this callback's settings and ``state.max_steps``, as the Trainer rebuilds its
    own scheduler, so ``train(resume_from_checkpoint=...)`` continues the cycle exactly. Keep the
    callback's settings and the run's length (epochs, ``max_steps``, batch size, accumulation)
    the same when resuming: the cycle's length is kept in each checkpoint's
    ``trainer_state.json`` (``state()``), and a resume into a run of another length warns.

    Args:
        max_lr: the peak LR (e.g. from `superconverge.huggingface.lr_find`).
        momentum: ``(high, low)`` of β1/momentum over the cycle (Smith: 0.95 → 0.85), or None
            to leave it alone (needed for optimizers without momentum, e.g. Adagrad).
        warmup_fraction, min_lr, final_lr, three_phase: as in `superconverge.one_cycle`
            (torch's ``OneCycleLR`` defaults: min_lr = max_lr / 25, final_lr = min_lr / 1e4).

    Raises:
        ValueError: an invalid setting (at construction); an optimizer without momentum while
            `momentum` is set, or a run too short for the cycle's phases (``max_steps=3`` with
            ``warmup_fraction=0.3``), when training starts.

    Example:
        >>> callback = OneCycleCallback(max_lr=3e-4)
        >>> callback.plan is None  # built when training starts, from the Trainer's max_steps
        True
    """

    def __init__(
        self,
        max_lr: float,
        *,
        momentum: tuple[float, float] | None = (0.95, 0.85),
        warmup_fraction: float = 0.3,
        min_lr: float | None = None,
        final_lr: float | None = None,
        three_phase: bool = False,
    ) -> None:
        if isinstance(max_lr, str) and max_lr == "search":
            raise ValueError(
                "OneCycleCallback cannot search max_lr: a callback of a plain Trainer does not "
                "see each update's loss; use OneCycleTrainer(max_lr='search'), or give a max_lr "
                "(superconverge.huggingface.lr_find finds one)"
            )
        self.max_lr = float(check_max_lr(max_lr))  # type: ignore[arg-type]
        self._max_lr_before_trial: float | None = None  # while a trial's learning_rate is max_lr
        self.settings: dict[str, Any] = {
            "momentum": check_momentum(momentum),
            "warmup_fraction": warmup_fraction,
            "min_lr": min_lr,
            "final_lr": final_lr,
            "three_phase": three_phase,
        }
        check_cycle_settings(self.max_lr, **self.settings)  # now, not when training starts
        self.plan: Plan | None = None
        self.scheduler: HyperparamScheduler | None = None
        self.cycle_steps: int | None = None  # the plan's length, kept in checkpoints

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        given = kwargs.get("optimizer")
        # accelerate wraps it; the optimizer inside is the one to name (same param groups)
        optimizer = getattr(given, "optimizer", given)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise RuntimeError(
                f"OneCycleCallback: the Trainer gave no optimizer at train begin, got {given!r}"
            )
        self._refuse_another_writer(state, kwargs.get("lr_scheduler"))
        # a hyperparameter_search trial's learning_rate is this run's max_lr (a user's check:
        # with hp_space(plan) every trial trained at the same peak, BestRun named another LR)
        trial = getattr(state, "trial_params", None) or {}
        from_trial = "learning_rate" in trial
        if self._max_lr_before_trial is not None:  # the last trial's: the one from before
            self.max_lr, self._max_lr_before_trial = self._max_lr_before_trial, None
        if from_trial:
            self._max_lr_before_trial = self.max_lr
            self.max_lr = float(check_max_lr(args.learning_rate))  # type: ignore[arg-type]
        check_has_momentum(optimizer, self.settings["momentum"], "OneCycleCallback")
        warn_if_group_lrs_differ(optimizer, "OneCycleCallback")
        unused = unused_scheduler_arguments(args, "linear", "constant", lr_used=from_trial)
        if unused:  # as OneCycleTrainer says: a user who set them expects them to act
            warnings.warn(
                f"OneCycleCallback: TrainingArguments {', '.join(unused)} have no effect: the "
                f"1cycle plan sets every update's LR (its peak: max_lr={self.max_lr:g}, its "
                "warm-up: warmup_fraction=...)",
                stacklevel=2,
            )
        check_run_length(
            int(state.max_steps),
            self.settings["warmup_fraction"],
            "OneCycleCallback",
            "the Trainer",
            three_phase=self.settings["three_phase"],
        )
        self._check_resumed_length(state)
        self.plan = one_cycle(int(state.max_steps), self.max_lr, **self.settings)
        self.cycle_steps = self.plan.total_steps
        self.scheduler = HyperparamScheduler(optimizer, self.plan)
        self._write(state.global_step)  # update global_step: 0, or the checkpoint's on resume
        # a checkpoint from before this callback kept a state (or of a run without it): the
        # Trainer's next save reads stateful_callbacks[our name] with no fallback (KeyError)
        if isinstance(getattr(state, "stateful_callbacks", None), dict):
            state.stateful_callbacks.setdefault(type(self).__name__, self.state())

    def _refuse_another_writer(self, state: Any, trainer_scheduler: Any) -> None:
        """Refuse a second 1cycle over the same updates (a user's check: OneCycleTrainer with
        this callback, or two of these callbacks, trained at the last one's peak while
        ``trainer.lr_scheduler.plan`` named the other), as the Lightning side refuses it."""
        if isinstance(trainer_scheduler, HyperparamScheduler):
            raise ValueError(
                "OneCycleCallback: the Trainer's own scheduler is already a superconverge plan "
                "(OneCycleTrainer, or a HyperparamScheduler passed in optimizers=): two 1cycles "
                "would fight over every update's LR; drop the callback, or use a plain Trainer"
            )
        other = getattr(state, "superconverge_one_cycle", None)
        if other is not None and other is not self:
            raise ValueError(
                f"OneCycleCallback: two OneCycleCallbacks in one Trainer (max_lr {other.max_lr:g} "
                f"and {self.max_lr:g}) would fight over every update's LR; keep one"
            )
        state.superconverge_one_cycle = self  # this train()'s state: a new run starts clear

    def state(self) -> dict[str, Any]:
        """What each checkpoint's ``trainer_state.json`` keeps of this callback (transformers'
        ``ExportableState``): its settings and its cycle's length, so that a resume can say
        when the run's length changed."""
        momentum = self.settings["momentum"]
        settings = {**self.settings, "momentum": None if momentum is None else list(momentum)}
        return {
            "args": {"max_lr": self.max_lr, **settings},
            "attributes": {"cycle_steps": self.cycle_steps},
        }

    def _check_resumed_length(self, state: Any) -> None:
        """Say when a resumed run's cycle differs from the checkpoint's (its length or its
        max_lr): the plan is rebuilt from this run's settings (as the Trainer rebuilds its own
        scheduler), so the LR jumps at the resume point instead of continuing the saved cycle."""
        saved = (getattr(state, "stateful_callbacks", None) or {}).get(type(self).__name__)
        if not (state.global_step > 0 and isinstance(saved, dict)):
            return
        planned = saved.get("attributes", {}).get("cycle_steps")
        peak = saved.get("args", {}).get("max_lr")
        total, step = int(state.max_steps), int(state.global_step)
        planned = planned if isinstance(planned, int) else total
        # a max_lr given anew (another lr_find before resuming, a user's check) was not said
        peak = float(peak) if isinstance(peak, (int, float)) else self.max_lr
        # and the other settings (a warm-up of another length sent update 3 back into it)
        before = self._saved_settings(saved.get("args", {}), peak)
        others = [
            f"{name} {before[name]!r} → {self.settings[name]!r}"
            for name in self.settings
            if before[name] != self.settings[name]
        ]
        if planned == total and peak == self.max_lr and not others:
            return
        changed = []
        if others:
            changed.append(f"the checkpoint's cycle had other settings ({', '.join(others)})")
        if planned != total:
            changed.append(
                f"the checkpoint's cycle has {planned} updates, this Trainer makes {total} "
                "(num_train_epochs, max_steps, batch size or accumulation changed)"
            )
        if peak != self.max_lr:
            changed.append(
                f"the checkpoint's cycle peaks at {peak:.3g}, this one at {self.max_lr:.3g}"
            )
        old = one_cycle(planned, peak, **before).lr(step)
        new = one_cycle(total, self.max_lr, **self.settings).lr(step)
        warnings.warn(
            f"OneCycleCallback: {' and '.join(changed)}: the plan is rebuilt for this run, so "
            f"update {step} uses LR {new:.3g} where the saved cycle was at {old:.3g}; resume "
            "with the settings the cycle was made for to continue it exactly",
            stacklevel=2,
        )

    def _saved_settings(self, saved: Any, peak: float) -> dict[str, Any]:
        """The cycle settings a checkpoint's state kept (this callback's own for any that it
        lacks or that does not read as one: an older checkpoint, a hand-edited file)."""
        before = dict(self.settings)
        if not isinstance(saved, dict):
            return before
        for name in before:
            value = saved.get(name, before[name])
            if name == "momentum" and isinstance(value, list) and len(value) == 2:
                value = tuple(value)
            try:
                check_cycle_settings(peak, **{**self.settings, name: value})
            except (TypeError, ValueError):
                continue
            before[name] = value
        return before

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._write(state.global_step)  # unconditionally: the Trainer's scheduler wrote its LR

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # the Trainer logs lr_scheduler.get_last_lr()[0] right after this hook: make it the LR
        # this update used (ReduceLROnPlateau-like schedulers are logged from the group instead)
        trainer_scheduler = kwargs.get("lr_scheduler")
        if (
            self.scheduler is not None
            and isinstance(trainer_scheduler, LRScheduler)
            and trainer_scheduler is not self.scheduler
        ):
            trainer_scheduler._last_lr = list(self.scheduler.get_last_lr())  # noqa: SLF001 - see above

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._write(state.global_step)  # the next update's values, over the Trainer's scheduler

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.scheduler = None  # the plan stays, for inspection

    def _write(self, step: int) -> None:
        if self.scheduler is not None:
            self.scheduler.load_state_dict({"step_count": int(step)})
