"""The recipe's measurements: throughput, GPU-memory and out-of-memory probes, and short
1cycle runs.

`ShortRun` is one short run's settings as a frozen dataclass: picklable, so worker processes
(`run_short_runs` with ``workers > 1``) receive it whole.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import functools
import math
import multiprocessing
import os
import pickle
import signal
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from superconverge._warnings import key_of, warn_explicit
from superconverge.batches import forward, split_batch
from superconverge.data.loader import Augment
from superconverge.data.sources import as_source
from superconverge.pytorch.distributed import alone_from_now
from superconverge.training.device import to_device
from superconverge.training.trainer import Trainer
from superconverge.tuning.decisions import batch_sizes_to_try
from superconverge.tuning.settings import DEFAULT_SETTINGS, RecipeSettings

Momentum = tuple[float, float] | float  # cyclical (high, low) or constant


def _train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[..., torch.Tensor],
    inputs: Any,
    targets: Any,
) -> None:
    optimizer.zero_grad(set_to_none=True)
    torch.autograd.backward(loss_fn(forward(model, inputs), targets))
    optimizer.step()


def measure_throughput(
    model_fn: Callable[[], nn.Module],
    data: Any,
    sizes: Sequence[int],
    loss_fn: Callable[..., torch.Tensor],
    device: torch.device,
    steps: int = 3,
    rounds: int = 3,
) -> dict[int, float]:
    """Training samples/s at each batch size, on a fresh model per size: after two warm-up
    steps each, `rounds` rounds of `steps` steps per size, the sizes interleaved within a round
    so that a busy spell of the machine hits them all; the median over the rounds. Only the
    steps are timed, not the loading of their batches (`data`'s loaders are built without
    worker processes: one per size would start a pool each)."""
    source = as_source(data, "train_data")
    serial = replace(source, options=replace(source.options, num_workers=0))
    setups = []
    for size in sizes:
        model = model_fn().to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        setups.append((size, model, optimizer, serial.loader(size, seed=0, device=device)))

    def train(size: int, model: nn.Module, optimizer: Any, loader: Any, count: int) -> float:
        # a new iterator continues the loader where the last one stopped (a new epoch at the end)
        batches = iter(loader)
        elapsed = 0.0
        for _ in range(count):
            try:
                batch = next(batches)
            except StopIteration:
                batches = iter(loader)
                batch = next(batches)
            inputs, targets = split_batch(batch, source.batch_fn, source.name)
            inputs, targets = to_device(inputs, device), to_device(targets, device)
            start = time.perf_counter()
            _train_step(model, optimizer, loss_fn, inputs, targets)
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed += time.perf_counter() - start
        return float(size * count / elapsed)

    for setup in setups:
        train(*setup, count=2)  # warm-up: allocator, kernels, caches
    measured: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(rounds):
        for setup in setups:
            measured[setup[0]].append(train(*setup, count=steps))
    return {size: statistics.median(values) for size, values in measured.items()}


def _batch_of(source: Any, size: int, device: torch.device) -> tuple[Any, Any]:
    """The first batch of `size` samples, on `device`. Not `first_batch`: for in-memory data
    that gives two samples (enough for the data checks), and a memory probe measured at two
    samples finds every size fits."""
    serial = replace(source, options=replace(source.options, num_workers=0))
    inputs, targets = split_batch(
        next(iter(serial.loader(size, seed=0))), source.batch_fn, source.name
    )
    return to_device(inputs, device), to_device(targets, device)


def largest_batch_on_gpu(
    model_fn: Callable[[], nn.Module],
    data: Any,
    loss_fn: Callable[..., torch.Tensor],
    device: torch.device,
    max_batch: int,
    margin: float | None = None,
    settings: RecipeSettings = DEFAULT_SETTINGS,
) -> tuple[int, dict[int, float]]:
    """Double the batch while the measured peak memory of 3 steps stays under `margin` (a
    fraction of the GPU's memory; `settings.gpu_memory_margin`, 80%, by default)."""
    source = as_source(data, "train_data")
    limit = settings.gpu_memory_margin if margin is None else margin
    total = torch.cuda.get_device_properties(device).total_memory
    peaks: dict[int, float] = {}
    # the training set may allow less than the smallest candidate: then that is the only size
    sizes = batch_sizes_to_try(max_batch, settings)
    best = sizes[0]
    for size in sizes:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        try:
            model = model_fn().to(device)
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
            inputs, targets = _batch_of(source, size, device)
            for _ in range(3):
                _train_step(model, optimizer, loss_fn, inputs, targets)
            torch.cuda.synchronize()
        except torch.cuda.OutOfMemoryError:
            break
        peaks[size] = torch.cuda.max_memory_allocated(device) / total
        if peaks[size] > limit:
            break
        best = size
        del model, optimizer
    return best, peaks


def largest_batch_that_runs(
    model_fn: Callable[[], nn.Module],
    data: Any,
    loss_fn: Callable[..., torch.Tensor],
    device: torch.device,
    batch_size: int,
    steps: int = 1,
) -> tuple[int, list[int]]:
    """`batch_size`, halved while `steps` training steps on a fresh model run out of memory
    (``torch.cuda.OutOfMemoryError``); returns the size that ran and those that did not.

    Raises:
        RuntimeError: batch size 1 ran out of memory too (the model does not fit the device).
    """
    source = as_source(data, "train_data")
    failed: list[int] = []
    while True:
        try:
            _steps_at(model_fn, source, loss_fn, device, batch_size, steps)
            return batch_size, failed
        except torch.cuda.OutOfMemoryError:
            failed.append(batch_size)
        # out of the except block the failed attempt's frame (model, batch) is freed
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if batch_size == 1:
            raise RuntimeError(
                f"batch size 1 ran out of memory on {device}: the model does not fit"
            )
        batch_size = max(1, batch_size // 2)


def _steps_at(
    model_fn: Callable[[], nn.Module],
    source: Any,
    loss_fn: Callable[..., torch.Tensor],
    device: torch.device,
    batch_size: int,
    steps: int,
) -> None:
    model = model_fn().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    inputs, targets = _batch_of(source, batch_size, device)
    for _ in range(steps):
        _train_step(model, optimizer, loss_fn, inputs, targets)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class ShortRun:
    """One short 1cycle run of the recipe: everything a worker process needs to run it."""

    model_fn: Callable[[], nn.Module]  # a module-level function when it goes to a worker
    loss_fn: Callable[..., torch.Tensor]
    train_data: Any  # any data the Trainer takes (tune passes DataSources)
    val_data: Any
    batch_size: int
    epochs: int
    max_lr: float
    min_lr: float
    weight_decay: float
    momentum: Momentum | None  # None: the optimizer's own, left alone (one without momentum)
    seed: int
    augment: Augment | None = None
    # the Trainer's other keyword arguments: optimizer, metrics, data loading (tune's own)
    options: dict[str, Any] = field(default_factory=dict)
    samples: int = 0  # training samples the run processes (the budget's unit); 0: not counted
    train_fraction: float = 1.0  # the seeded subset of the training set `train_data` is

    def at(
        self,
        max_lr: float,
        min_lr: float,
        weight_decay: float = 0.0,
        momentum: Momentum | None = None,
    ) -> ShortRun:
        """The same run at other LR bounds, weight decay and (if given) momentum."""
        chosen = self.momentum if momentum is None else momentum
        return replace(
            self, max_lr=max_lr, min_lr=min_lr, weight_decay=weight_decay, momentum=chosen
        )


def run_short(run: ShortRun) -> dict[str, Any]:
    """One short 1cycle run (also the unit of work of a worker process): its final validation
    loss (NaN unless it completed), its training loss at the end (`_end_train_loss`), status,
    validation accuracy (None unless the task is a classification) and every validation
    metric."""
    torch.manual_seed(run.seed)
    trainer = Trainer(
        run.model_fn(),
        run.loss_fn,
        run.train_data,
        run.val_data,
        batch_size=run.batch_size,
        weight_decay=run.weight_decay,
        seed=run.seed,
        augment=run.augment,
        progress=False,
        **run.options,
    )
    momentum = (run.momentum, run.momentum) if isinstance(run.momentum, float) else run.momentum
    try:
        history = trainer.fit_one_cycle(
            run.epochs, run.max_lr, min_lr=run.min_lr, momentum=momentum
        )
    finally:
        trainer.close()  # its DataLoader workers end with the run, not beside the next one's
    last = history.epochs[-1] if history.epochs else {}
    completed = history.status == "completed"
    return {
        "val_loss": last.get("val_loss", math.nan) if completed else math.nan,
        "train_loss": _end_train_loss(history.step_losses) if completed else math.nan,
        "status": history.status,
        "val_accuracy": last.get("val_accuracy"),
        "val_metrics": {
            k[4:]: v for k, v in last.items() if k.startswith("val_") and k != "val_loss"
        },
    }


def _end_train_loss(step_losses: Sequence[float]) -> float:
    """The mean training loss of the run's last tenth of steps (at least 5): where the run ended,
    at its lowest LRs. Not the last epoch's mean: a one-epoch short run's mean includes its
    first steps, far above where it ended (digits: 1.46 against 0.46 validation loss).

    Example:
        >>> _end_train_loss([3.0] * 45 + [1.0] * 5)
        1.0
    """
    tail = [loss for loss in step_losses[-max(5, len(step_losses) // 10) :] if math.isfinite(loss)]
    return statistics.fmean(tail) if tail else math.nan


def run_short_runs(runs: Sequence[ShortRun], workers: int = 1) -> list[dict[str, Any]]:
    """`run_short` on each run, in `workers` processes when there are several runs."""
    if workers <= 1 or len(runs) <= 1:
        return [run_short(run) for run in runs]
    return map_in_processes(run_short, runs, workers)


def map_in_processes(
    function: Callable[[Any], Any], items: Sequence[Any], workers: int
) -> list[Any]:
    """``[function(item) for item in items]`` in `workers` spawned processes of one torch
    thread each (they share the cores; fork would share torch's thread pools). Interrupted
    (Ctrl-C, or SIGTERM, which the CLI turns into the same), the main process stops the workers
    at once rather than waiting for them: a scheduler's grace period must not run out on a short
    run whose result nobody will read. The journal records a stage's short runs when all of
    them have returned, so an interrupted batch is run again on resume; earlier stages are kept."""
    context = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_worker_start,
        initargs=(os.getpid(),),
    )
    try:
        results = []
        for result, caught in pool.map(functools.partial(_noting_warnings, function), items):
            for warning in caught:
                warn_explicit(*warning)
            results.append(result)
        return results
    except concurrent.futures.process.BrokenProcessPool as error:
        _stop_workers(pool)
        raise RuntimeError(
            f"a short run's worker process died ({error}): a script that calls tune with "
            'workers>1 must guard its top level with `if __name__ == "__main__":` (each '
            "spawned process imports the script again), or the worker was killed (out of "
            "memory?); workers=1 runs the short runs in this process"
        ) from error
    except BaseException:  # an interrupt, or a run that raised: the others' results are lost
        _stop_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _noting_warnings(
    function: Callable[[Any], Any], item: Any
) -> tuple[Any, list[tuple[Any, ...]]]:
    """`function(item)` in a worker, with the warnings it raised: a spawned process has its own
    filters, registry and display, so each worker would print the same warning again, in
    Python's two-line form; the main process shows them instead (`warn_explicit`), once."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = function(item)
    noted = []
    for warning in caught:
        # a class or key the main process cannot read back: a plain warning, no key
        category = _sendable(warning.category, UserWarning)
        key = key_of(warning.message) if isinstance(warning.message, Warning) else None
        where = (warning.filename, warning.lineno, _module_of(warning.filename))
        noted.append((str(warning.message), category, *where, _sendable(key, None)))
    return result, noted


def _sendable(value: Any, fallback: Any) -> Any:
    """`value` if it pickles (to go back to the main process), else `fallback`."""
    try:
        pickle.dumps(value)
    except Exception:
        return fallback
    return value


def _module_of(filename: str) -> str:
    """The module that `filename` is, as loaded in this process; an unknown file gets a name of
    its own, not ``__main__`` (whose default filters would show DeprecationWarnings that a run
    in one process hides)."""
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == filename:
            return name
    return "superconverge.worker"


def _worker_start(parent: int) -> None:
    _end_with(parent)
    # its short runs train alone, whatever WORLD_SIZE it inherited from torchrun (it warned
    # "no process group is initialised", a reviewer's check)
    alone_from_now()
    torch.set_num_threads(1)
    # Ctrl-C reaches the whole process group: the main process stops the workers (no traceback
    # from each of them)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


PR_SET_PDEATHSIG = 1  # Linux's prctl option: a signal for this process when its parent dies


def _end_with(parent: int) -> None:
    """On Linux, end this worker when `parent` (the process that spawned it) dies: a tune killed
    with SIGKILL (a scheduler's hard stop, an out-of-memory kill) left its workers behind for
    ever, idle, holding the output pipes the killer's wrapper waited on. Elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # no prctl to call: the worker ends with its pipe
        return
    if os.getppid() != parent:  # the parent died before the line above: end now
        os._exit(1)


def _stop_workers(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    # before 3.14 the executor has no public way to stop running work: its process table
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
