"""The PyTorch adapter: the only package that writes ``optimizer.param_groups``."""

from superconverge.pytorch.scheduler import (
    HyperparamScheduler,
    get_momentum,
    set_lr,
    set_momentum,
    spread_max_lr,
)

__all__ = ["HyperparamScheduler", "get_momentum", "set_lr", "set_momentum", "spread_max_lr"]
