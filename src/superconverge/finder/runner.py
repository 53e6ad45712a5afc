"""The LR range test (Smith, arXiv:1506.01186 §3.3; arXiv:1803.09820): `lr_find`.

Train briefly while the LR grows from `start_lr` to `end_lr`, record the loss of every optimizer
step, stop when the loss blows up, restore everything exactly, and analyse the curve.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from superconverge._checks import check_count, check_positive, plain_arguments
from superconverge.batches import BatchFn, check_batch_fn, fitted_loss, forward, split_batch
from superconverge.data.datasets import ArrayData
from superconverge.data.loader import resolve_device
from superconverge.data.sources import (
    DataSource,
    LoaderOptions,
    as_source,
    check_dataset_options,
    has_position,
    is_numpy_array,
    naming_batched_streams,
    refuse_list_of_samples,
)
from superconverge.finder.result import RangeTestResult, build_result
from superconverge.finder.sweep import (
    SweepRecord,
    check_sweep_arguments,
    sweep_plan,
    sweep_settings,
)
from superconverge.losses import check_loss_fn
from superconverge.metrics import resolve_metrics
from superconverge.pytorch.distributed import shared_by_ranks
from superconverge.pytorch.distributed import world as process_world
from superconverge.pytorch.external_loop import Cycle
from superconverge.pytorch.optimizers import optimizer_step
from superconverge.pytorch.scheduler import HyperparamScheduler
from superconverge.pytorch.snapshot import TrainingSnapshot
from superconverge.training.device import to_device
from superconverge.training.evaluation import evaluate_batches
from superconverge.training.inputs import check_model, own_batch_message
from superconverge.training.progress import (
    SweepProgress,
    resolve_interval,
    resolve_progress,
    tell,
)

logger = logging.getLogger(__name__)

DEFAULT_VAL_BATCHES = 4
DEFAULT_BATCH_SIZE = 64  # for data the range test batches itself (a Dataset, ArrayData)
_REPEAT_EPOCH_STRIDE = 7919  # repeats read far-apart epochs of a loader: other orders
_ACCURACY = resolve_metrics(["accuracy"])  # reported where the targets are class indices


def _mean_across_ranks(value: torch.Tensor, world: int) -> float:
    if world > 1:
        value = value.detach().clone().double()
        torch.distributed.all_reduce(value)
        value /= world
    return float(value)


def loader_batch_size(loader: object) -> int | None:
    """The batch size of a loader of the user's own, as `tune` and `Trainer` read it (a
    ``DataLoader``'s, or its first item's where its items are whole batches); None: unknown."""
    if not isinstance(loader, DataLoader):
        return None
    try:
        kind = "stream" if isinstance(loader.dataset, IterableDataset) else "loader"
        return DataSource(kind, loader).fixed_batch_size
    except TypeError:
        return None


def _sweep_batch_size(loader: object) -> int | None:
    """Samples in one training batch of the sweep (in each process, under torchrun): a loader
    built here holds its batch size, less where the data holds fewer samples (each batch is
    then all of it); a loader of the user's own, its own (None: unknown)."""
    if has_position(loader):
        samples = getattr(loader, "num_samples", None)
        if isinstance(samples, int) and 0 < samples < loader.batch_size:
            return samples
        return loader.batch_size
    return loader_batch_size(loader)


def is_batches(data: object) -> bool:
    """An iterable of batches already (a list, the user's DataLoader or generator), not data
    to batch (tensors, a map-style or iterable Dataset) nor a loader factory."""
    if isinstance(data, ArrayData | Dataset) or (
        isinstance(data, tuple)
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) or is_numpy_array(t) for t in data)
    ):
        return False  # arrays: as_source takes tensors and names NumPy's
    return isinstance(data, Iterable)


class _Cycle(Cycle):
    """``(inputs, targets)`` of the batches of an iterable (through the batch hook),
    restarting it when it runs out; empty data is an error."""

    def __init__(self, data: Iterable[Any], name: str, batch_fn: BatchFn | None = None) -> None:
        super().__init__(data, name)
        self.batch_fn = batch_fn

    def __next__(self) -> tuple[Any, Any]:
        return split_batch(super().__next__(), self.batch_fn, self.name)


def _val_subset(
    loader: Iterable[Any], val_batches: int, batch_fn: BatchFn | None
) -> list[tuple[Any, Any]]:
    """The first `val_batches` batches of `loader` (all of them if it has fewer: a finite
    stream needs no ``len()``), as ``(inputs, targets)``."""
    batches = [
        split_batch(batch, batch_fn, "val_data")
        for batch in itertools.islice(iter(loader), val_batches)
    ]
    if not batches:
        raise ValueError("val_data yielded no batches: it is empty")
    return batches


def _chance(batches: list[tuple[Any, Any]] | None) -> float | None:
    """The accuracy of always answering the most common class of the validation batches, or
    None when their targets are not class indices (the super-convergence check's floor)."""
    if not batches:
        return None
    targets = [y for _, y in batches]
    if not all(
        isinstance(y, torch.Tensor) and y.ndim == 1 and not y.is_floating_point() and len(y)
        for y in targets
    ):
        return None
    labels = torch.cat([y.cpu() for y in targets])
    if int(labels.min()) < 0:
        return None
    counts = torch.bincount(labels)
    return float(counts.max()) / float(counts.sum())


def _evaluate(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    batches: list[tuple[Any, Any]],
    device: torch.device,
    world: int,
) -> tuple[float, float | None]:
    """Loss and accuracy (None where targets are not class indices), as `Trainer.evaluate`."""
    metrics = evaluate_batches(
        model, loss_fn, batches, device=device, world_size=world, metrics=_ACCURACY
    )
    return metrics["loss"], metrics.get("accuracy")


def _validate_arguments(
    model: nn.Module,
    loss_fn: object,
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
    check_model(model)
    check_loss_fn(loss_fn)
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("model has no trainable parameters (every requires_grad is False)")
    check_sweep_arguments(
        start_lr, end_lr, num_steps, mode, smoothing, diverge_factor, rule, policy, val_every
    )
    check_count("accumulation_steps", accumulation_steps)
    check_count("repeats", repeats)


def _check_updates_model(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    """Refuse an optimizer that holds none of the model's parameters: its steps would leave the
    model as it is, and the flat curve would read as "no LR trains this model"."""
    own = {id(p) for p in model.parameters()}
    held = [p for group in optimizer.param_groups for p in group["params"]]
    if not any(id(p) in own for p in held):
        raise ValueError(
            f"optimizer must update model's parameters, got an {type(optimizer).__name__} over "
            f"{len(held)} other tensors (built on another model, or on this one before it was "
            "replaced or copied): build it on model.parameters(), or pass optimizer=None"
        )


@plain_arguments
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
    batch_size: int | None = None,
    batch_fn: BatchFn | None = None,
    steps_per_epoch: int | None = None,
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    max_grad_norm: float | None = None,
    progress: bool | str = False,
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
        train_data: any data the `Trainer` takes (`superconverge.data.as_source`): `ArrayData`,
            a ``Dataset`` (batched here at `batch_size`), a loader factory, a stream with
            `steps_per_epoch`, or an iterable of batches; cycled if shorter than the sweep.
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
        batch_size: the batch size asked of `train_data` (default 64) when it is data the
            range test batches; a loader you built keeps its own, and a `batch_size` that
            differs from it is refused (it would be ignored).
        batch_fn: ``batch -> (inputs, targets)``, the batch hook (`superconverge.batches`).
        steps_per_epoch: batches per pass of a stream.
        num_workers, collate_fn: for the ``DataLoader`` built for a ``Dataset``.
        max_grad_norm: clip the gradient norm to this before each update, as the run the test
            is for does (`Trainer.lr_find` passes the trainer's own); None: no clipping.
            Clipped updates tolerate higher LRs, so a sweep without the run's clipping suggests
            for another run.
        progress: the sweep's progress on stderr: ``"auto"`` (a bar in a terminal or Jupyter,
            else a line every ``SUPERCONVERGE_PROGRESS_INTERVAL`` s, default 30; nothing when
            logging hides superconverge's info lines), ``"bar"`` (or True), ``"lines"``, or
            ``"off"`` (or False, the default: `tune` and `Trainer` run range tests inside a
            run that reports its own progress). Only rank 0 shows it under torchrun.

    Returns:
        A `RangeTestResult`; its ``max_lr`` is None, with a plain ``reason``, when the curve
        supports no honest suggestion.

    Raises:
        ValueError: bad arguments, empty data, or a non-finite loss at the very first step.
        TypeError: a batch that is not an ``(inputs, targets)`` pair.
    """
    _validate_arguments(
        model,
        loss_fn,
        start_lr,
        end_lr,
        num_steps,
        mode,
        smoothing,
        diverge_factor,
        accumulation_steps,
        repeats,
        rule,
        policy,
        val_every,
    )
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer or None, got {optimizer!r}")
    if optimizer is not None:
        _check_updates_model(optimizer, model)
    run_device = resolve_device(device) if device is not None else next(model.parameters()).device
    rank, world = process_world()
    if world > 1 and not shared_by_ranks(model):
        # a plain model under torchrun sweeps in this process alone, on all of the data: a
        # user's `if rank == 0: lr_find(model, ...)` waited for ever in the first all_reduce,
        # and called on every rank each copy trained on its shard without the others' gradients
        tell(
            f"lr_find: the model is not wrapped in DistributedDataParallel, so rank {rank} of "
            f"{world} sweeps alone on all of the data; wrap it to share the sweep among the ranks",
            logger,
        )
        world = 1
    shown = SweepProgress(
        resolve_progress(progress) if rank == 0 else "off",
        num_steps=num_steps,
        repeats=repeats,
        interval_s=resolve_interval(None),
    )
    every = val_every if val_every is not None else max(1, num_steps // 20)
    plan = sweep_plan(start_lr, end_lr, num_steps, mode)

    check_batch_fn(batch_fn)
    check_count("val_batches", val_batches)
    if max_grad_norm is not None:
        max_grad_norm = check_positive("max_grad_norm", max_grad_norm)
    if batch_size is not None:
        check_count("batch_size", batch_size)
        if is_batches(train_data) and not has_position(train_data):  # the user's own loader
            own = loader_batch_size(train_data)
            if own != batch_size:
                raise ValueError(own_batch_message(batch_size, own, "train_data"))
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    options = LoaderOptions(num_workers=num_workers, collate_fn=collate_fn)
    check_dataset_options(options, (train_data, val_data), "lr_find")

    def batches_of(data: Any, name: str, steps: int | None, evaluation: bool = False) -> Any:
        """A loader at `batch_size` for data that is not batches yet; batches (a trainer's
        loader, the user's own) as they are: the sweep cycles them."""
        if has_position(data) or is_batches(data):
            refuse_list_of_samples(data, name)  # it swept one unbatched sample at a time
            return data
        if steps is None and isinstance(data, IterableDataset) and not evaluation:
            steps = num_steps * accumulation_steps  # no epochs here: the batches the sweep needs
        source = as_source(
            data,
            name,
            steps_per_epoch=steps,
            batch_fn=batch_fn,
            options=options,
            evaluation=evaluation,
        )
        # under torchrun each rank sweeps its share, as `Trainer.lr_find` does (every rank read
        # all of the data and the result said world_size 2: a user's check)
        return source.loader(
            batch_size,
            shuffle=not evaluation,
            device=run_device,
            rank=rank if world > 1 else 0,
            world_size=world,
        )

    train_loader = batches_of(train_data, "train_data", steps_per_epoch)
    val_loader = None
    if val_data is not None:  # only its first val_batches batches are read: no len() needed
        val_loader = batches_of(val_data, "val_data", None, evaluation=True)
    snapshot = TrainingSnapshot(model, optimizer, grad_scaler, [train_loader, val_loader])
    curves: list[dict[str, Any]] = []
    try:
        val_subset = None if val_loader is None else _val_subset(val_loader, val_batches, batch_fn)
        if val_subset is not None:
            val_subset = [
                (to_device(x, run_device), to_device(y, run_device)) for x, y in val_subset
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
            sweep = _Sweep(
                model=model,
                loss_fn=loss_fn,
                optimizer=sweep_optimizer,
                scaler=grad_scaler or torch.amp.GradScaler(run_device.type, enabled=False),
                accumulation_steps=accumulation_steps,
                device=run_device,
                world=world,
                max_grad_norm=max_grad_norm,
            )
            record = SweepRecord(num_steps, smoothing, diverge_factor)
            scheduler = HyperparamScheduler(sweep_optimizer, plan)
            batches = _Cycle(train_loader, "train_data", batch_fn)
            shown.start_sweep(repeat)
            with naming_batched_streams(train_loader):
                curves.append(
                    sweep.run(record, scheduler, batches, num_steps, val_subset, every, shown)
                )
    finally:
        shown.close()
        snapshot.restore()
    settings = sweep_settings(
        start_lr,
        end_lr,
        num_steps,
        mode,
        smoothing,
        diverge_factor,
        accumulation_steps=accumulation_steps,
        repeats=repeats,
        val_every=every,
        optimizer=type(optimizer).__name__ if optimizer is not None else "SGD(momentum=0.9)",
        world_size=world,
        max_grad_norm=max_grad_norm,
        # the max_lr belongs to the batch size: the file alone said neither (an auditor's check)
        batch_size=_sweep_batch_size(train_loader),
    )
    result = build_result(
        curves,
        diverge_factor=diverge_factor,
        rule=rule,
        policy=policy,
        settings=settings,
        chance=_chance(val_subset),
    )
    if rank == 0:
        summary = result.summary().replace("\n", "; ")
        tell(f"lr_find ({settings['optimizer']}): {summary}", logger)
    return result


@dataclass
class _Sweep:
    """What one sweep trains with; `run` makes the steps."""

    model: nn.Module
    loss_fn: Callable[..., torch.Tensor]
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    accumulation_steps: int
    device: torch.device
    world: int
    max_grad_norm: float | None = None

    def run(
        self,
        record: SweepRecord,
        scheduler: HyperparamScheduler,
        batches: _Cycle,
        num_steps: int,
        val_subset: list[tuple[Any, Any]] | None,
        val_every: int,
        progress: SweepProgress,
    ) -> dict[str, Any]:
        model, optimizer, scaler = self.model, self.optimizer, self.scaler
        accumulation, device = self.accumulation_steps, self.device
        clipped = list(model.parameters()) if self.max_grad_norm is not None else None
        model.train()
        optimizer.zero_grad(set_to_none=True)
        for step in range(num_steps):
            total = torch.zeros((), device=device)
            for micro in range(accumulation):
                inputs, targets = next(batches)
                inputs, targets = to_device(inputs, device), to_device(targets, device)
                if step == 0 and micro == 0:  # the first batch: shape errors named, not torch's
                    _, loss = fitted_loss(model, self.loss_fn, inputs, targets)
                else:
                    loss = self.loss_fn(forward(model, inputs), targets)
                torch.autograd.backward(scaler.scale(loss / accumulation))
                total += loss.detach()
            value = _mean_across_ranks(total / accumulation, self.world)
            if not record.add(step, scheduler.plan.lr(step), value):
                break
            progress.advance(step, value, scheduler.plan.lr(step))
            optimizer_step(optimizer, scaler, clipped, self.max_grad_norm)
            if val_subset is not None and (step % val_every == 0 or step == num_steps - 1):
                loss_value, accuracy = _evaluate(
                    model, self.loss_fn, val_subset, device, self.world
                )
                record.add_validation(step, loss_value, accuracy)
            if record.diverged():
                break
            scheduler.step()
        return record.curve()
