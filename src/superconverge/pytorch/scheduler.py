"""The PyTorch adapter: writes a `Plan`'s values into an optimizer's param groups.

This module is the only code in superconverge that writes ``optimizer.param_groups``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from superconverge._checks import check_positive, plain_arguments
from superconverge.schedules import Plan

LR_SCALE_KEY = "lr_scale"  # per-group multiplier of the plan's LR (discriminative LRs)


def momentum_key(group: dict[str, Any]) -> str | None:
    """Where a param group keeps its momentum: ``"momentum"`` (SGD, RMSprop), ``"betas"``
    (Adam, AdamW, NAdam, RAdam, Adamax: beta1 is the momentum), or None."""
    if "momentum" in group:
        return "momentum"
    if "betas" in group:
        return "betas"
    return None


def get_momentum(group: dict[str, Any]) -> float | None:
    """The momentum a param group uses now (SGD momentum or Adam's beta1), or None."""
    key = momentum_key(group)
    if key is None:
        return None
    value = group["momentum"] if key == "momentum" else group["betas"][0]
    return float(value)


def set_momentum(group: dict[str, Any], value: float) -> None:
    """Write `value` as SGD/RMSprop ``momentum`` or Adam's ``betas[0]``; beta2 is never touched."""
    key = momentum_key(group)
    if key == "momentum":
        _write(group, "momentum", value)
    elif key == "betas":
        betas = group["betas"]
        if isinstance(betas[0], torch.Tensor):
            betas[0].fill_(value)
        else:
            group["betas"] = (value, *tuple(betas)[1:])
    else:
        raise ValueError("this param group has no momentum or betas to set")


def set_lr(group: dict[str, Any], value: float) -> None:
    """Write a param group's LR, keeping a tensor LR (capturable/fused optimizers) a tensor."""
    _write(group, "lr", value)


def _write(group: dict[str, Any], key: str, value: float) -> None:
    current = group.get(key)
    if isinstance(current, torch.Tensor):
        current.fill_(value)
    else:
        group[key] = value


def set_weight_decay(optimizer: torch.optim.Optimizer, value: float) -> None:
    """Set every param group's ``weight_decay`` (L2 for SGD/Adam, decoupled for AdamW)."""
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"weight_decay must be a finite number >= 0, got {value!r}")
    for group in optimizer.param_groups:
        if "weight_decay" not in group:
            raise ValueError(
                f"weight_decay: {type(optimizer).__name__} has no weight_decay setting"
            )
        group["weight_decay"] = value


def lr_scales(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each group's LR scale (the multiplier of the plan's LR; 1 unless set)."""
    return [float(group.get(LR_SCALE_KEY, 1.0)) for group in optimizer.param_groups]


def set_lr_scales(optimizer: torch.optim.Optimizer, scales: Sequence[float]) -> None:
    """Set each group's LR scale: the scheduler writes ``plan lr x scale`` from its next update
    on (a fit that backs off after a divergence halves them), and the scales are part of the
    optimizer's state, so a checkpoint resumes at the lowered LR."""
    if len(scales) != len(optimizer.param_groups):
        raise ValueError(
            f"scales must have one value per param group ({len(optimizer.param_groups)}), "
            f"got {len(scales)}"
        )
    for group, scale in zip(optimizer.param_groups, scales, strict=True):
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scales must be finite numbers > 0, got {scale!r}")
        group[LR_SCALE_KEY] = float(scale)


# fastai's Learner.lr_range: slice(lr) gives the last param group lr and the others lr / 10
FASTAI_BODY_DIV = 10.0


def spread_max_lr(max_lr: float | Sequence[float] | slice, num_groups: int) -> list[float]:
    """Per-group peak LRs from a float, a per-group list, or a ``(low, high)`` pair.

    A tuple ``(low, high)`` (or ``slice(low, high)``, as in fastai) is spread geometrically over
    the groups, from the first (the body's earliest layers) to the last (the head):
    ``low * (high / low) ** (i / (n - 1))``. ``slice(high)`` means what it means in fastai's
    ``Learner.lr_range``: ``high`` for the last group, ``high / 10`` for every other. A list must
    hold one value per group.

    Example:
        >>> spread_max_lr((1e-4, 1e-2), 3)
        [0.0001, 0.001, 0.01]
        >>> spread_max_lr(slice(1e-2), 3)
        [0.001, 0.001, 0.01]
    """
    if isinstance(max_lr, slice):
        if max_lr.step is not None:
            raise ValueError(f"max_lr as a slice takes (low, high) only, got {max_lr!r}")
        if max_lr.start is None:  # fastai: the head at `stop`, the body a tenth of it
            high = check_positive("max_lr", max_lr.stop)
            return [high / FASTAI_BODY_DIV] * (num_groups - 1) + [high]
        max_lr = (max_lr.start, max_lr.stop)
    if isinstance(max_lr, tuple):
        if len(max_lr) != 2:
            raise ValueError(f"max_lr as a tuple must be a (low, high) pair, got {max_lr!r}")
        low = check_positive("max_lr", max_lr[0])
        high = check_positive("max_lr", max_lr[1])
        if low > high:
            raise ValueError(f"max_lr must be (low, high) with low <= high, got {max_lr!r}")
        if num_groups == 1:
            return [high]
        ratio = high / low
        return [
            float(low * ratio ** (index / (num_groups - 1))) for index in range(num_groups - 1)
        ] + [high]
    if isinstance(max_lr, Sequence) and not isinstance(max_lr, (str, bytes)):
        values = [check_positive("max_lr", value) for value in max_lr]
        if len(values) != num_groups:
            raise ValueError(
                f"max_lr must hold one value per param group ({num_groups}), got {len(values)}: "
                f"{list(max_lr)!r}"
            )
        return values
    return [check_positive("max_lr", max_lr)] * num_groups


class HyperparamScheduler(LRScheduler):
    """Sets every param group's LR (and momentum) from a `Plan`; a torch ``LRScheduler``: call
    `step()` after ``optimizer.step()``.

    The values for update k are written when the scheduler has been stepped k times, and already
    at construction for update 0, as torch's schedulers do: ``last_epoch`` (also `step_count`)
    is k, and ``get_last_lr()`` holds the LRs update k uses. Group i gets ``plan.lr(k) *
    lr_scale_i``; the scale comes from `max_lr` (discriminative LRs) and is kept in the group
    under ``"lr_scale"`` (default 1). The only state is the step count, so ``state_dict()`` is
    one integer. Past the plan's last step the final values are held (warned once), never
    torch's "Tried to step N times" error.

    With ``one_cycle(total_steps, max_lr)`` it gives, step for step, the LRs and momenta of
    ``OneCycleLR(optimizer, max_lr, total_steps)`` (also inside ``SequentialLR`` and
    ``ChainedScheduler``), and like ``OneCycleLR`` it writes ``initial_lr`` (the LR of step 0)
    into each group. Hugging Face's ``Trainer(optimizers=(optimizer, scheduler))`` and
    Lightning's ``configure_optimizers`` take it as they take any torch scheduler.

    Args:
        optimizer: any ``torch.optim.Optimizer``.
        plan: the schedules, e.g. ``superconverge.one_cycle(total_steps, max_lr=0.1)``.
        max_lr: per-group peak LRs: a list (one per group) or a ``(low, high)`` pair spread
            geometrically over the groups. None: every group follows the plan as is.

    Raises:
        ValueError: the plan cycles momentum and the optimizer has none (e.g. Adagrad): build
            the plan with ``momentum=None``.

    Example:
        >>> model = torch.nn.Linear(2, 1)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> from superconverge.schedules import one_cycle
        >>> scheduler = HyperparamScheduler(optimizer, one_cycle(10, max_lr=1.0))
        >>> optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["momentum"]
        (0.04, 0.95)
        >>> scheduler.last_epoch, scheduler.get_last_lr()
        (0, [0.04])
    """

    @plain_arguments
    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        plan: Plan,
        *,
        max_lr: float | Sequence[float] | slice | None = None,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {optimizer!r}")
        if not isinstance(plan, Plan):
            raise TypeError(f"plan must be a superconverge Plan, got {plan!r}")
        if plan.momentum is not None:
            missing = [i for i, g in enumerate(optimizer.param_groups) if momentum_key(g) is None]
            if missing:
                raise ValueError(
                    f"momentum: {type(optimizer).__name__} has no momentum (SGD/RMSprop "
                    "'momentum' or Adam-style 'betas') to cycle; build the plan with "
                    "momentum=None"
                )
        self.plan = plan
        self._warned_past_end = False
        self._groups = len(optimizer.param_groups)  # those added later: `adopt_added_groups`
        if max_lr is not None:
            if plan.max_lr is None:
                raise ValueError("max_lr per group needs a plan with a max_lr to scale from")
            peaks = spread_max_lr(max_lr, len(optimizer.param_groups))
            for group, peak in zip(optimizer.param_groups, peaks, strict=True):
                group[LR_SCALE_KEY] = peak / plan.max_lr
        first_lr = plan.lr(0)
        for group in optimizer.param_groups:
            # as OneCycleLR: torch's SequentialLR resets every group to its initial_lr
            group["initial_lr"] = first_lr * group.get(LR_SCALE_KEY, 1.0)
        # torch's __init__ sets last_epoch = -1, then calls step() once: the values of update 0
        super().__init__(optimizer)

    @property
    def step_count(self) -> int:
        """Optimizer updates made so far: the values written are those of this update."""
        return self.last_epoch

    def step(self, epoch: None = None) -> None:  # type: ignore[override]
        """Advance one optimizer update and write that update's values."""
        if epoch is not None:
            raise TypeError(
                f"step() takes no epoch (got {epoch!r}): torch deprecated it; use "
                "load_state_dict({'step_count': n}) to jump to update n"
            )
        self._step_count += 1  # torch's own call counter (its order check reads it)
        self.last_epoch += 1
        self._apply()

    def get_lr(self) -> list[float | torch.Tensor]:
        """The LRs of update ``last_epoch``; writes its momentum too, as ``OneCycleLR`` does.

        torch calls it (``SequentialLR`` at a milestone); `step()` does not need it.
        """
        lr, momentum = self._values()
        if momentum is not None:
            for group in self.optimizer.param_groups:
                set_momentum(group, momentum)
        return [lr * group.get(LR_SCALE_KEY, 1.0) for group in self.optimizer.param_groups]

    def adopt_added_groups(self) -> list[tuple[int, float, float]]:
        """Param groups added to the optimizer since the scheduler was built or last asked (an
        unfreezing callback, e.g. Lightning's ``BackboneFinetuning``) keep their share of the
        plan's LR: one without an ``lr_scale`` gets its LR / the plan's LR of this update (1
        where the plan's LR is 0), and every group this update's values. Call it before the
        update that first uses them; returns ``(index, lr, scale)`` of each group adopted
        (those that brought an ``lr_scale`` of their own are not listed).

        Without it such a group follows the plan at scale 1: a backbone unfrozen at a tenth of
        the head's LR would train at the head's from its second update on.
        """
        groups = self.optimizer.param_groups
        adopted = []
        if len(groups) > self._groups:
            plan_lr = self.plan.lr(max(self.last_epoch, 0))
            for index in range(self._groups, len(groups)):
                group = groups[index]
                if LR_SCALE_KEY in group:
                    continue
                lr = float(group["lr"])
                scale = lr / plan_lr if plan_lr > 0 and lr > 0 else 1.0
                group[LR_SCALE_KEY] = scale
                group.setdefault("initial_lr", self.plan.lr(0) * scale)
                adopted.append((index, lr, scale))
            self._apply()  # this update's values, momentum included, in the new groups too
        self._groups = len(groups)
        return adopted

    def rewrite_if_changed(self) -> list[tuple[int, float, float]]:
        """Write this update's values again where something else changed a group's LR since
        they were written (another callback's scheduler, an unfreezing callback's per-epoch LR,
        the user's code); returns ``(index, lr found, lr written)`` of each group changed."""
        changed = [
            (index, float(group["lr"]), float(last))
            for index, (group, last) in enumerate(
                zip(self.optimizer.param_groups, self._last_lr, strict=False)
            )
            if float(group["lr"]) != float(last)
        ]
        if changed:
            self._apply()
        return changed

    def state_dict(self) -> dict[str, int]:
        return {"step_count": self.last_epoch}  # everything else is recomputed from the plan

    def load_state_dict(self, state: dict[str, Any]) -> None:
        step_count = state.get("step_count") if isinstance(state, dict) else None
        if isinstance(step_count, bool) or not isinstance(step_count, int) or step_count < 0:
            raise ValueError(f"state must be {{'step_count': int >= 0}}, got {state!r}")
        self.last_epoch = step_count
        self._step_count = max(self._step_count, step_count + 1)
        self._apply()

    def past_end_said(self) -> None:
        """The caller has said that the run goes past the plan's end: holding the final
        values is not warned about again mid-run (Lightning's resume into a longer run)."""
        self._warned_past_end = True

    def _values(self) -> tuple[float, float | None]:
        """The plan's lr and momentum for update ``last_epoch`` (held past the end)."""
        step = max(self.last_epoch, 0)  # -1 only inside SequentialLR, before its milestone
        total = self.plan.total_steps
        if total is not None and step > total and not self._warned_past_end:
            self._warned_past_end = True
            warnings.warn(
                f"the plan has {total} steps and the scheduler was stepped {step} "
                "times; holding the final values",
                stacklevel=4,
            )
        lr = self.plan.lr(step)
        momentum = None if self.plan.momentum is None else self.plan.momentum(step)
        if not math.isfinite(lr):  # pragma: no cover - schedules validate their values
            raise RuntimeError(f"the plan gave a non-finite lr {lr!r} at step {step}")
        self.last_lr, self.last_momentum = lr, momentum  # what was written, for recording
        return lr, momentum

    def _apply(self) -> None:
        lr, momentum = self._values()
        last = []
        for group in self.optimizer.param_groups:
            # plain float hyper-parameters (the common case) are written directly: this runs on
            # every step, and the helpers' checks cost more than the step on small models
            scaled = lr * group.get(LR_SCALE_KEY, 1.0)
            if type(group["lr"]) is float:
                group["lr"] = scaled
                last.append(scaled)
            else:
                set_lr(group, scaled)
                last.append(group["lr"].clone())  # torch's get_last_lr never aliases a group
            if momentum is not None:
                if type(group.get("momentum")) is float:
                    group["momentum"] = momentum
                else:
                    set_momentum(group, momentum)
        self._last_lr = last
