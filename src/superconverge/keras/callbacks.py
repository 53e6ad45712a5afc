"""`CyclicMomentum`: cycle the momentum of Keras's own optimizers in step with a schedule."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

import keras
from superconverge.keras.optimizers import CyclicSGD
from superconverge.keras.schedules import PlanSchedule, concrete_step, schedule_step
from superconverge.schedules import Plan

# the attribute that plays the part of momentum, per optimizer (Adam-like ones: beta_1)
_MOMENTUM_ATTRIBUTES = ("momentum", "beta_1")


def _hyperparameters_of(optimizer: Any) -> Any:
    """The optimizer whose momentum counts: a ``LossScaleOptimizer``'s inner one (Keras wraps the
    compiled optimizer in it under the ``mixed_float16`` policy), else `optimizer` itself."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def _described(plan: Plan) -> str:
    """A plan in a few words: its policy, steps and peak."""
    peak = "" if plan.max_lr is None else f", max_lr {plan.max_lr:g}"
    return f"{plan.policy}, total_steps {plan.total_steps}{peak}"


def _momentum_attribute(optimizer: Any) -> str:
    for name in _MOMENTUM_ATTRIBUTES:
        if isinstance(getattr(optimizer, name, None), (int, float)):
            return name
    raise ValueError(
        f"optimizer {type(optimizer).__name__} has neither a float `momentum` (SGD, RMSprop) "
        "nor a float `beta_1` (Adam, AdamW, Nadam, Adamax, Lion) to cycle"
    )


class CyclicMomentum(keras.callbacks.Callback):
    """Set the optimizer's momentum (SGD, RMSprop) or ``beta_1`` (Adam family) before every
    batch from a plan, in step with the LR schedule, and record the LR and momentum of each batch.

    Pass the same `OneCycle`/`SmithOneCycle`/`Cyclic` (or any `PlanSchedule` or `Plan`) that the
    optimizer uses as its ``learning_rate``, or nothing: ``CyclicMomentum()`` takes the
    optimizer's own schedule when each fit starts (a model from ``keras.models.load_model``
    needs no rebuilt schedule); the momentum of batch k is ``plan.momentum(k)``,
    with k the step Keras gives the LR schedule (the optimizer's ``iterations``; with
    ``gradient_accumulation_steps``, the batches), so it stays in step across several ``fit``
    calls and after loading a saved model. After training, ``callback.lrs`` and ``callback.momenta`` hold
    one value per batch of every ``fit`` call, and the ``History`` that ``fit`` returns gets this
    fit's as ``history.batch_lr`` and ``history.batch_momentum``; ``history.history`` (and a
    ``CSVLogger`` after this callback) gets each epoch's last as ``learning_rate`` and
    ``momentum`` (``beta_1`` for the Adam family), one value per epoch, for
    ``pd.DataFrame(history.history)``. The optimizer's ``learning_rate``
    must be the same plan; another (a constant, another schedule) is refused at the fit's start.

    Keras's SGD and RMSprop only keep a velocity when built with momentum > 0: compile them with
    e.g. ``SGD(momentum=0.9)``. The value is set from Python before each batch, so the train step
    must read it afresh: the torch backend (without ``jit_compile``) or ``run_eagerly=True``.
    `CyclicSGD` computes its momentum inside the step and needs neither.

    Past the plan's last step the LR and momentum hold their final values; the callback warns
    once a fit, at the first batch past it (the schedule itself cannot: inside a compiled step
    its step has no value). Build the schedule with ``total_steps = epochs * steps_per_epoch``,
    ``steps_per_epoch = math.ceil(len(x) / batch_size)`` (Keras trains the last, smaller batch).
    """

    schedule: PlanSchedule  # with schedule=None: the optimizer's, from the start of a fit

    def __init__(self, schedule: PlanSchedule | Plan | None = None) -> None:
        super().__init__()
        self._from_optimizer = schedule is None
        self._init_records()
        if schedule is None:  # the compiled optimizer's own (after keras.models.load_model)
            return
        if isinstance(schedule, Plan):
            schedule = PlanSchedule(schedule)
        if not isinstance(schedule, PlanSchedule):
            # optimizer.learning_rate reads as the schedule's current value, a number
            hint = (
                f" {schedule!r}: the current LR that optimizer.learning_rate reads, not the "
                "schedule; pass the schedule object itself, the one the optimizer was built with"
                if isinstance(schedule, (int, float)) and not isinstance(schedule, bool)
                else ""
            )
            raise TypeError(
                "schedule must be a superconverge.keras schedule (OneCycle, SmithOneCycle, "
                f"Cyclic, PlanSchedule) or a Plan, got {type(schedule).__name__}{hint}"
            )
        if not schedule.cycles_momentum:
            raise ValueError(
                f"schedule has no momentum schedule (momentum=None): nothing to cycle in {schedule!r}"
            )
        self.schedule = schedule

    def _init_records(self) -> None:
        self.lrs: list[float] = []
        self.momenta: list[float] = []
        self._attribute = "momentum"
        self._first = 0
        self._fit_start = 0  # the optimizer step this fit began at
        self._initial_epoch: int | None = None  # the first epoch of this fit (fit's initial_epoch)
        self._warned_past_end = False

    def _optimizers_schedule(self, optimizer: Any) -> PlanSchedule:
        """`CyclicMomentum()`'s plan: the one the optimizer's learning_rate follows."""
        rate = getattr(optimizer, "_learning_rate", None)
        name = type(optimizer).__name__
        if not isinstance(rate, PlanSchedule):
            found = (
                f"a {type(rate).__name__}"
                if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule)
                else "a constant"
            )
            raise ValueError(
                f"CyclicMomentum() cycles the momentum of the optimizer's own plan, but {name}'s "
                f"learning_rate is {found}: compile {name}(learning_rate=OneCycle(...), ...) "
                "(or SmithOneCycle, Cyclic, PlanSchedule), or pass the schedule: "
                "CyclicMomentum(schedule)"
            )
        if not rate.cycles_momentum:
            raise ValueError(
                f"{name}'s schedule has no momentum schedule (momentum=None): nothing to cycle "
                f"in {rate!r}"
            )
        return rate

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        model, optimizer = self.model, _hyperparameters_of(self.model.optimizer)
        eager = bool(model.run_eagerly) or (
            keras.backend.backend() == "torch" and not model.jit_compile
        )
        if not eager:
            raise ValueError(
                f"CyclicMomentum needs a train step that reads momentum afresh each batch: on the "
                f"{keras.backend.backend()} backend compile with run_eagerly=True (and "
                "jit_compile=False), or use CyclicSGD, which cycles momentum inside the step"
            )
        if isinstance(optimizer, CyclicSGD):
            raise ValueError(
                "CyclicSGD cycles its own momentum (momentum_bounds) inside each step and does "
                "not use the momentum this callback sets, which it would record as if it did: "
                "leave CyclicMomentum out, or compile keras.optimizers.SGD(schedule, "
                "momentum=0.9) to cycle with it"
            )
        self._attribute = _momentum_attribute(optimizer)
        if (
            self._attribute == "momentum"
            and optimizer.built
            and float(getattr(optimizer, "momentum", 0.0)) == 0.0
        ):
            name = type(optimizer).__name__
            raise ValueError(
                f"{name} was built with momentum=0, so it has no velocity to cycle; compile "
                f"with {name}(momentum=0.9, ...)"
            )
        if self._from_optimizer:
            self.schedule = self._optimizers_schedule(optimizer)
        self._check_same_plan(optimizer)
        self._warned_past_end = False  # once per fit: a callback used again warns again
        self._first = len(self.lrs)
        self._fit_start = self._step()
        self._initial_epoch = None
        self._set(self._fit_start)

    def _check_same_plan(self, optimizer: Any) -> None:
        """The optimizer's LR must follow this callback's plan: an auditor's SGD(0.01) trained
        at a constant LR while the momentum cycled, and a model loaded with one plan took its
        momentum from another, both without a word."""
        name, rate = type(optimizer).__name__, getattr(optimizer, "_learning_rate", None)
        if isinstance(rate, PlanSchedule) and rate.plan == self.schedule.plan:
            return
        if isinstance(rate, PlanSchedule):
            found = f"another plan ({_described(rate.plan)})"
        elif isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
            found = f"a {type(rate).__name__}, not this plan"
        else:
            found = f"a constant {float(keras.ops.convert_to_numpy(optimizer.learning_rate)):g}"
        # a callback made from a bare Plan: Keras takes it as PlanSchedule(plan) only
        given = "schedule" if type(self.schedule) is not PlanSchedule else "PlanSchedule(plan)"
        raise ValueError(
            f"CyclicMomentum cycles the momentum in step with its plan's LR, but {name}'s "
            f"learning_rate follows {found}: compile {name}(learning_rate={given}, ...) with "
            f"the plan given to the callback ({_described(self.schedule.plan)}); after "
            "keras.models.load_model, CyclicMomentum() takes the loaded optimizer's own schedule"
        )

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._initial_epoch is None:
            self._initial_epoch = epoch  # fit(initial_epoch=i) runs epochs i .. epochs-1
            # read again here: a BackupAndRestore after this callback in the list restores the
            # optimizer's iterations (and the epoch) in its on_train_begin, after ours
            self._fit_start = self._step()

    def _step(self) -> int:
        step = concrete_step(schedule_step(_hyperparameters_of(self.model.optimizer)))
        return 0 if step is None else step

    def _set(self, step: int) -> float:
        value = float(self.schedule.momentum(step))
        setattr(_hyperparameters_of(self.model.optimizer), self._attribute, value)
        return value

    def _warn_past_end(self, step: int) -> None:
        """Warn once when batch `step` lies past the plan, which then holds its final values."""
        total = self.schedule.plan.total_steps
        if total is None or step < total or self._warned_past_end:
            return
        self._warned_past_end = True
        self.schedule.warned_past_end = True  # this warning says more than the schedule's own
        params = self.params or {}
        epochs, steps = params.get("epochs"), params.get("steps")  # steps: None for a generator
        needed = ""
        if epochs and steps:
            end = self._fit_start + (epochs - (self._initial_epoch or 0)) * steps
            needed = f" (this fit's {steps} steps per epoch: total_steps={end} reaches its end)"
        warnings.warn(
            f"CyclicMomentum: the plan has {total} steps (total_steps) and training reached "
            f"step {step}; holding the final values (lr {self.schedule.plan.lr(step):.3g}, "
            f"momentum {self.schedule.momentum(step):.3g}) for the rest of training: build the "
            f"schedule with total_steps = epochs * steps_per_epoch{needed}",
            stacklevel=2,
        )

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        step = self._step()
        self._warn_past_end(step)
        self.momenta.append(self._set(step))
        optimizer = self.model.optimizer
        self.lrs.append(float(np.asarray(keras.ops.convert_to_numpy(optimizer.learning_rate))))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """The epoch's last LR and momentum (``beta_1`` for the Adam family) in `logs`, as
        Keras's `LearningRateScheduler` puts ``learning_rate``: `History` and `CSVLogger`
        get a column each (an auditor's check: ``history.history`` had neither)."""
        if logs is not None and len(self.lrs) > self._first:
            logs["learning_rate"] = self.lrs[-1]
            logs[self._attribute] = self.momenta[-1]

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        history = getattr(self.model, "history", None)
        if isinstance(history, keras.callbacks.History):
            # attributes, not keys of history.history, whose lists are one value per epoch
            # (per-batch lists there broke pd.DataFrame(history.history), an auditor's check)
            history.batch_lr = self.lrs[self._first :]
            history.batch_momentum = self.momenta[self._first :]
