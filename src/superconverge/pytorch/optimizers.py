"""Building optimizers and their param groups: the one place that turns a name into an optimizer.

With `pytorch/scheduler.py`, the only code that writes ``optimizer.param_groups``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from superconverge._checks import check_choice, check_max_lr
from superconverge.pytorch.scheduler import spread_max_lr

# name -> (class, the settings it starts from; the scheduler overwrites lr and momentum)
OPTIMIZERS: dict[str, tuple[Callable[..., torch.optim.Optimizer], dict[str, Any]]] = {
    "sgd": (torch.optim.SGD, {"lr": 0.01, "momentum": 0.9}),
    "adam": (torch.optim.Adam, {"lr": 1e-3}),
    "adamw": (torch.optim.AdamW, {"lr": 1e-3}),
    # NAdam with AdamW's decoupled decay (Dozat 2016; Loshchilov & Hutter, arXiv:1711.05101)
    "nadamw": (torch.optim.NAdam, {"lr": 1e-3, "decoupled_weight_decay": True}),
}

OptimizerSpec = str | Callable[..., torch.optim.Optimizer]
MaxLR = float | Sequence[float] | slice  # one LR, one per group, or a (low, high) spread


def default_splitter(model: nn.Module) -> list[list[nn.Parameter]]:
    """Param groups for discriminative LRs: one per top-level child that has parameters,
    in order (body first, head last); parameters registered on the root come first."""
    own = model._parameters.values()  # noqa: SLF001 - parameters registered on the root
    groups: list[list[nn.Parameter]] = [[p for p in own if p is not None]]
    groups += [list(child.parameters()) for child in model.children()]
    return [group for group in groups if group]


def check_optimizer_spec(optimizer: object) -> None:
    """A known name or a callable of one argument (the param groups); raises naming
    ``optimizer`` otherwise."""
    if isinstance(optimizer, str):
        check_choice("optimizer", optimizer, tuple(OPTIMIZERS))
    elif isinstance(optimizer, torch.optim.Optimizer):  # built on parameters we cannot regroup
        kind = type(optimizer).__name__
        raise TypeError(
            f"optimizer must be a name or a callable of the param groups, got an instance of {kind}: "
            f"the optimizer is built here, over the param groups this library makes (one per "
            f"layer group for discriminative LRs, a new one per run); pass "
            f"optimizer=torch.optim.{kind} or lambda groups: torch.optim.{kind}(groups, ...)"
        )
    elif not callable(optimizer):
        raise TypeError(f"optimizer must be a name or a callable, got {optimizer!r}")
    else:
        try:
            inspect.signature(optimizer).bind([])
        except TypeError:
            raise TypeError(
                f"optimizer: a callable is called with one argument, the param groups "
                f"(fn(param_groups) -> torch.optim.Optimizer, e.g. lambda groups: "
                f"torch.optim.SGD(groups, lr=0.1, momentum=0.9)), got "
                f"{getattr(optimizer, '__name__', type(optimizer).__name__)}"
                f"{inspect.signature(optimizer)}"
            ) from None
        except ValueError:  # no signature to read (a builtin): calling it will tell
            pass


def decouples_weight_decay(optimizer: OptimizerSpec) -> bool:
    """The optimizer decays weights apart from the gradient (AdamW, NAdamW), which calls for
    other weight-decay values than SGD's L2 penalty; a callable is built once on a dummy
    parameter to see.

    Example:
        >>> decouples_weight_decay("adamw"), decouples_weight_decay("sgd")
        (True, False)
    """
    built = build_optimizer(optimizer, [torch.nn.Parameter(torch.zeros(1))])
    group = built.param_groups[0]
    return isinstance(built, torch.optim.AdamW) or bool(group.get("decoupled_weight_decay"))


def takes_weight_decay(optimizer: OptimizerSpec) -> bool:
    """Whether the optimizer's param groups have a weight decay to set (Rprop's, LBFGS's and
    many custom optimizers' have none): built once on a dummy parameter to see.

    Example:
        >>> takes_weight_decay("sgd"), takes_weight_decay(lambda g: torch.optim.Rprop(g))
        (True, False)
    """
    built = build_optimizer(optimizer, [torch.nn.Parameter(torch.zeros(1))])
    return all("weight_decay" in group for group in built.param_groups)


def build_optimizer(
    optimizer: OptimizerSpec,
    groups: Sequence[dict[str, Any]] | Any,
    weight_decay: float | None = None,
) -> torch.optim.Optimizer:
    """An optimizer over `groups` (param-group dicts or an iterable of parameters).

    Args:
        optimizer: a name from `OPTIMIZERS` or a callable ``groups -> Optimizer``.
        groups: what torch optimizers take as their first argument.
        weight_decay: L2 penalty (SGD, Adam) or decoupled decay (AdamW); None: 0 for a name,
            the callable's own for a callable (a number is set on every group it built: the
            recipe's weight-decay candidates must reach the optimizer they compare).

    Raises:
        ValueError: an unknown name. TypeError: a callable that returns no Optimizer, or one
        whose groups take no weight decay when one is given.
    """
    check_optimizer_spec(optimizer)
    if isinstance(optimizer, str):
        cls, settings = OPTIMIZERS[optimizer]
        return cls(groups, **settings, weight_decay=weight_decay or 0.0)
    built = optimizer(groups)
    if not isinstance(built, torch.optim.Optimizer):
        raise TypeError(f"optimizer callable must return a torch.optim.Optimizer, got {built!r}")
    if weight_decay is not None:
        if any("weight_decay" not in group for group in built.param_groups):
            if weight_decay == 0:  # none asked of an optimizer that takes none (Rprop)
                return built
            raise TypeError(
                f"weight_decay: the optimizer callable built {type(built).__name__}, whose param "
                f"groups have no weight_decay to set to {weight_decay:g}; leave weight_decay "
                "unset (None) or build an optimizer that takes one"
            )
        built.defaults["weight_decay"] = weight_decay
        for group in built.param_groups:
            group["weight_decay"] = weight_decay
    return built


def regroup(
    old: torch.optim.Optimizer,
    optimizer: OptimizerSpec,
    param_groups: Sequence[Sequence[nn.Parameter]],
    weight_decay: float | None = None,
) -> torch.optim.Optimizer:
    """A new optimizer with one group per entry of `param_groups`, keeping each parameter's
    state (momentum buffers, Adam moments) and the first old group's hyper-parameters."""
    settings = {k: v for k, v in old.param_groups[0].items() if k != "params"}
    new = build_optimizer(optimizer, [{"params": list(g)} for g in param_groups], weight_decay)
    for group in new.param_groups:
        group.update(settings)
    for param, state in old.state.items():
        new.state[param] = state
    return new


def for_max_lr(
    old: torch.optim.Optimizer,
    optimizer: OptimizerSpec,
    param_groups: Sequence[Sequence[nn.Parameter]],
    weight_decay: float | None,
    max_lr: MaxLR,
) -> tuple[torch.optim.Optimizer, float, Any]:
    """(the optimizer to train with, the plan's peak LR, the max_lr spec for the scheduler).

    One LR trains `old` as it is (one group: per-group work costs time on every step). A
    per-group `max_lr` (a list, a ``(low, high)`` pair or a slice: discriminative LRs) needs
    one optimizer group per entry of `param_groups`: `old` is regrouped, keeping its state.
    """
    if isinstance(max_lr, (int, float)) and not isinstance(max_lr, bool):
        peak = check_max_lr(max_lr)
        return old, peak, peak  # type: ignore[return-value]
    peaks = spread_max_lr(max_lr, len(param_groups))
    if len(old.param_groups) != len(param_groups):
        old = regroup(old, optimizer, param_groups, weight_decay)
    return old, max(peaks), max_lr


def optimizer_step(
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    parameters: Any = None,
    max_grad_norm: float | None = None,
) -> None:
    """One update from the accumulated gradients, then clear them: unscale and clip the
    gradient norm to `max_grad_norm` (when given), step through the scaler (a disabled scaler
    just calls ``optimizer.step()``), update its scale.

    Shared by the training loop and the LR range test, so both step the same way.
    """
    if max_grad_norm is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


def freeze_groups(
    model: nn.Module, param_groups: Sequence[Sequence[nn.Parameter]], n: int, *, train_bn: bool
) -> None:
    """Freeze the first `n` of `param_groups` (negative counts from the end) and unfreeze the
    rest; with `train_bn`, BatchNorm layers stay trainable, as in fastai (their statistics
    adapt to the new task)."""
    count = len(param_groups)
    index = n if n >= 0 else count + n
    if not 0 <= index <= count:
        raise ValueError(f"n must be in [-{count}, {count}], got {n!r}")
    bn_params = set()
    if train_bn:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):  # noqa: SLF001
                bn_params |= {id(p) for p in module.parameters(recurse=False)}
    for position, group in enumerate(param_groups):
        for param in group:
            param.requires_grad_(position >= index or id(param) in bn_params)
