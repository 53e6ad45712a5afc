"""`find_batch_size`: the recipe's batch-size stage on its own, for any training loop.

On CUDA, a memory probe: the largest candidate size (16, 32, ... 1024) whose measured peak
memory over 3 training steps stays under `RecipeSettings.gpu_memory_margin` (80%) of the GPU.
On the CPU, throughput: the size after which a doubling buys less than
`RecipeSettings.throughput_gain` (10%) more samples/s. That rule depends on timings, and timings
of neighbouring sizes fall within a busy machine's noise: the same call can choose differently
from one run to the next (issue 16), which is why `tune` does not time batches on the CPU.
Either way a size that runs out of memory (``torch.cuda.OutOfMemoryError``) is halved and
tried again, and a `max_lr` given for another batch size is moved to the chosen one by the
linear scaling rule (README, "Reliability").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from superconverge._checks import plain_arguments
from superconverge.data.loader import resolve_device
from superconverge.data.sources import as_source
from superconverge.pytorch.snapshot import kept_global_rng
from superconverge.tuning.decisions import batch_sizes_to_try, choose_batch_size, lr_for_batch
from superconverge.tuning.probes import (
    largest_batch_on_gpu,
    largest_batch_that_runs,
    measure_throughput,
)
from superconverge.tuning.settings import DEFAULT_SETTINGS, RecipeSettings

_GPU_PROBE_STEPS = 3  # largest_batch_on_gpu's steps per size
_THROUGHPUT_STEPS = 2 + 3 * 3  # measure_throughput's warm-up, then 3 rounds of 3 steps


@dataclass(frozen=True)
class BatchSizeResult:
    """The chosen batch size, why, and what was measured to choose it."""

    batch_size: int
    why: str
    method: str  # "gpu memory" or "cpu throughput"
    device: str
    # size -> peak memory as a fraction of the GPU's ("gpu memory") or samples/s (CPU)
    measurements: dict[int, float] = field(default_factory=dict)
    out_of_memory: tuple[int, ...] = ()  # sizes that ran out of memory, largest first
    max_lr: float | None = None  # the given max_lr moved to `batch_size` (linear rule)
    samples: int = 0  # training samples the probes processed
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["measurements"] = {str(size): value for size, value in self.measurements.items()}
        data["out_of_memory"] = list(self.out_of_memory)
        return data


@kept_global_rng()  # it builds and trains models: the caller's generator is given back
@plain_arguments
def find_batch_size(
    model_fn: Callable[[], nn.Module],
    train_data: Any,
    loss_fn: Callable[..., torch.Tensor] = nn.functional.cross_entropy,
    *,
    device: str | torch.device = "auto",
    max_batch: int | None = None,
    max_lr: float | None = None,
    lr_batch_size: int | None = None,
    settings: RecipeSettings = DEFAULT_SETTINGS,
) -> BatchSizeResult:
    """The batch size to train at: GPU memory on CUDA, throughput on the CPU (see the module).

    Args:
        model_fn: builds a fresh model (one per size tried).
        train_data: any data the `Trainer` takes; only the first batch of each size is read.
        loss_fn: the training loss.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        max_batch: the largest size to try; default the largest candidate, at most a
            `settings.min_steps_per_epoch`-th of the training set when its size is known.
        max_lr: an LR found at `lr_batch_size`, returned moved to the chosen size.
        lr_batch_size: the batch size `max_lr` belongs to (required with `max_lr`).
        settings: the candidates, the GPU-memory margin and the throughput gain.

    Returns:
        A `BatchSizeResult`.

    Raises:
        ValueError: a bad argument (named). RuntimeError: batch size 1 runs out of memory.

    Example:
        >>> data = (torch.randn(640, 8), torch.randint(0, 2, (640,)))
        >>> found = find_batch_size(lambda: nn.Linear(8, 2), data, device="cpu", max_batch=32,
        ...                         max_lr=0.1, lr_batch_size=64)
        >>> found.batch_size in (16, 32), found.max_lr == 0.1 * found.batch_size / 64
        (True, True)
    """
    _check(model_fn, max_batch, max_lr, lr_batch_size, settings)
    start = time.perf_counter()
    run_device = resolve_device(device)
    source = as_source(train_data, "train_data")
    if max_batch is None:
        max_batch = max(settings.batch_candidates)
        if source.num_samples is not None:
            max_batch = max(1, min(max_batch, source.num_samples // settings.min_steps_per_epoch))
    if run_device.type == "cuda":
        method = "gpu memory"
        probed, measured = largest_batch_on_gpu(
            model_fn, source, loss_fn, run_device, max_batch, settings=settings
        )
        samples = _GPU_PROBE_STEPS * sum(measured)
        why = (
            f"{probed}: the largest size whose peak memory stays under "
            f"{settings.gpu_memory_margin:.0%} of the GPU"
        )
        # what 3 steps on one batch measured may still not fit (another batch, the allocator)
        chosen, failed = largest_batch_that_runs(
            model_fn, source, loss_fn, run_device, probed, _GPU_PROBE_STEPS
        )
        samples += _GPU_PROBE_STEPS * (chosen + sum(failed))
    else:
        method = "cpu throughput"
        fits, failed = largest_batch_that_runs(model_fn, source, loss_fn, run_device, max_batch)
        sizes = [size for size in batch_sizes_to_try(max_batch, settings) if size <= fits]
        measured = measure_throughput(model_fn, source, sizes or [fits], loss_fn, run_device)
        chosen, rule = choose_batch_size(measured, fits, settings)
        samples = fits + sum(failed) + _THROUGHPUT_STEPS * sum(measured)
        why = f"{chosen}: {rule} (timed: another run, or a busier machine, may choose another)"
    if failed:
        why += f"; {', '.join(map(str, failed))} ran out of memory: halved to {chosen}"
    moved = None
    if max_lr is not None and lr_batch_size is not None:
        moved = lr_for_batch(max_lr, lr_batch_size, chosen)
        why += f"; max_lr {max_lr:g} at batch {lr_batch_size} is {moved:.4g} at {chosen} (linear)"
    return BatchSizeResult(
        batch_size=chosen,
        why=why,
        method=method,
        device=str(run_device),
        measurements=dict(measured),
        out_of_memory=tuple(failed),
        max_lr=moved,
        samples=samples,
        seconds=time.perf_counter() - start,
    )


def _check(
    model_fn: Any,
    max_batch: Any,
    max_lr: Any,
    lr_batch_size: Any,
    settings: Any,
) -> None:
    if not callable(model_fn):
        raise TypeError(f"model_fn must be a callable that builds a model, got {model_fn!r}")
    if not isinstance(settings, RecipeSettings):
        raise TypeError(f"settings must be a RecipeSettings, got {type(settings).__name__}")
    for name, value in (("max_batch", max_batch), ("lr_batch_size", lr_batch_size)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if max_lr is not None and (
        isinstance(max_lr, bool)
        or not isinstance(max_lr, (int, float))
        or not 0 < max_lr < math.inf
    ):
        raise ValueError(f"max_lr must be a number > 0, got {max_lr!r}")
    if (max_lr is None) != (lr_batch_size is None):
        raise ValueError(
            f"max_lr and lr_batch_size go together (the LR and the batch size it was found "
            f"at), got max_lr={max_lr!r}, lr_batch_size={lr_batch_size!r}"
        )
