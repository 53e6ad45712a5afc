"""The plan a `Trainer` fit follows: the 1cycle plan a `Trainer.fit_one_cycle` call asks for, by
policy (with its max_lr from the range test when none is given), and a check of its length."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from superconverge import schedules
from superconverge.schedules import Plan

# the paper's linear cycle and annihilation, OneCycleLR's cosine curve, fastai's curve
POLICIES: dict[str, Callable[..., Plan]] = {
    "smith": schedules.smith_one_cycle,
    "torch": schedules.one_cycle,
    "fastai": schedules.fastai_one_cycle,
}


def one_cycle_plan(
    policy: str,
    total_steps: int,
    max_lr: float,
    min_lr: float | None,
    final_lr: float | None,
    momentum: tuple[float, float] | None,
    warmup_fraction: float | None,
) -> Plan:
    """The `policy`'s 1cycle plan over `total_steps`; `warmup_fraction` only where the policy
    has one (smith's rise and fall are equal halves)."""
    if warmup_fraction is None:
        return POLICIES[policy](
            total_steps, max_lr, min_lr=min_lr, final_lr=final_lr, momentum=momentum
        )
    if policy == "smith":
        raise ValueError(
            "warmup_fraction applies to the torch and fastai policies; smith has equal halves"
        )
    return POLICIES[policy](
        total_steps,
        max_lr,
        min_lr=min_lr,
        final_lr=final_lr,
        momentum=momentum,
        warmup_fraction=warmup_fraction,
    )


def range_test_max_lr(result: Any) -> tuple[float, str]:
    """The max_lr a range test (a `RangeTestResult`) suggests, and the note a History keeps of
    it; a ValueError naming max_lr when the test found none."""
    if result.max_lr is None:
        raise ValueError(f"max_lr: the range test found none ({result.reason}); pass max_lr")
    return result.max_lr, f"max_lr {result.max_lr:.3g} from the range test: {result.reason}"


def warn_if_short(plan: Plan, total_steps: int) -> None:
    """Warn (at the caller: `Trainer.fit`) when `plan` ends before the fit's `total_steps`: its
    last values are held."""
    if plan.total_steps is not None and plan.total_steps < total_steps:
        warnings.warn(
            f"the plan has {plan.total_steps} steps and the fit {total_steps}; "
            "the last values are held",
            stacklevel=2,
        )
