"""Where this process stands under torch.distributed (torchrun)."""

from __future__ import annotations

import torch


def world() -> tuple[int, int]:
    """(rank, world size) when a process group is initialised, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1
