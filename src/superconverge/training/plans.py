"""The 1cycle plan a `Trainer.fit_one_cycle` call asks for, by policy."""

from __future__ import annotations

from collections.abc import Callable

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
