"""Where this process stands under torch.distributed (torchrun)."""

from __future__ import annotations

import contextlib
import datetime
import os
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


def world() -> tuple[int, int]:
    """(rank, world size) when a process group is initialised, else (0, 1); warned once where
    a launcher started several processes (``WORLD_SIZE``) and none started the group."""
    if _alone:
        return 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    global _warned_no_group
    if not _warned_no_group and launched_ranks() > 1:
        _warned_no_group = True
        # an auditor's script under torchrun without init_process_group: each rank trained
        # the whole data set alone, and the second then found the first's checkpoint
        warnings.warn(
            f"WORLD_SIZE is {launched_ranks()} (torchrun or another launcher) but no process "
            "group is initialised: this process trains alone, on all the data, as each of the "
            "others does; call torch.distributed.init_process_group(...) before the Trainer "
            "(docs/distributed.md)",
            UserWarning,
            stacklevel=3,
        )
    return 0, 1


_alone = False
_warned_no_group = False


def alone_from_now() -> None:
    """This process trains alone for the rest of its life (a short-run worker process that
    inherited torchrun's environment: `world` says (0, 1) there, without the warning)."""
    global _alone
    _alone = True


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Inside it, `world` says (0, 1) even under torchrun: what runs there (the recipe's
    search on one rank) trains on this process alone, with no collectives."""
    global _alone
    before, _alone = _alone, True
    try:
        yield
    finally:
        _alone = before


def launched_ranks() -> int:
    """The world size torchrun (or another launcher) set in the environment; 1 without."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


class TooManyRanks(ValueError):
    """More ranks on this machine than it has GPUs: how the processes were launched."""


def start_process_group(timeout_s: float, device: torch.device) -> None:
    """Join the process group torchrun describes for training on `device` (gloo on the CPU,
    NCCL on CUDA, each rank on the GPU of its ``LOCAL_RANK``), unless one is started already;
    `timeout_s` bounds a collective, so it must exceed the longest wait (ranks > 0 wait for
    rank 0's search).

    Raises:
        TooManyRanks: CUDA with more ranks on this machine than it has GPUs.
    """
    if torch.distributed.is_initialized():
        return
    # by the device, not by whether CUDA exists: --device cpu on a GPU machine took NCCL, which
    # cannot reduce CPU tensors (a GPU machine's check)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        local, count = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
        if local >= count:  # torch's own error: "CUDA error: invalid device ordinal"
            raise TooManyRanks(
                f"LOCAL_RANK must be below the {count} CUDA device(s) here, got {local}: start "
                f"at most {count} processes on this machine (torchrun --nproc-per-node), or "
                "train on the CPU (--device cpu)"
            )
        torch.cuda.set_device(local)
    torch.distributed.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))


@contextlib.contextmanager
def process_group(timeout_s: float, device: torch.device) -> Iterator[None]:
    """`start_process_group`, and destroy the group on the way out if it was started here: a
    rank that exits with a live gloo group can abort in its exit (``terminate called without
    an active exception``), and torchrun then stops the other ranks, rank 0 in its report."""
    started = not torch.distributed.is_initialized()
    start_process_group(timeout_s, device)
    try:
        yield
        if started:  # no rank leaves while another still works: a rank that left early
            # (rank 1 while rank 0 wrote the report) aborted in its exit now and then, and
            # torchrun then stopped rank 0 (an auditor's 2 of 12 runs)
            torch.distributed.barrier()
    finally:
        if started and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def broadcast_from_rank0(value: Any) -> Any:
    """Rank 0's `value` on every rank (any picklable object)."""
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def shared_by_ranks(model: nn.Module) -> bool:
    """`model` trains with the other ranks: wrapped in ``DistributedDataParallel`` or sharded
    by FSDP (either version). A plain module trains on this process alone."""
    model = getattr(model, "_orig_mod", model)  # torch.compile's wrapper: what it compiled
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return True
    try:
        from torch.distributed import fsdp
    except ImportError:  # a build without distributed support
        return False
    kinds = [getattr(fsdp, name, None) for name in ("FullyShardedDataParallel", "FSDPModule")]
    return isinstance(model, tuple(kind for kind in kinds if isinstance(kind, type)))
