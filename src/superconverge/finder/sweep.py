"""The framework-neutral half of the LR range test: argument checks, the sweep's LR plan and the
record of each step's loss (smoothing, the stop rules). No torch: the PyTorch and the Keras
finders both drive a `SweepRecord` from their own training step.
"""

from __future__ import annotations

import math
from typing import Any, cast

from superconverge.finder.analysis import MIN_POINTS, RULES
from superconverge.finder.smoothing import LossSmoother
from superconverge.schedules import Plan, Ramp

MODES = ("exp", "linear")


def check_sweep_arguments(
    start_lr: object,
    end_lr: object,
    num_steps: object,
    mode: object,
    smoothing: object,
    diverge_factor: object,
    rule: object,
    policy: object,
    val_every: object,
) -> None:
    """Raise ValueError naming the first argument outside what the range test allows."""
    for name, value in (("start_lr", start_lr), ("end_lr", end_lr)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if cast(float, start_lr) >= cast(float, end_lr):  # both numbers: checked just above
        raise ValueError(f"start_lr must be < end_lr ({end_lr!r}), got {start_lr!r}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < MIN_POINTS:
        raise ValueError(
            f"num_steps must be an integer >= {MIN_POINTS} to analyse, got {num_steps!r}"
        )
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not isinstance(smoothing, (int, float)) or not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
    if not isinstance(diverge_factor, (int, float)) or not diverge_factor > 1.0:
        raise ValueError(f"diverge_factor must be > 1, got {diverge_factor!r}")
    if val_every is not None and (
        isinstance(val_every, bool) or not isinstance(val_every, int) or val_every < 1
    ):
        raise ValueError(f"val_every must be an integer >= 1 or None, got {val_every!r}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    if policy not in ("one_cycle", "cyclic"):
        raise ValueError(f"policy must be 'one_cycle' or 'cyclic', got {policy!r}")


def sweep_plan(start_lr: float, end_lr: float, num_steps: int, mode: str) -> Plan:
    """The sweep's LRs: step 0 uses `start_lr`, step ``num_steps - 1`` uses `end_lr`."""
    shape = "exponential" if mode == "exp" else "linear"
    sweep = Ramp(float(start_lr), float(end_lr), num_steps - 1, shape)
    return Plan(sweep, None, num_steps, float(end_lr), "lr_range_test")


class SweepRecord:
    """One sweep's curve: the raw and bias-corrected smoothed loss of each step, the validation
    points, and why the sweep stopped.

    Per step: `add` the loss before the update (False: not finite, stop without updating), make
    the update, optionally `add_validation`, then stop if `diverged()`.
    """

    def __init__(self, num_steps: int, smoothing: float, diverge_factor: float) -> None:
        self.smoother = LossSmoother(smoothing, diverge_factor)
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.val_steps: list[int] = []
        self.val_losses: list[float] = []
        self.val_accuracies: list[float | None] = []
        self.stop_reason = f"reached end_lr after {num_steps} steps"

    def add(self, step: int, lr: float, value: float) -> bool:
        """Record step `step`'s loss; False if it is not finite (the sweep ends there)."""
        if not math.isfinite(value):
            if step == 0:
                raise ValueError(
                    f"the loss is not finite at the first step (lr={lr:.3g}): {value}; check the "
                    "inputs, the targets and the loss before searching for an LR"
                )
            self.lrs.append(lr)
            self.losses.append(value)
            self.smoothed.append(math.nan)
            self.stop_reason = f"non-finite loss at step {step} (lr {lr:.3g})"
            return False
        current = self.smoother.add(value)
        self.lrs.append(lr)
        self.losses.append(value)
        self.smoothed.append(current)
        return True

    def add_validation(self, step: int, loss: float, accuracy: float | None) -> None:
        self.val_steps.append(step)
        self.val_losses.append(loss)
        self.val_accuracies.append(accuracy)

    def diverged(self) -> bool:
        """True when the latest smoothed loss passed `diverge_factor` x the lowest so far."""
        reason = self.smoother.divergence()
        if reason is None:
            return False
        step, lr = len(self.smoothed) - 1, self.lrs[-1]
        self.stop_reason = f"diverged at step {step} (lr {lr:.3g}): {reason}"
        return True

    def curve(self) -> dict[str, Any]:
        """The dict `build_result` analyses."""
        return {
            "lrs": self.lrs,
            "losses": self.losses,
            "smoothed": self.smoothed,
            "stop_reason": self.stop_reason,
            "val_steps": self.val_steps,
            "val_losses": self.val_losses,
            "val_accuracies": self.val_accuracies,
        }


def sweep_settings(
    start_lr: float,
    end_lr: float,
    num_steps: int,
    mode: str,
    smoothing: float,
    diverge_factor: float,
    **extra: Any,
) -> dict[str, Any]:
    """A range test's settings as its result records them: the same keys from every front end
    (plain loop, Lightning, Keras), plus what that front end adds."""
    return {
        "start_lr": start_lr,
        "end_lr": end_lr,
        "num_steps": num_steps,
        "mode": mode,
        "smoothing": smoothing,
        "diverge_factor": diverge_factor,
        **extra,
    }
