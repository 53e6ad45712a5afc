"""`tune`: Smith's disciplined recipe (arXiv:1803.09820) as one call.

1. batch size (the largest that pays, measured), 2. LR bounds (range test, then short runs
at its lowest-loss LR / 10, / 5 and / 3), 3. weight decay
(range tests and short 1cycle runs per candidate, refined between close neighbours),
4. momentum (cyclical 0.95 → 0.85, optionally compared with constants), 5. the final 1cycle run,
6. a diagnosis of its validation curve. Every step is recorded with its evidence and its cost.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import math
import multiprocessing
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from superconverge._json import decode_nonfinite, encode_nonfinite, reject_unknown_keys
from superconverge.data.datasets import ArrayData
from superconverge.data.loader import ArrayLoader, Augment
from superconverge.diagnostics.verdicts import diagnose
from superconverge.finder.analysis import SWEEP_FURTHER
from superconverge.finder.result import RangeTestResult
from superconverge.training.history import History
from superconverge.training.trainer import Trainer
from superconverge.tuning.decisions import (
    LR_EXTENSIONS,
    RETRY_LR_DIVISOR,
    choose_batch_size,
    choose_max_lr,
    choose_weight_decay,
    final_run_failed,
    higher_candidate,
    lower_candidate,
    weight_decay_midpoint,
)

logger = logging.getLogger(__name__)

BATCH_CANDIDATES = (16, 32, 64, 128, 256, 512, 1024)
MIN_STEPS_PER_EPOCH = 10  # 1cycle needs room for its phases: the batch may not eat the epoch
# ... nor the run: on small data a throughput-chosen batch left too few updates (digits, 10 epochs:
# batch 128 = 110 updates, 97.5% test accuracy; batch 32 = 410 updates, 98.6%)
# 300 was not enough either: MNIST, 3 epochs, one seed each: batch 256 (633 updates) 98.75%,
# batch 128 (1,266) 98.97%; on a GPU batch 512 (318 updates) 97.8% (docs/benchmarks.md)
MIN_TOTAL_STEPS = 1000
MIN_AUTO_BATCH = 16  # ... but the update floor alone never pushes the batch below this
CONSTANT_MOMENTA = (0.99, 0.97, 0.95, 0.9)  # the paper's comparison (arXiv:1803.09820 §4.2)
GPU_MEMORY_MARGIN = 0.8  # use at most 80% of the GPU's memory at the chosen batch
LR_DIVISORS = (10.0, 5.0, 3.0)  # max_lr candidates: the lowest-loss LR of the range test / these


@dataclass
class TunePlan:
    """The chosen hyper-parameters, the evidence for each, and (after the final run) results."""

    epochs: int
    batch_size: int
    max_lr: float
    min_lr: float
    weight_decay: float
    momentum: tuple[float, float] | float | None
    policy: str = "smith"
    seed: int = 0
    data: str | None = None  # names for re-running from the CLI
    model: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = encode_nonfinite(asdict(self))
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TunePlan:
        reject_unknown_keys(data, cls.__dataclass_fields__, "plan settings")
        values = decode_nonfinite(data)
        if isinstance(values.get("momentum"), list):
            values["momentum"] = tuple(values["momentum"])
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> TunePlan:
        return cls.from_dict(json.loads(text))

    def total_seconds(self) -> float:
        return float(sum(step.get("seconds", 0.0) for step in self.evidence))

    def run(
        self,
        model_fn: Callable[[], nn.Module],
        train_data: ArrayData,
        val_data: ArrayData | None = None,
        *,
        test_data: ArrayData | None = None,
        out_dir: str | Path | None = None,
        loss_fn: Callable[..., torch.Tensor] = nn.functional.cross_entropy,
        augment: Augment | None = None,
        overwrite: bool = False,
    ) -> History:
        """Train with these settings (the recipe's final 1cycle run) and fill ``results``."""
        torch.manual_seed(self.seed)
        trainer = Trainer(
            model_fn(), loss_fn, train_data, val_data, batch_size=self.batch_size,
            weight_decay=self.weight_decay, out_dir=out_dir, seed=self.seed, augment=augment,
            overwrite=overwrite,
        )  # fmt: skip
        start = time.perf_counter()
        momentum = self.momentum
        if isinstance(momentum, float):
            momentum = (momentum, momentum)
        history = trainer.fit_one_cycle(
            self.epochs, self.max_lr, policy=self.policy, min_lr=self.min_lr, momentum=momentum
        )
        verdict = diagnose(history)
        self.results = {
            "status": history.status,
            "final_val_loss": history.epochs[-1].get("val_loss") if history.epochs else None,
            "final_val_accuracy": history.epochs[-1].get("val_accuracy")
            if history.epochs
            else None,
            "verdict": verdict.to_dict(),
            "train_seconds": time.perf_counter() - start,
        }
        if test_data is not None and history.status == "completed":
            self.results["test"] = trainer.evaluate(test_data)
        self.trainer = trainer  # for callers that want predict()/evaluate()
        return history


def _step(name: str, decision: Any, why: str, seconds: float, **details: Any) -> dict[str, Any]:
    logger.info("tune: %s = %s (%s) [%.1f s]", name, decision, why, seconds)
    return {"step": name, "decision": decision, "why": why, "seconds": seconds, "details": details}


def measure_throughput(
    model_fn: Callable[[], nn.Module],
    data: ArrayData,
    sizes: Sequence[int],
    loss_fn: Callable[..., torch.Tensor],
    device: torch.device,
    steps: int = 3,
    rounds: int = 3,
) -> dict[int, float]:
    """Training samples/s at each batch size, on a fresh model per size: after two warm-up
    steps each, `rounds` rounds of `steps` steps per size, the sizes interleaved within a round
    so that a busy spell of the machine hits them all; the median over the rounds."""
    setups = []
    for size in sizes:
        model = model_fn().to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        setups.append((size, model, optimizer, ArrayLoader(data, size, seed=0, device=device)))

    def train(
        size: int, model: nn.Module, optimizer: Any, loader: ArrayLoader, count: int
    ) -> float:
        # a new iterator continues the loader where the last one stopped (a new epoch at the end)
        batches = iter(loader)
        elapsed = 0.0
        for _ in range(count):
            try:
                inputs, targets = next(batches)
            except StopIteration:
                batches = iter(loader)
                inputs, targets = next(batches)
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(inputs), targets).backward()  # type: ignore[no-untyped-call]
            optimizer.step()
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


def largest_batch_on_gpu(
    model_fn: Callable[[], nn.Module], data: ArrayData, loss_fn: Callable[..., torch.Tensor],
    device: torch.device, max_batch: int, margin: float = GPU_MEMORY_MARGIN,
) -> tuple[int, dict[int, float]]:  # fmt: skip
    """Double the batch while the measured peak memory of 3 steps stays under `margin` (a
    fraction of the GPU's memory; 80% by default)."""
    total = torch.cuda.get_device_properties(device).total_memory
    peaks: dict[int, float] = {}
    # the training set may allow less than the smallest candidate: then that is the only size
    sizes = [size for size in BATCH_CANDIDATES if size <= max_batch] or [max_batch]
    best = sizes[0]
    for size in sizes:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        try:
            model = model_fn().to(device)
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
            inputs = data.inputs[:size].to(device)
            targets = data.targets[:size].to(device)
            for _ in range(3):
                optimizer.zero_grad(set_to_none=True)
                loss_fn(model(inputs), targets).backward()  # type: ignore[no-untyped-call]
                optimizer.step()
            torch.cuda.synchronize()
        except torch.cuda.OutOfMemoryError:
            break
        peaks[size] = torch.cuda.max_memory_allocated(device) / total
        if peaks[size] > margin:
            break
        best = size
        del model, optimizer
    return best, peaks


def _short_run(args: tuple[Any, ...]) -> dict[str, Any]:
    """One short 1cycle run (also the unit of work of a worker process)."""
    model_fn, loss_fn, train, val, batch, epochs, max_lr, min_lr, wd, momentum, seed, augment = args
    torch.manual_seed(seed)
    trainer = Trainer(model_fn(), loss_fn, train, val, batch_size=batch, weight_decay=wd,
                      seed=seed, augment=augment, progress=False)  # fmt: skip
    with_momentum = momentum if not isinstance(momentum, float) else (momentum, momentum)
    history = trainer.fit_one_cycle(epochs, max_lr, min_lr=min_lr, momentum=with_momentum)
    val_loss = (
        history.epochs[-1].get("val_loss", math.nan) if history.status == "completed" else math.nan
    )
    return {"val_loss": val_loss, "status": history.status,
            "val_accuracy": history.epochs[-1].get("val_accuracy") if history.epochs else None}  # fmt: skip


def _run_many(jobs: list[tuple[Any, ...]], workers: int) -> list[dict[str, Any]]:
    if workers <= 1 or len(jobs) <= 1:
        return [_short_run(job) for job in jobs]
    context = multiprocessing.get_context("spawn")  # fork would share torch's thread pools
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=torch.set_num_threads, initargs=(1,)
    ) as pool:  # one thread per worker: the workers share the cores
        return list(pool.map(_short_run, jobs))


def tune(
    model_fn: Callable[[], nn.Module],
    train_data: ArrayData,
    val_data: ArrayData,
    *,
    epochs: int,
    test_data: ArrayData | None = None,
    batch_size: int | str = "auto",
    weight_decays: Sequence[float] = (1e-3, 1e-4, 1e-5, 0.0),
    momentum: tuple[float, float] = (0.95, 0.85),
    compare_momentum: bool = False,
    budget_fraction: float = 0.25,
    out_dir: str | Path | None = None,
    workers: int = 1,
    loss_fn: Callable[..., torch.Tensor] = nn.functional.cross_entropy,
    augment: Augment | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    overwrite: bool = False,
) -> TunePlan:
    """Choose batch size, LR bounds, weight decay and momentum by short runs, then train.

    Args:
        model_fn: builds a fresh model (a module-level function when ``workers > 1``).
        train_data, val_data: in-memory data (`ArrayData`); validation decides between candidates.
        epochs: epochs of the final 1cycle run.
        test_data: evaluated once, after the final run.
        batch_size: ``"auto"`` or a fixed size. Auto on CUDA: the largest batch whose measured
            peak memory stays under 80% of the GPU; on the CPU: the batch where samples/s stops
            growing (a doubling gains < 10%). Never more than 1/10 of the training set, nor so
            large that the final run gets fewer than 1,000 updates (that floor alone stops at 16).
        weight_decays: candidates (the paper: 1e-3, 1e-4, 1e-5, 0); close neighbours get a run
            at the midpoint of their exponents.
        momentum: the cyclical momentum (high, low) of the final run.
        compare_momentum: also compare constant momenta 0.99/0.97/0.95/0.9 by short runs.
        budget_fraction: each short run lasts ``ceil(budget_fraction * epochs)`` epochs.
        out_dir: where the final run's checkpoints go.
        workers: worker processes for the weight-decay and momentum candidates.
        loss_fn, augment, seed, device: as for `Trainer`.
        overwrite: allow replacing a checkpoint already in `out_dir`.

    Returns:
        A `TunePlan` with the chosen values, the evidence (and seconds) of each step, and the
        final run's results, test accuracy and diagnosis; ``plan.history`` holds its `History`.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if not isinstance(train_data, ArrayData) or not isinstance(val_data, ArrayData):
        raise TypeError(
            "train_data and val_data must be ArrayData (e.g. superconverge.data.load(...).train)"
        )
    if not 0.0 < budget_fraction <= 1.0:
        raise ValueError(f"budget_fraction must be in (0, 1], got {budget_fraction!r}")
    if not weight_decays or any(not math.isfinite(w) or w < 0 for w in weight_decays):
        raise ValueError(f"weight_decays must be finite numbers >= 0, got {tuple(weight_decays)!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if batch_size != "auto" and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be 'auto' or an integer >= 1, got {batch_size!r}")
    run_device = (
        torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if device == "auto"
        else torch.device(device)
    )
    evidence: list[dict[str, Any]] = []
    max_batch = max(1, min(len(train_data) // MIN_STEPS_PER_EPOCH,
                           max(MIN_AUTO_BATCH, len(train_data) * epochs // MIN_TOTAL_STEPS)))  # fmt: skip

    # 1. batch size
    start = time.perf_counter()
    if batch_size != "auto":
        chosen_batch, why, details = int(batch_size), "given", {}
    elif run_device.type == "cuda":
        chosen_batch, peaks = largest_batch_on_gpu(
            model_fn, train_data, loss_fn, run_device, max_batch
        )
        why = f"largest batch with peak memory under {GPU_MEMORY_MARGIN:.0%} of the GPU"
        details = {"peak_memory_fraction": {str(k): v for k, v in peaks.items()}}
    else:
        sizes = [s for s in BATCH_CANDIDATES if s <= max_batch] or [max_batch]
        throughput = measure_throughput(model_fn, train_data, sizes, loss_fn, run_device)
        chosen_batch, why = choose_batch_size(throughput, max_batch)
        details = {"samples_per_s": {str(k): v for k, v in throughput.items()}}
    if batch_size == "auto" and max_batch < len(train_data) // MIN_STEPS_PER_EPOCH:
        why += (
            f"; sizes above {max_batch} were not tried: they would leave the {epochs}-epoch run "
            f"fewer than {MIN_TOTAL_STEPS} updates"
        )
    evidence.append(_step("batch_size", chosen_batch, why, time.perf_counter() - start, **details))

    # 2. LR bounds
    start = time.perf_counter()
    torch.manual_seed(seed)
    probe = Trainer(model_fn(), loss_fn, train_data, val_data, batch_size=chosen_batch, seed=seed,
                    augment=augment, progress=False, device=run_device)  # fmt: skip
    range_test = probe.lr_find(val_data=probe.val_loader)
    if range_test.max_lr is None and range_test.failure in SWEEP_FURTHER:
        # a loss still falling (or flat) at LR 10: BatchNorm networks can keep improving there
        # (the super-convergence regime), badly scaled ones only start to; sweep two decades
        # further, at the same density of points, instead of giving up
        first_reason = range_test.reason
        range_test = probe.lr_find(val_data=probe.val_loader, end_lr=1000.0, num_steps=125)
        range_test_note = f"first sweep to LR 10: {first_reason}; swept again to LR 1000"
    else:
        range_test_note = ""
    if range_test.max_lr is None:
        raise ValueError(f"max_lr: the LR range test found none ({range_test.reason})")
    range_tests: dict[str, RangeTestResult] = {"weight decay 0 (bounds)": range_test}
    short_epochs = max(1, math.ceil(budget_fraction * epochs))

    def job(wd: float, mom: Any, peak: float) -> tuple[Any, ...]:
        return (model_fn, loss_fn, train_data, val_data, chosen_batch, short_epochs, peak,
                peak / 10, wd, mom, seed, augment)  # fmt: skip

    # the range test's minimum/10 is safe but can be timid at large batches (docs/benchmarks.md):
    # settle max_lr by short runs among minimum/10, /5 and /3, all well below the divergence point
    lowest = 10 * range_test.max_lr
    ceiling = (range_test.suggestions.get("divergence") or math.inf) / 2
    lr_candidates = sorted({min(lowest / d, ceiling) for d in LR_DIVISORS})
    lr_runs = _run_many([job(0.0, momentum, peak) for peak in lr_candidates], workers)
    losses = {peak: r["val_loss"] for peak, r in zip(lr_candidates, lr_runs, strict=True)}
    chosen, lr_why = choose_max_lr(losses)
    # the winner at the low edge of the grid (or nothing finite): the range test may have pointed
    # too high (raw pixels, one seed in three); look lower while lower keeps doing better. The
    # winner at the high edge: minimum/3 is timid at large batches (MNIST at batch 512 on a GPU:
    # 0.0556 won by 17%); look higher while higher keeps winning by the safety margin
    extended: list[float] = []
    extended_above: list[float] = []
    # upwards, no further than the range test's lowest-loss LR: past it the loss was rising (a
    # GPU CIFAR-10 run climbed to 1.3x it, won the short runs and lost 5 points in the final run)
    upper = min(ceiling, lowest)
    for _ in range(LR_EXTENSIONS):
        lower = lower_candidate(losses, chosen)
        candidate = lower if lower is not None else higher_candidate(losses, chosen, upper)
        if candidate is None:
            break
        result = _run_many([job(0.0, momentum, candidate)], 1)[0]
        lr_runs.append(result)
        lr_candidates.append(candidate)
        losses[candidate] = loss = result["val_loss"]
        if lower is not None:
            extended.append(lower)
            current = math.inf if chosen is None else losses[chosen]
            if not (math.isfinite(loss) and loss < current):  # lower is safer: any gain will do
                break
            chosen, lr_why = (
                lower,
                f"{lower:.3g}: below the grid, a lower validation loss than above",
            )
        else:
            assert chosen is not None  # higher_candidate needs a winner to look above
            extended_above.append(candidate)
            # higher is riskier: the same margin as inside the grid
            winner, why = choose_max_lr({chosen: losses[chosen], candidate: loss})
            if winner != candidate:
                break
            chosen, lr_why = candidate, f"above the grid, {why}"
    max_lr = range_test.max_lr if chosen is None else chosen
    min_lr = max_lr / 10
    ranking = ", ".join(f"{peak:.3g}: {losses[peak]:.4f}" for peak in lr_candidates)
    evidence.append(_step("lr_bounds", {"max_lr": max_lr, "min_lr": min_lr},
                          f"range test: {range_test_note + '; ' if range_test_note else ''}"
                          f"{range_test.reason}; short runs at lowest-loss LR "
                          f"/{'/'.join(f'{d:g}' for d in LR_DIVISORS)} → validation loss {ranking}; "
                          f"chosen {lr_why}",
                          time.perf_counter() - start, suggestions=range_test.suggestions,
                          extended_below=extended, extended_above=extended_above,
                          short_runs={f"{p:.4g}": r for p, r in zip(lr_candidates, lr_runs, strict=True)},
                          confidence=None if range_test.confidence is None else asdict(range_test.confidence),
                          superconvergence=None if range_test.superconvergence is None
                          else range_test.superconvergence.explanation))  # fmt: skip

    # 3. weight decay: a range test per candidate (the curves), then short 1cycle runs (the choice)
    start = time.perf_counter()
    for wd in weight_decays:
        torch.manual_seed(seed)
        trial = Trainer(model_fn(), loss_fn, train_data, batch_size=chosen_batch, weight_decay=wd,
                        seed=seed, augment=augment, progress=False, device=run_device)  # fmt: skip
        range_tests[f"weight decay {wd:g}"] = trial.lr_find()

    candidates = list(dict.fromkeys(float(w) for w in weight_decays))
    outcomes = dict(
        zip(
            candidates,
            _run_many([job(wd, momentum, max_lr) for wd in candidates], workers),
            strict=True,
        )
    )
    middle = weight_decay_midpoint({wd: o["val_loss"] for wd, o in outcomes.items()})
    if middle is not None:
        outcomes[middle] = _run_many([job(middle, momentum, max_lr)], 1)[0]
    chosen_wd, wd_why = choose_weight_decay({wd: o["val_loss"] for wd, o in outcomes.items()})
    evidence.append(_step("weight_decay", chosen_wd, wd_why, time.perf_counter() - start,
                          short_run_epochs=short_epochs, midpoint=middle,
                          runs={f"{wd:g}": o for wd, o in outcomes.items()}))  # fmt: skip

    # 4. momentum
    start = time.perf_counter()
    chosen_momentum: tuple[float, float] | float = tuple(momentum)  # type: ignore[assignment]
    momentum_why = "cyclical momentum (high while the LR is low), the paper's default"
    momentum_runs: dict[str, Any] = {}
    if compare_momentum:
        options: list[tuple[float, float] | float] = [tuple(momentum), *CONSTANT_MOMENTA]  # type: ignore[list-item]
        results = _run_many([job(chosen_wd, m, max_lr) for m in options], workers)
        momentum_runs = {str(m): r for m, r in zip(options, results, strict=True)}
        best = min(
            range(len(options)),
            key=lambda i: (
                results[i]["val_loss"] if math.isfinite(results[i]["val_loss"]) else math.inf
            ),
        )
        chosen_momentum = options[best]
        momentum_why = f"lowest validation loss among cyclical {tuple(momentum)} and constants {CONSTANT_MOMENTA}"
    evidence.append(_step("momentum", chosen_momentum, momentum_why, time.perf_counter() - start,
                          runs=momentum_runs))  # fmt: skip

    plan = TunePlan(epochs=epochs, batch_size=chosen_batch, max_lr=max_lr, min_lr=min_lr,
                    weight_decay=chosen_wd, momentum=chosen_momentum, seed=seed, evidence=evidence)  # fmt: skip

    # 5. the final run, 6. the diagnosis. A final run that falls apart where its short run (same
    # settings, fewer epochs) did not sits at the edge of stability: run it once more, lower
    start = time.perf_counter()
    history = plan.run(model_fn, train_data, val_data, test_data=test_data, out_dir=out_dir,
                       loss_fn=loss_fn, augment=augment, overwrite=overwrite)  # fmt: skip
    failure = final_run_failed(history.status, plan.results.get("final_val_loss"),
                               outcomes[chosen_wd]["val_loss"])  # fmt: skip
    if failure is not None:
        evidence.append(_step("final_run", f"{epochs} epochs of 1cycle at max_lr {max_lr:.3g}",
                              f"redone at max_lr / {RETRY_LR_DIVISOR:g}: {failure}",
                              time.perf_counter() - start, epochs=history.epochs))  # fmt: skip
        start = time.perf_counter()
        plan.max_lr, plan.min_lr = max_lr / RETRY_LR_DIVISOR, min_lr / RETRY_LR_DIVISOR
        # the first attempt's files in out_dir are this call's own: replace them
        history = plan.run(model_fn, train_data, val_data, test_data=test_data, out_dir=out_dir,
                           loss_fn=loss_fn, augment=augment, overwrite=True)  # fmt: skip
    evidence.append(_step("final_run", f"{epochs} epochs of 1cycle at max_lr {plan.max_lr:.3g}",
                          history.status, time.perf_counter() - start, epochs=history.epochs))  # fmt: skip
    verdict = plan.results["verdict"]
    evidence.append(_step("diagnosis", verdict["kind"], verdict["explanation"], 0.0,
                          next_step=verdict["next_step"]))  # fmt: skip
    plan.history = history  # type: ignore[attr-defined]
    plan.range_tests = range_tests  # type: ignore[attr-defined]
    return plan
