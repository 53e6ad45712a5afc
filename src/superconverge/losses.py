"""Loss functions by name, for the CLI and for plans that are re-run from their JSON.

In Python, `loss_fn` is any callable ``loss_fn(outputs, targets) -> scalar tensor``; the names
here are the common ones, so that ``--loss mse`` and a plan's ``"loss": "mse"`` mean one thing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional

LossFn = Callable[..., torch.Tensor]

LOSSES: dict[str, LossFn] = {
    "cross_entropy": functional.cross_entropy,  # class indices (N,) or (N, d1, ...)
    "mse": functional.mse_loss,  # regression, outputs of the targets' shape
    "l1": functional.l1_loss,
    "smooth_l1": functional.smooth_l1_loss,
    "bce_with_logits": functional.binary_cross_entropy_with_logits,  # multi-label 0/1 targets
    "nll": functional.nll_loss,  # log-probabilities and class indices
}


def resolve_loss(loss: str | LossFn) -> LossFn:
    """A loss function from its name in `LOSSES`, or the callable itself.

    Example:
        >>> resolve_loss("mse") is functional.mse_loss
        True
    """
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)} or a callable, got {loss!r}")
        return LOSSES[loss]
    if not callable(loss):
        raise TypeError(f"loss_fn must be callable, got {loss!r}")
    return loss


def check_loss_fn(loss_fn: object) -> None:
    """A callable ``loss_fn(outputs, targets) -> scalar tensor``; a loss's name (the CLI's
    --loss) is named with the callable to pass instead.

    Example:
        >>> check_loss_fn("mse")
        Traceback (most recent call last):
        ...
        TypeError: loss_fn must be callable, got 'mse' (a name, as the CLI's --loss takes it): pass superconverge.losses.resolve_loss('mse') or torch.nn.functional.mse_loss
    """
    if isinstance(loss_fn, type) and issubclass(loss_fn, torch.nn.Module):  # callable, too
        name = loss_fn.__name__
        raise TypeError(
            f"loss_fn must be a loss, got the class {name}: {name}() (or torch.nn.functional's)"
        )
    if callable(loss_fn):
        return
    if isinstance(loss_fn, str) and loss_fn in LOSSES:
        raise TypeError(
            f"loss_fn must be callable, got {loss_fn!r} (a name, as the CLI's --loss takes it): "
            f"pass superconverge.losses.resolve_loss({loss_fn!r}) or "
            f"torch.nn.functional.{LOSSES[loss_fn].__name__}"
        )
    raise TypeError(f"loss_fn must be callable, got {loss_fn!r}")


CUSTOM = "custom"  # a plan's loss when it was the user's own callable (a plan cannot hold it)


def loss_name(loss: LossFn) -> str:
    """The name of a loss from `LOSSES` (for a plan's JSON), or `CUSTOM` for the user's own."""
    return next((name for name, fn in LOSSES.items() if fn is loss), CUSTOM)
