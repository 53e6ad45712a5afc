"""One evaluation: mean loss and the built-in metrics over batches, reduced across ranks.

`Trainer.evaluate` and the range test's validation points both use it, so the two agree.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from superconverge.training.device import to_device

METRICS = ("accuracy",)


def correct_predictions(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
    """Correct arg-max predictions where outputs are (N, C) scores and targets (N,) class
    indices; None for any other task (accuracy does not apply)."""
    if outputs.ndim != 2 or targets.ndim != 1 or targets.dtype.is_floating_point:
        return None
    return (outputs.argmax(dim=1) == targets).sum()


def evaluate_batches(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    batches: Iterable[Any],
    *,
    device: torch.device,
    metrics: Sequence[str] = METRICS,
    autocast: contextlib.AbstractContextManager[Any] | None = None,
    world_size: int = 1,
) -> dict[str, float]:
    """The sample-weighted mean loss over `batches` and each of `metrics`, in eval mode without
    gradients; the model's train/eval mode is restored afterwards.

    Returns:
        ``{"loss": ..., "accuracy": ...}``; accuracy is NaN where the targets are not class
        indices.
    """
    was_training = model.training
    model.eval()
    # loss x samples, correct predictions, samples, batches that were not classification
    totals = torch.zeros(4, dtype=torch.float64, device=device)
    try:
        with torch.no_grad(), autocast or contextlib.nullcontext():
            for inputs, targets in batches:
                inputs, targets = to_device(inputs, device), to_device(targets, device)
                outputs = model(inputs)
                count = len(targets)
                totals[0] += loss_fn(outputs, targets).double() * count
                totals[2] += count
                if "accuracy" in metrics:
                    hits = correct_predictions(outputs, targets)
                    if hits is None:
                        totals[3] += 1
                    else:
                        totals[1] += hits
    finally:
        model.train(was_training)
    if world_size > 1:
        torch.distributed.all_reduce(totals)
    loss, correct, count, unclassified = totals.tolist()
    out = {"loss": loss / count}
    if "accuracy" in metrics:
        out["accuracy"] = correct / count if unclassified == 0 else math.nan
    return out
