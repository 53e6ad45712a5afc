"""The LR range test (Smith, arXiv:1506.01186 §3.3; arXiv:1803.09820): `lr_find`.

Train briefly while the LR grows from `start_lr` to `end_lr`, record the loss of every optimizer
step, stop when the loss blows up, restore everything exactly, and analyse the curve.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from superconverge.finder.result import RangeTestResult, build_result
from superconverge.finder.sweep import SweepRecord, check_sweep_arguments, sweep_plan
from superconverge.pytorch.distributed import world as process_world
from superconverge.pytorch.scheduler import HyperparamScheduler
from superconverge.pytorch.snapshot import TrainingSnapshot

logger = logging.getLogger(__name__)

DEFAULT_VAL_BATCHES = 4
_REPEAT_EPOCH_STRIDE = 7919  # repeats read far-apart epochs of an ArrayLoader: other orders


def _mean_across_ranks(value: torch.Tensor, world: int) -> float:
    if world > 1:
        value = value.detach().clone().double()
        torch.distributed.all_reduce(value)
        value /= world
    return float(value)


def _check_batch(batch: object) -> tuple[Any, Any]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        kind = type(batch).__name__
        size = f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else ""
        raise TypeError(
            f"train_data must yield (inputs, targets) pairs, got a {kind}{size}; wrap the data "
            "so each batch is a 2-tuple"
        )
    return batch[0], batch[1]


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, (tuple, list)):
        return type(value)(_to_device(item, device) for item in value)
    return value


class _Cycle:
    """Batches from an iterable, restarting it when it runs out; empty data is an error."""

    def __init__(self, data: Iterable[Any], name: str) -> None:
        self.data, self.name = data, name
        self.iterator: Iterator[Any] = iter(data)
        self.served = 0

    def __next__(self) -> tuple[Any, Any]:
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
        return _check_batch(batch)


def _accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
    """Correct predictions for classification outputs (N, C) and integer targets (N,)."""
    if outputs.ndim != 2 or targets.ndim != 1 or targets.dtype.is_floating_point:
        return None
    return (outputs.argmax(dim=1) == targets).sum()


def _evaluate(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    batches: list[tuple[Any, Any]],
    world: int,
) -> tuple[float, float | None]:
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), dtype=torch.float64)
    correct, count, classified = 0.0, 0, True
    with torch.no_grad():
        for inputs, targets in batches:
            outputs = model(inputs)
            size = len(targets)
            total_loss += float(loss_fn(outputs, targets)) * size
            hits = _accuracy(outputs, targets)
            classified = classified and hits is not None
            correct += 0.0 if hits is None else float(hits)
            count += size
    model.train(was_training)
    stats = torch.tensor([float(total_loss), correct, float(count)], dtype=torch.float64)
    if world > 1:
        torch.distributed.all_reduce(stats)
    loss = float(stats[0] / stats[2])
    return loss, (float(stats[1] / stats[2]) if classified else None)


def _validate_arguments(
    model: nn.Module,
    start_lr: float,
    end_lr: float,
    num_steps: int,
    mode: str,
    smoothing: float,
    diverge_factor: float,
    accumulation_steps: int,
    repeats: int,
    rule: str,
    policy: str,
    val_every: int | None,
) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("model has no trainable parameters (every requires_grad is False)")
    check_sweep_arguments(
        start_lr, end_lr, num_steps, mode, smoothing, diverge_factor, rule, policy, val_every
    )
    for name, count in (("accumulation_steps", accumulation_steps), ("repeats", repeats)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {count!r}")


def lr_find(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    train_data: Iterable[Any],
    *,
    optimizer: torch.optim.Optimizer | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    mode: str = "exp",
    val_data: Iterable[Any] | None = None,
    val_every: int | None = None,
    val_batches: int = DEFAULT_VAL_BATCHES,
    smoothing: float = 0.98,
    diverge_factor: float = 4.0,
    accumulation_steps: int = 1,
    device: torch.device | str | None = None,
    repeats: int = 1,
    rule: str = "minimum",
    policy: str = "one_cycle",
    grad_scaler: Any = None,
) -> RangeTestResult:
    """Run the LR range test and return the curve, the suggestions and the bounds.

    Each point is one optimizer step (with `accumulation_steps` micro-batches each); the LR of
    step k is ``start_lr * (end_lr / start_lr) ** (k / (num_steps - 1))`` (``mode="exp"``) or
    linear, so the first and last steps use `start_lr` and `end_lr` exactly. The sweep stops
    at a non-finite loss or when the smoothed loss exceeds `diverge_factor` x its minimum.
    Afterwards the model, optimizer, grad scaler, ``ArrayLoader`` positions and every RNG are
    exactly as before — also after an exception or KeyboardInterrupt.

    Args:
        model: the model to probe (left untouched).
        loss_fn: ``loss_fn(outputs, targets) -> scalar tensor``.
        train_data: an iterable of ``(inputs, targets)`` batches, cycled if shorter than the sweep.
        optimizer: used as is (its groups and momentum). None: SGD with momentum 0.9.
        start_lr, end_lr: the ends of the sweep.
        num_steps: optimizer steps in the sweep (>= 10).
        mode: ``exp`` (the default, as fastai and Smith) or ``linear`` spacing.
        val_data: Smith's variant: loss and accuracy on a fixed subset (the first `val_batches`
            batches) every `val_every` steps (default: 20 points over the sweep).
        smoothing: beta of the bias-corrected moving average of the loss.
        diverge_factor: stop when the smoothed loss exceeds this multiple of its minimum.
        accumulation_steps: micro-batches per optimizer step.
        device: where to run; default: the device of the model's parameters.
        repeats: sweeps with different batch orders; max_lr is their median, and the spread
            goes into ``result.confidence``.
        rule: ``minimum`` (default: the LR of the lowest smoothed loss / 10), ``valley`` or
            ``steepest``; every rule's value is in ``result.suggestions`` either way.
        policy: ``one_cycle`` (min_lr = max_lr / 10) or ``cyclic`` (min_lr = max_lr / 4).
        grad_scaler: a ``torch.amp.GradScaler`` for mixed precision (restored afterwards).

    Returns:
        A `RangeTestResult`; its ``max_lr`` is None, with a plain ``reason``, when the curve
        supports no honest suggestion.

    Raises:
        ValueError: bad arguments, empty data, or a non-finite loss at the very first step.
        TypeError: a batch that is not an ``(inputs, targets)`` pair.
    """
    _validate_arguments(
        model, start_lr, end_lr, num_steps, mode, smoothing, diverge_factor,
        accumulation_steps, repeats, rule, policy, val_every,
    )  # fmt: skip
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer or None, got {optimizer!r}")
    run_device = torch.device(device) if device is not None else next(model.parameters()).device
    rank, world = process_world()
    every = val_every if val_every is not None else max(1, num_steps // 20)
    plan = sweep_plan(start_lr, end_lr, num_steps, mode)

    snapshot = TrainingSnapshot(model, optimizer, grad_scaler, [train_data, val_data])
    curves: list[dict[str, Any]] = []
    try:
        val_subset = None
        if val_data is not None:
            source = _Cycle(val_data, "val_data")
            val_subset = [
                (_to_device(x, run_device), _to_device(y, run_device))
                for x, y in (next(source) for _ in range(val_batches))
            ]
        for repeat in range(repeats):
            if repeat:
                snapshot.restore_training_state()
                for loader, state in snapshot.loaders:
                    loader.load_state_dict(
                        {
                            **state,
                            "epoch": state["epoch"] + repeat * _REPEAT_EPOCH_STRIDE,
                            "batch_index": 0,
                        }
                    )
            sweep_optimizer = optimizer or torch.optim.SGD(
                [p for p in model.parameters() if p.requires_grad], lr=start_lr, momentum=0.9
            )
            curves.append(
                _sweep(
                    model, loss_fn, _Cycle(train_data, "train_data"), sweep_optimizer,
                    HyperparamScheduler(sweep_optimizer, plan), num_steps, accumulation_steps,
                    smoothing, diverge_factor, val_subset, every, run_device, grad_scaler, world,
                )
            )  # fmt: skip
    finally:
        snapshot.restore()
    settings = {
        "start_lr": start_lr, "end_lr": end_lr, "num_steps": num_steps, "mode": mode,
        "smoothing": smoothing, "diverge_factor": diverge_factor,
        "accumulation_steps": accumulation_steps, "repeats": repeats, "val_every": every,
        "optimizer": type(optimizer).__name__ if optimizer is not None else "SGD(momentum=0.9)",
        "world_size": world,
    }  # fmt: skip
    result = build_result(
        curves, diverge_factor=diverge_factor, rule=rule, policy=policy, settings=settings
    )
    if rank == 0:
        logger.info("lr_find: %s", result.summary().replace("\n", "; "))
    return result


def _sweep(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    batches: _Cycle,
    optimizer: torch.optim.Optimizer,
    scheduler: HyperparamScheduler,
    num_steps: int,
    accumulation_steps: int,
    smoothing: float,
    diverge_factor: float,
    val_subset: list[tuple[Any, Any]] | None,
    val_every: int,
    device: torch.device,
    grad_scaler: Any,
    world: int,
) -> dict[str, Any]:
    record = SweepRecord(num_steps, smoothing, diverge_factor)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    for step in range(num_steps):
        lr = scheduler.plan.lr(step)
        total = torch.zeros((), device=device)
        for _ in range(accumulation_steps):
            inputs, targets = next(batches)
            inputs, targets = _to_device(inputs, device), _to_device(targets, device)
            loss = loss_fn(model(inputs), targets)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise TypeError(f"loss_fn must return a scalar tensor, got {loss!r:.80}")
            scaled = loss / accumulation_steps
            (grad_scaler.scale(scaled) if grad_scaler is not None else scaled).backward()
            total += loss.detach()
        value = _mean_across_ranks(total / accumulation_steps, world)
        if not record.add(step, lr, value):
            break
        if grad_scaler is not None:
            grad_scaler.step(optimizer)
            grad_scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if val_subset is not None and (step % val_every == 0 or step == num_steps - 1):
            record.add_validation(step, *_evaluate(model, loss_fn, val_subset, world))
        if record.diverged():
            break
        scheduler.step()
    return record.curve()
