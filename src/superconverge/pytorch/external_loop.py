"""The LR range test inside another framework's training step (Lightning, Hugging Face).

The framework supplies one callable that runs forward and backward for one optimizer step and
returns that step's loss; this module sweeps the LR over it with the finder's `sweep_plan`,
`SweepRecord` and `build_result`, so the curve, the stop rules and the analysis are those of
`superconverge.lr_find`. The caller restores the training state (a `TrainingSnapshot`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from superconverge._checks import check_not_above, check_positive
from superconverge._warnings import warn
from superconverge.finder.result import RangeTestResult, build_result
from superconverge.finder.sweep import (
    SweepRecord,
    check_sweep_arguments,
    sweep_plan,
    sweep_settings,
)
from superconverge.pytorch.scheduler import LR_SCALE_KEY, HyperparamScheduler, momentum_key
from superconverge.schedules import one_cycle

# the run's length is the framework's, known only when training starts: the settings are checked
# on a cycle this long, so that only the framework's own count can be too short for the phases
# (warmup_fraction=0.1 on a 10-step probe gave "total_steps=10 is too few steps")
PROBE_STEPS = 1_000_000


class Cycle:
    """Batches from an iterable, restarting it when it runs out; empty data is an error."""

    def __init__(self, data: Iterable[Any], name: str) -> None:
        self.data, self.name = data, name
        self.iterator: Iterator[Any] = iter(data)
        self.served = 0

    def __next__(self) -> Any:
        try:
            batch = next(self.iterator)
        except StopIteration:
            if self.served == 0:
                raise ValueError(f"{self.name} yielded no batches: it is empty") from None
            self.iterator = iter(self.data)
            try:
                batch = next(self.iterator)
            except StopIteration:
                raise ValueError(f"{self.name} yielded no batches on its second pass") from None
        self.served += 1
        return batch


class LoaderGenerators:
    """The private ``torch.Generator``s of a DataLoader (its own, its sampler's, its batch
    sampler's sampler), saved and restored: iterating the loader for the sweep advances them, and
    the run that follows must see the batch order it would have seen without the sweep."""

    def __init__(self, loader: object) -> None:
        found: dict[int, torch.Generator] = {}
        sampler = getattr(loader, "sampler", None)
        batch_sampler = getattr(loader, "batch_sampler", None)
        for owner in (loader, sampler, batch_sampler, getattr(batch_sampler, "sampler", None)):
            generator = getattr(owner, "generator", None)
            if isinstance(generator, torch.Generator):
                found[id(generator)] = generator
        self.states = [(g, g.get_state()) for g in found.values()]

    def restore(self) -> None:
        for generator, state in self.states:
            generator.set_state(state)


def check_cycle_settings(max_lr: float | None, **settings: Any) -> None:
    """`one_cycle`'s settings of a front end, checked when it is built rather than when
    training starts: all of them against `max_lr` when it is given; without it (the range test
    gives it at fit), ``min_lr`` and ``final_lr`` as far as they go alone. Raises
    `one_cycle`'s ValueError/TypeError, which names the setting."""
    if max_lr is not None:
        one_cycle(PROBE_STEPS, max_lr, **settings)
        return
    others = {k: v for k, v in settings.items() if k not in ("min_lr", "final_lr")}
    one_cycle(PROBE_STEPS, 1.0, **others)
    min_lr, final_lr = settings.get("min_lr"), settings.get("final_lr")
    low = None if min_lr is None else check_positive("min_lr", min_lr)
    final = None if final_lr is None else check_positive("final_lr", final_lr)
    if low is not None and final is not None:
        check_not_above("final_lr", final, "min_lr", low)


def check_run_length(
    total_steps: int, warmup_fraction: float, who: str, run: str, three_phase: bool = False
) -> None:
    """Say, before any range test or update, that the framework's run is too short for the
    cycle's phases, in the front end's words: `one_cycle` would name a ``total_steps`` the
    user never set ("total_steps=3 is too few steps for the phases")."""
    try:
        one_cycle(total_steps, 1.0, warmup_fraction=warmup_fraction, three_phase=three_phase)
    except ValueError:
        pass
    else:
        return
    if total_steps < 2:
        need = "a cycle needs at least 2; train longer"
    elif three_phase:
        need = "each of the three phases needs steps; train longer or raise warmup_fraction"
    else:  # the warm-up ends at step warmup_fraction * total_steps - 1, after step 0
        need = (
            f"the warm-up needs warmup_fraction > 1/{total_steps} = {1 / total_steps:.3g}; "
            "train longer or raise warmup_fraction"
        )
    raise ValueError(
        f"{who}: {run} makes {total_steps} optimizer update(s), too few for a cycle with "
        f"warmup_fraction={warmup_fraction}: {need}"
    )


def check_has_momentum(optimizer: torch.optim.Optimizer, momentum: object, who: str) -> None:
    """A cycled `momentum` needs an optimizer with one (SGD/RMSprop ``momentum``, Adam-style
    ``betas``); said before any range test, naming the optimizer (not accelerate's wrapper)
    and the front end's own way out."""
    if momentum is None:
        return
    if any(momentum_key(group) is None for group in optimizer.param_groups):
        inner = getattr(optimizer, "optimizer", optimizer)
        raise ValueError(
            f"momentum: {type(inner).__name__} has no momentum (SGD/RMSprop 'momentum' or "
            f"Adam-style 'betas') to cycle; pass {who}(..., momentum=None)"
        )


def warn_if_group_lrs_differ(optimizer: torch.optim.Optimizer, who: str) -> None:
    """Say that 1cycle gives every param group the plan's LR when the groups came with LRs of
    their own (discriminative LRs written into the optimizer) and no ``lr_scale`` says how
    to keep them: they would be replaced without a word."""
    groups = optimizer.param_groups
    if any(LR_SCALE_KEY in group for group in groups):
        return
    lrs = sorted({float(group["lr"]) for group in groups})
    if len(lrs) > 1:
        warn(
            f"{who}: the optimizer's param groups have LRs of their own "
            f"({', '.join(f'{lr:g}' for lr in lrs)}); 1cycle gives every group the plan's LR, "
            "as torch's OneCycleLR with one max_lr does. For discriminative LRs give each "
            f"group an '{LR_SCALE_KEY}' (its share of the plan's LR), e.g. "
            f"{{'params': ..., '{LR_SCALE_KEY}': 0.01}}",
            stacklevel=3,
            key=(who, "group lrs", tuple(lrs)),
        )


def mean_across_ranks(value: float, world: int) -> float:
    """The mean of `value` over the DDP ranks (every rank then takes the same decisions)."""
    if world <= 1:
        return value
    tensor = torch.tensor(value, dtype=torch.float64)
    torch.distributed.all_reduce(tensor)
    return float(tensor) / world


def average_gradients(parameters: Iterable[torch.nn.Parameter], world: int) -> None:
    """DDP's all-reduce, for a sweep that calls the module directly rather than its DDP wrapper."""
    if world <= 1:
        return
    for param in parameters:
        if param.grad is not None:
            torch.distributed.all_reduce(param.grad)
            param.grad /= world


def sweep(
    optimizer: torch.optim.Optimizer,
    train_step: Callable[[], float],
    *,
    start_lr: float,
    end_lr: float,
    num_steps: int,
    mode: str,
    smoothing: float,
    diverge_factor: float,
    rule: str,
    settings: dict[str, Any],
) -> RangeTestResult:
    """Sweep the LR of `optimizer` over `train_step` calls and analyse the curve.

    Step k sets the LR of update k (`sweep_plan`), zeroes the gradients, calls `train_step`
    (forward and backward of one optimizer step; it returns the loss, averaged over the
    micro-batches and the ranks), records it, then steps the optimizer unless the loss is not
    finite; the sweep stops where `SweepRecord` says so. The optimizer's other settings
    (momentum, weight decay) are used as they are.
    """
    check_sweep_arguments(
        start_lr, end_lr, num_steps, mode, smoothing, diverge_factor, rule, "one_cycle", None
    )
    plan = sweep_plan(start_lr, end_lr, num_steps, mode)
    scheduler = HyperparamScheduler(optimizer, plan)
    record = SweepRecord(num_steps, smoothing, diverge_factor)
    for step in range(num_steps):
        optimizer.zero_grad(set_to_none=True)
        if not record.add(step, scheduler.last_lr, train_step()):
            break
        optimizer.step()
        if record.diverged():
            break
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    settings = sweep_settings(
        start_lr,
        end_lr,
        num_steps,
        mode,
        smoothing,
        diverge_factor,
        repeats=1,
        optimizer=type(optimizer).__name__,
        **settings,
    )
    return build_result(
        [record.curve()],
        diverge_factor=diverge_factor,
        rule=rule,
        policy="one_cycle",
        settings=settings,
    )
