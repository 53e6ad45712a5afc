"""`superconverge.schedules` plans as ``keras.optimizers.schedules.LearningRateSchedule``s.

Where the step is a concrete number (eager training: the torch backend, ``run_eagerly=True``)
the value is the plan's own float, so it equals the PyTorch side bit for bit. Inside a compiled
step (TensorFlow's ``tf.function``, JAX's ``jit``) the step is symbolic: a plan with an end is
then read from a float32 table of its values, and the open-ended `Cyclic` from the same formula
written in ``keras.ops``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

import keras
from keras import ops
from superconverge._checks import plain
from superconverge.schedules import Cyclic as CyclicShape
from superconverge.schedules import Plan, Schedule, cyclic, one_cycle, smith_one_cycle

PACKAGE = "superconverge"


def concrete_step(step: Any) -> int | None:
    """The step as a Python int, or None when it is symbolic (inside a compiled function)."""
    if isinstance(step, (int, np.integer)):
        return int(step)
    if _torch_compiling():  # a Python value would be a constant: recompiled at every step
        return None
    try:
        return int(step)  # torch and eager TF tensors, keras Variables
    except Exception:  # a tf.function tensor or a JAX tracer has no value yet
        return None


def schedule_step(optimizer: Any) -> Any:
    """The step a Keras optimizer gives its LR schedule: its ``iterations``, except with
    ``gradient_accumulation_steps``, where Keras calls the schedule with the count of batches
    (``_iterations``) and ``iterations`` counts updates. Momentum read from ``iterations`` ran
    at half the LR's pace with two accumulation steps."""
    batches = getattr(optimizer, "_iterations", None)  # keras 3's name for it
    return optimizer.iterations if batches is None else batches


def _torch_compiling() -> bool:
    """Whether torch.compile is tracing (``jit_compile=True`` on the torch backend). There,
    ``int(step)`` breaks the graph and the float it gives is traced in as a constant: dynamo
    compiled the train step again at every step, until its recompile limit sent it back to
    eager with a warning."""
    if keras.backend.backend() != "torch":
        return False
    import torch

    # torch >= 2.3; on 2.2 a compiled step keeps recompiling, with the right values
    is_compiling = getattr(torch.compiler, "is_compiling", None)
    return is_compiling is not None and bool(is_compiling())


class _Values:
    """One schedule's values at a keras step: a Python float, or a tensor when symbolic."""

    def __init__(self, schedule: Schedule, total_steps: int | None) -> None:
        self.schedule, self.total_steps = schedule, total_steps
        # made now, in plain Python (about 2 µs a step) and as a backend tensor: inside
        # torch.compile the loop would be traced step by step, and numpy breaks the graph
        self._table = (
            None
            if total_steps is None
            else ops.convert_to_tensor(
                np.asarray([schedule(k) for k in range(total_steps)], dtype="float32")
            )
        )

    def __call__(self, step: Any) -> Any:
        number = concrete_step(step)
        if number is not None:
            return self.schedule(number)
        return self.symbolic(step)

    def symbolic(self, step: Any) -> Any:
        """The value for a symbolic step, built from keras.ops."""
        if self._table is not None and self.total_steps is not None:
            index = ops.clip(ops.cast(step, "int32"), 0, self.total_steps - 1)
            return ops.take(self._table, index)
        if isinstance(self.schedule, CyclicShape):
            return _cyclic_ops(self.schedule, step)
        raise TypeError(
            f"{type(self.schedule).__name__} has no end, so it cannot be tabulated for a compiled "
            "train step; give the plan total_steps or train with run_eagerly=True"
        )


def _cyclic_ops(shape: CyclicShape, step: Any) -> Any:
    """`superconverge.schedules.Cyclic` (torch's CyclicLR formula) in keras.ops."""
    step = ops.cast(step, "float32")
    total = float(2 * shape.half_cycle)
    cycle = ops.floor(1.0 + step / total)
    position = 1.0 + step / total - cycle
    fraction_up = ops.where(position <= 0.5, position / 0.5, (position - 1.0) / (0.5 - 1.0))
    if shape.mode == "triangular":
        scale: Any = 1.0
    elif shape.mode == "triangular2":
        scale = 1.0 / ops.power(2.0, cycle - 1.0)
    else:
        scale = ops.power(shape.gamma, step)
    return shape.base + (shape.peak - shape.base) * fraction_up * scale


@keras.saving.register_keras_serializable(package=PACKAGE)
class PlanSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Any `superconverge.schedules.Plan` as a Keras learning-rate schedule.

    ``schedule(step)`` is the plan's LR for optimizer step `step` (Keras's ``iterations``,
    counted from 0 like the plan's steps); ``schedule.momentum(step)`` its momentum (None if the
    plan leaves momentum alone), which `CyclicMomentum` applies.

    Example:
        >>> from superconverge.schedules import constant
        >>> float(PlanSchedule(constant(0.1))(7))
        0.1
    """

    def __init__(self, plan: Plan | dict[str, Any]) -> None:
        super().__init__()
        self.plan = Plan.from_dict(plan) if isinstance(plan, dict) else plan
        if not isinstance(self.plan, Plan):
            raise TypeError(f"plan must be a superconverge Plan, got {plan!r}")
        self._lr = _Values(self.plan.lr, self.plan.total_steps)
        momentum = self.plan.momentum
        self._momentum = None if momentum is None else _Values(momentum, self.plan.total_steps)

    def __call__(self, step: Any) -> Any:
        self._warn_past_end(step)
        return self._lr(step)

    def _warn_past_end(self, step: Any) -> None:
        """Warn once when the optimizer asks for an LR past the plan's end (a concrete
        step only: inside a compiled step it has no value). `CyclicMomentum` warns first, with
        the total_steps its fit needs, and marks this schedule warned."""
        total = self.plan.total_steps
        if total is None or getattr(self, "warned_past_end", False):
            return
        number = concrete_step(step)
        # step == total is what a read after an exact fit sees (Keras's TensorBoard callback,
        # a notebook reading optimizer.learning_rate): only a step past it was trained past
        if number is None or number <= total:
            return
        self.warned_past_end = True
        warnings.warn(
            f"{type(self).__name__}: the plan has {total} steps (total_steps) and was asked for "
            f"step {number}; the LR holds its final value ({self.plan.lr(number):.3g}) "
            "for the rest of training: build the schedule with "
            "total_steps = epochs * steps_per_epoch",
            stacklevel=2,
        )

    def momentum(self, step: Any) -> Any:
        """The plan's momentum at `step`, or None when it has no momentum schedule."""
        return None if self._momentum is None else self._momentum(step)

    @property
    def cycles_momentum(self) -> bool:
        return self._momentum is not None

    def get_config(self) -> dict[str, Any]:
        return {"plan": self.plan.to_dict()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


@keras.saving.register_keras_serializable(package=PACKAGE)
class OneCycle(PlanSchedule):
    """The 1cycle policy with the values of ``torch.optim.lr_scheduler.OneCycleLR``.

    The arguments of `superconverge.schedules.one_cycle` (defaults as torch: ``min_lr = max_lr
    / 25``, ``final_lr = min_lr / 1e4``, 30% warm-up, cosine, momentum 0.95 → 0.85).

    Example:
        >>> schedule = OneCycle(100, max_lr=1.0)
        >>> round(float(schedule(29)), 6), round(float(schedule.momentum(29)), 6)
        (1.0, 0.85)
    """

    def __init__(
        self,
        total_steps: int,
        max_lr: float,
        *,
        min_lr: float | None = None,
        final_lr: float | None = None,
        warmup_fraction: float = 0.3,
        shape: str = "cosine",
        three_phase: bool = False,
        momentum: tuple[float, float] | None = (0.95, 0.85),
    ) -> None:
        self._settings: dict[str, Any] = {
            "total_steps": total_steps,
            "max_lr": max_lr,
            "min_lr": min_lr,
            "final_lr": final_lr,
            "warmup_fraction": warmup_fraction,
            "shape": shape,
            "three_phase": three_phase,
            "momentum": momentum,
        }
        super().__init__(
            one_cycle(
                total_steps,
                max_lr,
                min_lr=min_lr,
                final_lr=final_lr,
                warmup_fraction=warmup_fraction,
                shape=shape,
                three_phase=three_phase,
                momentum=_pair(momentum),
            )
        )

    def get_config(self) -> dict[str, Any]:
        return _plain_settings(self._settings)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SmithOneCycle(PlanSchedule):
    """The 1cycle policy as arXiv:1803.09820 defines it: two linear halves, then annihilation.

    The arguments of `superconverge.schedules.smith_one_cycle` (``min_lr = max_lr / 10``,
    ``final_lr = min_lr / 100``, 13.7% annihilation, momentum 0.95 → 0.85).
    """

    def __init__(
        self,
        total_steps: int,
        max_lr: float,
        *,
        min_lr: float | None = None,
        final_lr: float | None = None,
        annihilation_fraction: float = 0.137,
        momentum: tuple[float, float] | None = (0.95, 0.85),
    ) -> None:
        self._settings: dict[str, Any] = {
            "total_steps": total_steps,
            "max_lr": max_lr,
            "min_lr": min_lr,
            "final_lr": final_lr,
            "annihilation_fraction": annihilation_fraction,
            "momentum": momentum,
        }
        super().__init__(
            smith_one_cycle(
                total_steps,
                max_lr,
                min_lr=min_lr,
                final_lr=final_lr,
                annihilation_fraction=annihilation_fraction,
                momentum=_pair(momentum),
            )
        )

    def get_config(self) -> dict[str, Any]:
        return _plain_settings(self._settings)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Cyclic(PlanSchedule):
    """Cyclical learning rates (arXiv:1506.01186): the values of torch's ``CyclicLR``.

    `base_lr` → `max_lr` in `step_size` steps and back, forever; ``triangular2`` halves the
    amplitude every cycle, ``exp_range`` multiplies it by ``gamma ** step``. Momentum, if given
    as ``(high, low)``, runs the other way.

    Example:
        >>> schedule = Cyclic(0.1, 0.5, step_size=2, momentum=None)
        >>> [round(float(schedule(k)), 3) for k in range(5)]
        [0.1, 0.3, 0.5, 0.3, 0.1]
    """

    def __init__(
        self,
        base_lr: float,
        max_lr: float,
        step_size: int,
        *,
        mode: str = "triangular",
        gamma: float = 1.0,
        momentum: tuple[float, float] | None = (0.95, 0.85),
    ) -> None:
        self._settings: dict[str, Any] = {
            "base_lr": base_lr,
            "max_lr": max_lr,
            "step_size": step_size,
            "mode": mode,
            "gamma": gamma,
            "momentum": momentum,
        }
        super().__init__(
            cyclic(base_lr, max_lr, step_size, mode=mode, gamma=gamma, momentum=_pair(momentum))
        )

    def get_config(self) -> dict[str, Any]:
        return _plain_settings(self._settings)


def _plain_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings as given, NumPy scalars made Python numbers: ``json.dumps(get_config())``
    works whatever the numbers were (``np.float32(0.1)`` as max_lr)."""
    return {name: plain(value) for name, value in settings.items()}


def _pair(value: Any) -> Any:
    """A JSON round trip turns tuples into lists; the schedules take either."""
    return tuple(value) if isinstance(value, list) else value
