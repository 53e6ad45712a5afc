"""One evaluation: mean loss and the metrics over batches, reduced across ranks; and the model's
outputs over batches (`Trainer.predict`).

`Trainer.evaluate` and the range test's validation points both use it, so the two agree;
`evaluate_data` and `predict_data` are `Trainer.evaluate` and `Trainer.predict`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from superconverge.batches import BatchFn, count, fitted_loss, forward, split_batch
from superconverge.data.datasets import ArrayData
from superconverge.data.loader import SampleOrder
from superconverge.data.sources import is_numpy_array
from superconverge.metrics import Metric, MetricTotals
from superconverge.training.device import to_device
from superconverge.training.inputs import EVAL_BATCH_SIZE, evaluation_loader

if TYPE_CHECKING:
    from superconverge.training.trainer import Trainer


def evaluate_batches(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    batches: Iterable[Any],
    *,
    device: torch.device,
    metrics: Sequence[Metric] = (),
    autocast: contextlib.AbstractContextManager[Any] | None = None,
    world_size: int = 1,
    batch_fn: BatchFn | None = None,
    name: str = "val_data",
) -> dict[str, float]:
    """The sample-weighted mean loss over `batches` and each of `metrics` that applies to the
    task (`superconverge.metrics`), in eval mode without gradients; the model's train/eval
    mode is restored afterwards. Batches go through the batch hook (`split_batch`).

    Returns:
        ``{"loss": ..., "<metric>": ...}``: accuracy only where targets are class indices, MSE
        and MAE only where they have the outputs' shape (see `superconverge.metrics`).
    """
    was_training = model.training
    model.eval()
    loss_total = torch.zeros(1, dtype=torch.float64, device=device)  # loss x samples
    totals = MetricTotals(metrics, device)
    try:
        with torch.no_grad(), autocast or contextlib.nullcontext():
            for index, batch in enumerate(batches):
                inputs, targets = split_batch(batch, batch_fn, name)
                inputs, targets = to_device(inputs, device), to_device(targets, device)
                if index == 0:  # a batch the model or loss cannot take: named, with its shapes
                    _refuse_a_sample(targets, name)
                    outputs, loss = fitted_loss(model, loss_fn, inputs, targets, name)
                else:
                    outputs = forward(model, inputs)
                    loss = loss_fn(outputs, targets)
                samples = count(targets)
                loss_total += loss.double() * samples
                totals.add(outputs, targets, samples)
    finally:
        model.train(was_training)
    if world_size > 1:
        _agree_on_metrics(totals, world_size, device)
    reduced = torch.cat([loss_total, totals.as_tensor()])
    if world_size > 1:
        torch.distributed.all_reduce(reduced)
    return {"loss": float(reduced[0] / reduced[-1]), **totals.result(reduced[1:])}


SAMPLES_ADVICE = (
    "stack the samples into tensors (torch.stack(...)) or wrap them in a Dataset, whose "
    "batches the trainer makes"
)


def _refuse_a_sample(targets: Any, name: str) -> None:
    """A batch whose target is one number is one sample: `name` yields samples, not batches
    (a user's generator of (x, y) pairs failed in the metrics with "IndexError: tuple index out
    of range"; a list of them is refused where it is given, `refuse_list_of_samples`)."""
    one = (
        targets.dim() == 0
        if isinstance(targets, torch.Tensor)
        else isinstance(targets, int | float)
    )
    if one and not isinstance(targets, bool):
        raise TypeError(
            f"{name} yields samples ((inputs, target) pairs with one number as the target), "
            f"where batches are read; {SAMPLES_ADVICE}"
        )


def _agree_on_metrics(totals: MetricTotals, world_size: int, device: torch.device) -> None:
    """A rank that read no batch (fewer samples than ranks) knows no metric to report: it takes
    the others' so that every rank all-reduces sums of one layout (a user's check: its
    shorter tensor gave a loss of 4226 on one rank and hung the other)."""
    empty = torch.tensor([float(totals.reported is None)], device=device)
    torch.distributed.all_reduce(empty)
    if not empty.item():
        return
    names: list[Any] = [None] * world_size
    torch.distributed.all_gather_object(names, None if totals.reported is None else totals.names)
    if totals.reported is None:
        totals.adopt(next((n for n in names if n is not None), []))


def predict_batches(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    device: torch.device,
    autocast: contextlib.AbstractContextManager[Any],
    batch_fn: BatchFn | None = None,
    name: str = "data",
    listed: int = 0,
) -> torch.Tensor | None:
    """The model's outputs for every input of `batches` in eval mode without gradients,
    concatenated on the CPU in float32; None when there were no batches (a rank given no
    sample under torchrun). `listed`: `batches` is a list of that many tensors, which are
    batches only where the model gives one row of output per row of input."""
    model.eval()
    outputs = []
    with torch.no_grad(), autocast:
        for batch in batches:
            inputs = _inputs_of(batch, batch_fn, name)
            try:
                output = forward(model, to_device(inputs, device)).float().cpu()
            except Exception as error:
                if not listed:
                    raise
                # a user's list of 1-D samples to a model that flattens from dimension 1
                raise TypeError(
                    f"{name} is a list of {listed} tensors, read as batches, but the model "
                    f"cannot take one of shape {tuple(inputs.shape)} ({type(error).__name__}: "
                    f"{error}): a list of samples? {SAMPLES_ADVICE}"
                ) from error
            if listed and (output.dim() == 0 or len(output) != len(inputs)):
                # a user's list of 5 samples gave a flat tensor of 50 outputs, without a word
                raise TypeError(
                    f"{name} is a list of {listed} tensors, read as batches, but the model's "
                    f"output for one of shape {tuple(inputs.shape)} has shape "
                    f"{tuple(output.shape)}, not one row per input row: a list of samples? "
                    f"{SAMPLES_ADVICE}"
                )
            outputs.append(output)
    return torch.cat(outputs) if outputs else None


def _inputs_of(batch: Any, batch_fn: BatchFn | None, name: str) -> Any:
    """A batch's inputs: a batch of inputs alone (a tensor, or the 1-tuple a ``TensorDataset``
    of one tensor yields) as it is, else the inputs of its (inputs, targets) pair."""
    if batch_fn is None and isinstance(batch, torch.Tensor):
        return batch
    if batch_fn is None and isinstance(batch, (tuple, list)) and len(batch) == 1:
        return batch[0]
    return split_batch(batch, batch_fn, name)[0]


def inputs_only(data: Any) -> Any:
    """`data` as `Trainer.predict` reads it: inputs without targets (a tensor, a 1-tuple of one,
    a ``TensorDataset`` of one tensor) become `ArrayData` with placeholder targets, which
    nothing reads (a user's check: predicting on new, unlabeled inputs needed targets)."""
    if isinstance(data, TensorDataset) and len(data.tensors) == 1:
        data = data.tensors[0]
    if isinstance(data, (tuple, list)) and len(data) == 1 and isinstance(data[0], torch.Tensor):
        data = data[0]
    if is_numpy_array(data):  # a user's check: "data must yield (inputs, targets) pairs"
        raise TypeError(
            "data is a NumPy array; pass a tensor, the in-memory kind this library serves: "
            "torch.as_tensor(x, dtype=torch.float32) (a float64 array would not fit a float32 "
            "model's weights)"
        )
    if isinstance(data, torch.Tensor):
        return ArrayData(data, torch.zeros(len(data), dtype=torch.long, device=data.device))
    return data


def evaluate_data(
    trainer: Trainer, make: Callable[..., Any], data: Any = None, steps: int | None = None
) -> dict[str, float]:
    """`Trainer.evaluate`: on `data` (batches of `EVAL_BATCH_SIZE` made by `make`, the
    trainer's `make_loader`; a stream read to its end or `steps` batches), or on the trainer's
    validation data when `data` is None."""
    loader = trainer.val_loader
    if data is not None:
        loader = evaluation_loader(make, data, "data", EVAL_BATCH_SIZE, steps, trainer.train_loader)
    elif loader is None:
        raise ValueError("data must be given when the trainer has no val_data")
    elif steps is not None:
        raise ValueError(
            f"steps applies to data given here, got steps={steps!r} without data (the trainer's "
            "val_data reads its own val_steps)"
        )
    return evaluate_batches(
        trainer.model,
        trainer.loss_fn,
        loader,
        device=trainer.device,
        metrics=trainer.metrics,
        autocast=trainer.autocast,
        world_size=trainer.world_size,
        batch_fn=trainer.batch_fn,
        name="val_data" if data is None else "data",
    )


def predict_data(trainer: Trainer, make: Callable[..., Any], data: Any) -> torch.Tensor:
    """`Trainer.predict`: the model's outputs for every input of `data`."""
    data = inputs_only(data)
    tensors = isinstance(data, (list, tuple)) and all(isinstance(x, torch.Tensor) for x in data)
    loader = evaluation_loader(make, data, "data", EVAL_BATCH_SIZE, None, trainer.train_loader)
    outputs = predict_batches(
        trainer.model,
        loader,
        device=trainer.device,
        autocast=trainer.autocast,
        batch_fn=trainer.batch_fn,
        listed=len(data) if tensors else 0,
    )
    sharded_here = (  # a loader built here over the data, each sample read once, in order
        loader is not data
        and isinstance(loader, SampleOrder)
        and loader.world_size > 1
        and not loader.pad
        and not loader.shuffle
    )
    if sharded_here:
        # under torchrun each rank read every world_size-th sample: every rank gets them all,
        # in the data's order (a user's check got rank 0's half of the test set)
        return gather_strided(outputs, loader.world_size, trainer.device)
    if outputs is None:
        raise ValueError("data holds no samples to predict")
    return outputs


def gather_strided(mine: torch.Tensor | None, world: int, device: torch.device) -> torch.Tensor:
    """The rows of every rank, rank r's being the data's rows r, r + world, r + 2 world, ...,
    put back in the data's order on every rank (on the CPU); `mine` is None on a rank that had
    no rows (fewer samples than ranks). Every rank must call it."""
    shapes: list[Any] = [None] * world  # each rank's rows, row shape and dtype
    torch.distributed.all_gather_object(
        shapes, None if mine is None else (len(mine), tuple(mine.shape[1:]), mine.dtype)
    )
    known = [shape for shape in shapes if shape is not None]
    if not known:
        raise ValueError("data holds no samples to predict")
    _, row_shape, dtype = known[0]
    if mine is None:
        mine = torch.zeros((0, *row_shape), dtype=dtype)
    sizes = [0 if shape is None else int(shape[0]) for shape in shapes]
    padded = mine.new_zeros((max(sizes), *row_shape), device=device)
    padded[: len(mine)] = mine.to(device)
    every = [torch.empty_like(padded) for _ in range(world)]
    torch.distributed.all_gather(every, padded)
    rows = mine.new_empty((sum(sizes), *row_shape))
    for rank, (size, part) in enumerate(zip(sizes, every, strict=True)):
        rows[rank::world] = part[:size].cpu()
    return rows
