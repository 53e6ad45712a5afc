"""Where and in which precision a fit runs: device, the model's placement (DDP), autocast, grad
scaler, moving batches (progress: training/progress.py)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping
from typing import Any, cast

import torch
from torch import nn

from superconverge._checks import check_choice
from superconverge.data.loader import ArrayLoader

PRECISIONS = ("auto", "32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"``: bf16 autocast on CUDA where supported, else full precision (``"32"``)."""
    check_choice("precision", precision, PRECISIONS)
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "32"
    return precision


def place_model(
    model: nn.Module, device: torch.device, world_size: int
) -> tuple[nn.Module, nn.Module]:
    """(`model` moved to `device`, what the loop calls: that model, or DDP around it when
    `world_size` processes train); a convolutional model goes channels-last on CUDA."""
    module = model.to(device)
    if device.type == "cuda" and any(p.dim() == 4 for p in model.parameters()):
        # channels_last: faster convolutions on GPUs with tensor cores
        cast(Any, module).to(memory_format=torch.channels_last)  # not in .to's stubs
    if world_size > 1:
        device_ids = [device] if device.type == "cuda" else None
        return module, nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
    return module, module


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """One context for the whole fit: autocast for bf16/fp16, a no-op for ``"32"``."""
    if precision in _AUTOCAST_DTYPES:
        return torch.autocast(device.type, dtype=_AUTOCAST_DTYPES[precision])
    return contextlib.nullcontext()


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A scaler that works for fp16 and is a no-op otherwise, so the step calls it always."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def to_device(value: Any, device: torch.device) -> Any:
    """`value` (a tensor, or a tuple, list or dict of them: dict batches) on `device`; 4-d
    float images go channels-last on CUDA, where tensor cores run those convolutions faster."""
    if isinstance(value, torch.Tensor):
        if value.device != device:
            value = value.to(device, non_blocking=True)
        if device.type == "cuda" and value.dim() == 4 and value.is_floating_point():
            value = value.contiguous(memory_format=torch.channels_last)
        return value
    if isinstance(value, (tuple, list)):
        return type(value)(to_device(item, device) for item in value)
    if isinstance(value, Mapping):
        return {key: to_device(item, device) for key, item in value.items()}
    return value


def batch_mover(loader: Any, device: torch.device) -> Callable[[Any], Any] | None:
    """What moves a batch of `loader` to `device`: None on the CPU (no call per batch: a loader's
    batches are CPU tensors already, and on ~1 ms steps the call cost the digits MLP several
    percent over a hand-written loop, issue 14), unless an `ArrayLoader` holds its tensors on
    another device; on CUDA the call also makes images channels-last."""
    elsewhere = isinstance(loader, ArrayLoader) and loader.device not in (None, device)
    if device.type == "cpu" and not elsewhere:
        return None
    return functools.partial(to_device, device=device)
