"""Where and in which precision a fit runs: device, autocast, grad scaler, moving batches
(progress: training/progress.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch

from superconverge._checks import check_choice

PRECISIONS = ("auto", "32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; CUDA asked for without CUDA is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device must be available, got {device!r} (CUDA is not available)")
    return resolved


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"``: bf16 autocast on CUDA where supported, else full precision (``"32"``)."""
    check_choice("precision", precision, PRECISIONS)
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "32"
    return precision


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
