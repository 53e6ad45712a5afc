"""What the Trainer checks before it trains: its arguments, its data (turned into loaders),
and that the first batch fits the model and the loss."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from superconverge._checks import (
    check_count,
    check_non_negative,
    check_number,
    check_optional_count,
    check_positive,
)
from superconverge.batches import BatchFn, forward, logits_of
from superconverge.data.checks import check_batch, class_count
from superconverge.data.loader import Augment
from superconverge.data.sources import LoaderOptions, as_source, has_position
from superconverge.metrics import MetricsSpec, resolve_metrics
from superconverge.pytorch.optimizers import check_optimizer_spec
from superconverge.training.callbacks import Callback

DEFAULT_BATCH_SIZE = 64
EVAL_BATCH_SIZE = 256  # no gradients to keep: larger batches evaluate faster


def check_trainer_arguments(
    *,
    model: object,
    loss_fn: object,
    optimizer: object,
    weight_decay: object,
    metrics: MetricsSpec,
    batch_size: object,
    callbacks: Sequence[object],
    accumulation_steps: object,
    max_grad_norm: object,
    diverge_factor: object,
    sync_every: object,
) -> None:
    """The Trainer's argument checks: TypeError for a wrong type, ValueError for a bad value."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {loss_fn!r}")
    check_optimizer_spec(optimizer)
    check_non_negative("weight_decay", weight_decay)
    resolve_metrics(metrics)
    check_optional_count("batch_size", batch_size)
    check_count("accumulation_steps", accumulation_steps)
    if max_grad_norm is not None:
        check_positive("max_grad_norm", max_grad_norm)
    if check_number("diverge_factor", diverge_factor) <= 1:
        raise ValueError(f"diverge_factor must be > 1, got {diverge_factor!r}")
    check_optional_count("sync_every", sync_every)
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise TypeError(f"callbacks must be Callback objects, got {callback!r}")


def make_loader(
    data: Any,
    name: str,
    batch_size: int | None,
    *,
    shuffle: bool = True,
    augment: Augment | None = None,
    seed: int,
    device: torch.device,
    rank: int,
    world: int,
    steps_per_epoch: int | None = None,
    batch_fn: BatchFn | None = None,
    options: LoaderOptions | None = None,
) -> Any:
    """What the loop iterates, whatever the user brought (`superconverge.data.as_source`): an
    `ArrayLoader` for in-memory data (`batch_size` default 64), a ``DataLoader`` built here for a
    ``Dataset``, the user's loader factory asked for `batch_size`, a stream of
    `steps_per_epoch` batches, or the user's own sized iterable as it is."""
    if has_position(data):  # an ArrayLoader (or a loader built here) is used as it is
        if batch_size is not None and name == "train_data":
            data.batch_size = batch_size
        return data
    source = as_source(
        data, name, steps_per_epoch=steps_per_epoch, batch_fn=batch_fn, options=options
    )
    return source.loader(
        batch_size or DEFAULT_BATCH_SIZE,
        shuffle=shuffle,
        seed=seed,
        device=device,
        augment=augment,
        rank=rank,
        world_size=world,
    )


def check_batch_data(
    module: nn.Module,
    inputs: Any,
    targets: Any,
    autocast: contextlib.AbstractContextManager[Any],
) -> int | None:
    """The batch's labels against the model's outputs and its inputs for NaN/inf, naming the row,
    before a loss turns them into an IndexError or a NaN blamed on the LR.

    Returns:
        The number of classes the model predicts, when `targets` are class indices, else None
        (also when the model cannot take `inputs`: the first-batch check says why).

    Raises:
        DataError: a label outside the model's outputs, or a NaN/inf input.
    """
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), autocast:
            try:
                outputs = logits_of(forward(module, inputs))
            except Exception:
                return None
    finally:
        module.train(was_training)
    if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        return None
    classes = class_count(outputs, targets)
    check_batch(inputs, targets, "train_data", classes)
    return classes
