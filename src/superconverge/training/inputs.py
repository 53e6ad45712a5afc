"""What the Trainer checks before it trains: its arguments, its data (turned into loaders),
and that the first batch fits the model and the loss."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Sequence, Sized
from typing import Any

import torch
from torch import nn

from superconverge._checks import (
    check_choice,
    check_count,
    check_non_negative,
    check_number,
    check_optional_count,
    check_positive,
)
from superconverge.data.datasets import ArrayData
from superconverge.data.loader import ArrayLoader, Augment
from superconverge.pytorch.optimizers import check_optimizer_spec
from superconverge.training.callbacks import Callback
from superconverge.training.evaluation import METRICS

DEFAULT_BATCH_SIZE = 64
EVAL_BATCH_SIZE = 256  # no gradients to keep: larger batches evaluate faster


def check_trainer_arguments(
    *,
    model: object,
    loss_fn: object,
    optimizer: object,
    weight_decay: object,
    metrics: Sequence[str],
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
    for metric in metrics:
        check_choice("metrics", metric, METRICS)
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
) -> Any:
    """What the loop iterates: an `ArrayLoader` for in-memory data (`ArrayData` or a pair of
    tensors; `batch_size` default 64), the user's `ArrayLoader` (with `batch_size` when given)
    or the user's sized iterable."""
    if (
        isinstance(data, tuple)
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
    ):
        data = ArrayData(*data)
    if isinstance(data, ArrayData):
        if len(data) == 0:
            raise ValueError(f"{name} must not be empty, got 0 samples")
        return ArrayLoader(
            data,
            batch_size or DEFAULT_BATCH_SIZE,
            shuffle=shuffle,
            seed=seed,
            device=device,
            augment=augment,
            rank=rank,
            world_size=world,
        )
    if isinstance(data, ArrayLoader):
        if batch_size is not None and name == "train_data":
            data.batch_size = batch_size
        return data
    if not isinstance(data, Iterable) or not isinstance(data, Sized):
        raise TypeError(
            f"{name} must be ArrayData, an ArrayLoader or a sized iterable of batches, "
            f"got {type(data).__name__}"
        )
    if len(data) == 0:
        raise ValueError(f"{name} must not be empty, got 0 batches")
    return data


def check_batch_fits(
    module: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    inputs: Any,
    targets: Any,
    autocast: contextlib.AbstractContextManager[Any],
) -> None:
    """One forward pass in eval mode, so that shape errors surface before any step.

    Raises:
        ValueError: the model cannot take `inputs`, its outputs do not fit `loss_fn` with
            `targets`, or the loss is not a scalar.
    """
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), autocast:
            try:
                outputs = module(inputs)
            except Exception as error:
                raise ValueError(
                    "the model cannot take the training inputs of shape "
                    f"{tuple(inputs.shape)}: {error}"
                ) from error
            try:
                with warnings.catch_warnings():
                    # torch only warns when MSE-style losses broadcast mismatched shapes
                    warnings.filterwarnings(
                        "error", message=".*(size|shape).*", category=UserWarning
                    )
                    loss = loss_fn(outputs, targets)
            except Exception as error:
                raise ValueError(
                    f"model outputs of shape {tuple(outputs.shape)} and targets of shape "
                    f"{tuple(targets.shape)} ({targets.dtype}) do not fit loss_fn: {error}"
                ) from error
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError(
                f"loss_fn must return a scalar tensor, got shape {getattr(loss, 'shape', loss)}"
            )
    finally:
        module.train(was_training)
