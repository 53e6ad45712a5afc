"""`CyclicSGD`: SGD whose learning rate and momentum both follow a cycle, as a Keras 3 optimizer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops
from superconverge._checks import (
    check_choice,
    check_count,
    check_flag,
    check_momentum,
    check_number,
)
from superconverge.keras.schedules import PACKAGE, Cyclic, schedule_step
from superconverge.schedules.primitives import CYCLIC_MODES


def _check_keywords(given: dict[str, Any]) -> None:
    """A keyword neither CyclicSGD's nor Keras's SGD's, named with the closest one (Keras's own
    message is "Argument(s) not recognized: {'momentum_bound': ...}" alone)."""
    import difflib
    import inspect

    known = [
        *inspect.signature(CyclicSGD.__init__).parameters,
        *inspect.signature(keras.optimizers.SGD.__init__).parameters,
    ]
    known = [name for name in dict.fromkeys(known) if name not in ("self", "kwargs")]
    known.append("decay")  # Keras's base class takes it and warns it is ignored: its word stands
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
            takes = [k for k in known if k not in ("learning_rate", "momentum", "decay")]
            hint = f"; did you mean {close[0]}?" if close else f"; it takes {', '.join(takes)}"
            raise TypeError(f"CyclicSGD got an unexpected keyword argument {name!r}{hint}")


def _check_bounds(bounds: object) -> tuple[float, float]:
    if isinstance(bounds, (str, bytes)) or not isinstance(bounds, Sequence) or len(bounds) != 2:
        raise ValueError(f"bounds must be a (low, high) pair of learning rates, got {bounds!r}")
    low, high = (check_number("bounds", value) for value in bounds)
    if low <= 0 or not math.isfinite(high):
        raise ValueError(f"bounds must be learning rates > 0, got {tuple(bounds)!r}")
    if low > high:
        raise ValueError(
            f"bounds must be (low, high) with low <= high, got {tuple(bounds)!r}; "
            f"did you mean {(high, low)!r}?"
        )
    return low, high


@keras.saving.register_keras_serializable(package=PACKAGE)
class CyclicSGD(keras.optimizers.SGD):
    """SGD with cyclical learning rate and cyclical momentum (Smith, arXiv:1506.01186, 1803.09820).

    At optimizer step k (``iterations``, from 0) the LR is torch ``CyclicLR``'s value for
    ``base_lr, max_lr = bounds`` and ``step_size_up = steps``; momentum, if
    ``momentum_bounds=(high, low)`` is given, runs from high to low while the LR climbs and back.
    The update is Keras's SGD (``v = momentum * v - lr * g; w += v``, or Nesterov). Everything
    lives in the optimizer, so it works inside compiled train steps on every backend, survives
    ``model.save(".keras")`` and continues at the saved step after ``keras.models.load_model``.

    Args:
        bounds: ``(low, high)`` learning rates, e.g. ``(0.0005, 0.002)``.
        momentum_bounds: ``(high, low)`` momentum, e.g. ``(0.95, 0.8)``; None: plain SGD.
        steps: half a cycle in optimizer steps (the paper's step size: 2-10 epochs' worth).
        mode: ``"triangular"``, ``"triangular2"`` (amplitude halves each cycle) or
            ``"exp_range"`` (amplitude times ``gamma ** step``).
        gamma: the decay of ``exp_range``, in (0, 1].
        nesterov: Nesterov momentum.
        **kwargs: Keras's optimizer arguments (``weight_decay``, ``clipnorm``, ``name``, ...).

    Raises:
        ValueError: bounds reversed or not positive, steps < 1, momentum outside [0, 1), an
            unknown mode; the message names the argument and the value.
    """

    def __init__(
        self,
        bounds: Sequence[float],
        momentum_bounds: Sequence[float] | None = None,
        *,
        steps: int,
        mode: str = "triangular",
        gamma: float = 1.0,
        nesterov: bool = False,
        name: str = "cyclic_sgd",
        **kwargs: Any,
    ) -> None:
        low, high = _check_bounds(bounds)
        moms = check_momentum(momentum_bounds, name="momentum_bounds")
        check_count("steps", steps)
        check_choice("mode", mode, CYCLIC_MODES)
        if not 0.0 < check_number("gamma", gamma) <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
        check_flag("nesterov", nesterov)  # "yes" or 0 would pass as one silently
        _check_keywords(kwargs)
        for derived in ("learning_rate", "momentum"):  # the cycle sets them: a value is not used
            if derived in kwargs:
                raise ValueError(
                    f"{derived}: CyclicSGD cycles it between its bounds (bounds for the LR, "
                    f"momentum_bounds for momentum), got {derived}={kwargs[derived]!r}; leave it out"
                )
        schedule = Cyclic(low, high, steps, mode=mode, gamma=float(gamma), momentum=moms)
        super().__init__(
            learning_rate=schedule,
            momentum=0.0 if moms is None else float(moms[0]),
            nesterov=nesterov,
            name=name,
            **kwargs,
        )
        self.schedule = schedule
        self.bounds, self.momentum_bounds = (low, high), moms
        # plain numbers: json.dumps(get_config()) failed on NumPy's (a count from len(x) // n)
        self.steps, self.mode, self.gamma = int(steps), mode, float(gamma)
        self._momentum_now: Any = self.momentum

    def current_momentum(self) -> Any:
        """The momentum of the next update (a float when the step is concrete)."""
        if self.momentum_bounds is None:
            return 0.0
        return self.schedule.momentum(schedule_step(self))  # the step the LR is read at

    def apply(self, grads: Any, trainable_variables: Any = None) -> Any:
        self._momentum_now = self.current_momentum()
        return super().apply(grads, trainable_variables)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        """Keras's SGD update with this step's momentum instead of a constant."""
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.momentum == 0:
            self.assign_sub(variable, ops.multiply(gradient, learning_rate))
            return
        velocity = self.momentums[self._get_variable_index(variable)]
        momentum = ops.cast(self._momentum_now, variable.dtype)
        self.assign(
            velocity,
            ops.subtract(ops.multiply(velocity, momentum), ops.multiply(gradient, learning_rate)),
        )
        if self.nesterov:
            self.assign_add(
                variable,
                ops.subtract(
                    ops.multiply(velocity, momentum), ops.multiply(gradient, learning_rate)
                ),
            )
        else:
            self.assign_add(variable, velocity)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.pop("learning_rate", None)
        config.pop("momentum", None)
        config.update(
            {
                "bounds": list(self.bounds),
                "momentum_bounds": None
                if self.momentum_bounds is None
                else list(self.momentum_bounds),
                "steps": self.steps,
                "mode": self.mode,
                "gamma": self.gamma,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> CyclicSGD:
        # keras's SGD config may carry the derived values: the cycle sets them again
        settings = {k: v for k, v in config.items() if k not in ("learning_rate", "momentum")}
        return cls(**settings)
