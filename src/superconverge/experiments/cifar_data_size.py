"""``cifar10-data-size``: one LR cycle against piecewise-constant as the training set shrinks.

Smith & Topin (arXiv:1708.07120, Table 1) trained ResNet-56 on 50k / 40k / 30k / 20k / 10k
CIFAR-10 images: one cycle (10k iterations) reached 92.4 / 91.1 / 89.6 / 87.9 / 80.6% against
piecewise-constant's (80k iterations) 91.2 / 89.1 / 85.7 / 82.7 / 71.4%: the gain grows as the
data shrink. Their Caffe solvers (github.com/lnsmith54/super-convergence): total batch 1,000
(125 on each of 8 GPUs), weight decay 1e-4, momentum 0.9, horizontal flips; the cycle
triangular 0.1 → 3.0 → 0.1 over 10,000 iterations, the baseline 0.35 divided by 10 at 50,000
and 70,000 of 80,000 iterations.

Every (size, seed, policy) run trains from the seed's initial weights on the first `size`
training images and records the test accuracy on all test images every `test_every` steps and
at the end. Both policies run a fixed number of optimizer steps whatever the size, as in the
paper; the baseline runs `piecewise_factor` times as many as the cycle. `results.json` is
rewritten after every run and finished runs are not repeated, so an interrupted sweep resumes.

`FULL` is the CPU protocol (one shared CPU thread; see docs/benchmarks.md for what it scales
down), `FULL_CUDA` the published one on the `resnet56` network.
"""

from __future__ import annotations

import json
import math
import statistics
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from superconverge import schedules
from superconverge.data import ArrayData, Augment
from superconverge.experiments import cifar
from superconverge.experiments.curves import TestCurve, curve_trainer, head
from superconverge.models import build
from superconverge.training import Trainer

# Smith & Topin, Table 1: training images -> (one cycle, piecewise-constant) test accuracy, %
PUBLISHED = {
    50_000: (92.4, 91.2),
    40_000: (91.1, 89.1),
    30_000: (89.6, 85.7),
    20_000: (87.9, 82.7),
    10_000: (80.6, 71.4),
}
POLICIES = ("one cycle", "piecewise")


@dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...] = (10_000, 50_000)  # training images (the first `size` of the 50,000)
    seeds: int = 3  # seeds 0, 1, ..., seeds - 1 (the CLI's --seeds)
    model: str = "cifar-resnet"  # or "resnet56", the paper's network
    width: float = 0.125  # of cifar-resnet (ignored for resnet56)
    blocks: int = 2  # of cifar-resnet (ignored for resnet56)
    batch_size: int = 32
    cycle_steps: int = 1_000  # optimizer steps of the one-cycle run (the paper: 10,000)
    piecewise_factor: int = 4  # the baseline runs this many times cycle_steps (the paper: 8)
    # the cycle: min_lr -> max_lr -> min_lr, triangular, SGD with `cycle_momentum`
    cycle_lrs: tuple[float, float] = (0.1, 3.5)
    cycle_momentum: float = 0.0
    # the baseline: base_lr, divided by 10 at each fraction of its steps, momentum 0.9
    piecewise_lr: float = 0.35
    piecewise_drops: tuple[float, ...] = (0.5, 0.75)
    flip: bool = False  # random horizontal flips (the paper's Caffe runs mirrored)
    test_every: int = 500  # optimizer steps between test evaluations
    test_samples: int | None = None  # None: all 10,000
    bn_momentum: float = cifar.BN_MOMENTUM


# One CPU thread: the schedules the seeds' Keras notebook published for batch 32 (0.1-3.5
# without momentum; 0.35/0.035/0.0035 with momentum 0.9 at 50%/75%), a narrow network, two sizes.
# 2,500 cycle steps are 8 passes over 10k images and the baseline's 10,000 are 32 (room to overfit
# them, which this small network did not), about an hour on one core; 250 steps saw no image twice
FULL = Settings(cycle_steps=2_500, test_every=500)
# The paper's protocol: ResNet-56, batch 1,000, the Caffe solvers, five sizes, three seeds
FULL_CUDA = Settings(
    sizes=(10_000, 20_000, 30_000, 40_000, 50_000),
    model="resnet56",
    batch_size=1_000,
    cycle_steps=10_000,
    piecewise_factor=8,
    cycle_lrs=(0.1, 3.0),
    cycle_momentum=0.9,
    piecewise_drops=(0.625, 0.875),
    flip=True,
    test_every=1_000,
    bn_momentum=0.05,
)
QUICK = Settings(
    sizes=(256, 512),
    seeds=2,
    width=0.125,
    blocks=1,
    batch_size=32,
    cycle_steps=8,
    piecewise_factor=2,
    test_every=4,
    test_samples=128,
)


def _model(settings: Settings, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    if settings.model == "resnet56":  # the paper's network: 16-32-64 channels, 27 blocks
        return build("resnet56", bn_momentum=settings.bn_momentum)
    return build(
        settings.model,
        width=settings.width,
        blocks=settings.blocks,
        bn_momentum=settings.bn_momentum,
    )


def _plan(policy: str, settings: Settings) -> tuple[Any, float]:
    """(the LR plan, SGD momentum) of `policy` under `settings`."""
    if policy == "one cycle":
        low, high = settings.cycle_lrs
        total = settings.cycle_steps
        plan = schedules.cyclic(low, high, max(1, total // 2), momentum=None, total_steps=total)
        return plan, settings.cycle_momentum
    total = settings.piecewise_factor * settings.cycle_steps
    values = [settings.piecewise_lr / 10**i for i in range(len(settings.piecewise_drops) + 1)]
    drops = [round(fraction * total) for fraction in settings.piecewise_drops]
    return schedules.piecewise_constant(values, drops, total_steps=total), 0.9


def one_run(
    train: ArrayData, test: ArrayData, policy: str, seed: int, settings: Settings, device: str
) -> dict[str, Any]:
    """Train `policy` from seed `seed`: final test accuracy, its curve, steps, samples, seconds."""
    plan, momentum = _plan(policy, settings)
    steps_per_epoch = math.ceil(len(train) / settings.batch_size)
    epochs = math.ceil(plan.total_steps / steps_per_epoch)
    curve = _StopAt(test, settings.test_every, plan.total_steps)
    trainer = curve_trainer(
        _model(settings, seed),
        train,
        cifar.sgd(momentum),
        curve,
        batch_size=settings.batch_size,
        seed=seed,
        device=device,
        augment=Augment(crop_padding=0, flip=True) if settings.flip else None,
    )
    start = time.perf_counter()
    status = "completed"
    try:
        with warnings.catch_warnings():  # the fit's whole epochs outlast the plan: _StopAt ends it
            warnings.filterwarnings("ignore", message="the plan has")
            history = trainer.fit(epochs, plan)
        status = history.status
    except _Done:
        pass
    accuracy = curve.points[-1][-1] if status == "completed" and curve.points else math.nan
    return {
        "accuracy": accuracy,
        "status": status,
        "steps": curve.steps,
        "samples": curve.steps * settings.batch_size,
        "curve": curve.points,
        "seconds": time.perf_counter() - start,
    }


class _Done(Exception):
    """Raised by `_StopAt` once the plan's steps are done (the loop has no mid-epoch stop)."""


class _StopAt(TestCurve):
    """`TestCurve` that also records the last step and ends the fit there, mid-epoch if need be."""

    def __init__(self, test: Any, every: int, total_steps: int) -> None:
        super().__init__(test, every)
        self.total_steps = total_steps

    def on_step_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        super().on_step_end(trainer, step, loss)
        if self.steps >= self.total_steps:
            if not self.points or self.points[-1][0] != self.steps:
                self._record(trainer)
            raise _Done


def run(
    out: Path, settings: Settings, data_dir: str | None = None, device: str = "auto"
) -> dict[str, Any]:
    """Every (size, seed, policy) run; writes ``results.json``, ``results.md``, ``accuracy.png``.

    `data_dir` defaults to ``$SUPERCONVERGE_DATA/cifar10-full``.
    """
    device = cifar.pick_device(device)
    everything, test = cifar.load_cifar10(cifar.data_root(data_dir), data_dir)
    too_big = [size for size in settings.sizes if size > len(everything)]
    if too_big:
        raise ValueError(f"sizes {too_big} exceed the {len(everything)} training images")
    test = head(test, settings.test_samples)
    environment = {
        "device": device,
        "torch": torch.__version__,
        "test": len(test),
        "threads": torch.get_num_threads(),
    }
    runs = _resume(out / "results.json", settings)
    for size in settings.sizes:
        train = head(everything, size)
        for seed in range(settings.seeds):
            for policy in POLICIES:
                key = _key(size, seed, policy)
                if key not in runs:
                    runs[key] = {
                        "size": size,
                        "seed": seed,
                        "policy": policy,
                        **one_run(train, test, policy, seed, settings, device),
                    }
                    _write(out, settings, environment, runs)
    _write(out, settings, environment, runs)
    return runs


def _key(size: int, seed: int, policy: str) -> str:
    return f"{size}/{seed}/{policy}"


def recorded_runs(out: Path, settings: Settings) -> int:
    """How many runs `run` would keep from ``out/results.json`` (`reproduce --resume`)."""
    return len(_resume(out / "results.json", settings))


def _resume(path: Path, settings: Settings) -> dict[str, Any]:
    if not path.is_file():
        return {}
    saved = json.loads(path.read_text())
    same = saved.get("settings") == json.loads(json.dumps(asdict(settings)))
    return dict(saved.get("runs", {})) if same else {}


def _write(
    out: Path, settings: Settings, environment: dict[str, Any], runs: dict[str, Any]
) -> None:
    cifar.write_results(out, settings, environment, "runs", runs, table, _plot)


def summary(runs: dict[str, Any], size: int, policy: str) -> tuple[float, float, int, int]:
    """(mean, sample sd, finished runs, runs) of the final test accuracy of `policy` at `size`."""
    rows = [r for r in runs.values() if r["size"] == size and r["policy"] == policy]
    finals = [r["accuracy"] for r in rows if math.isfinite(r["accuracy"])]
    mean = statistics.fmean(finals) if finals else math.nan
    sd = statistics.stdev(finals) if len(finals) > 1 else math.nan
    return mean, sd, len(finals), len(rows)


def table(runs: dict[str, Any], settings: Settings, environment: dict[str, Any]) -> str:
    """The sweep as a markdown table: mean ± sd over seeds, with the paper's numbers."""
    net = (
        "resnet56"
        if settings.model == "resnet56"
        else f"{settings.model} width {settings.width}, {settings.blocks} blocks"
    )
    cycle, baseline = settings.cycle_steps, settings.piecewise_factor * settings.cycle_steps
    lines = [
        f"# cifar10-data-size: {net}, batch {settings.batch_size}, one cycle {cycle} steps vs "
        f"piecewise {baseline} steps, seeds 0-{settings.seeds - 1}, {environment['test']} test "
        f"images, {environment['device']}",
        "",
        "| training images | one cycle (mean ± sd) | piecewise (mean ± sd) | difference | "
        "published (cycle / piecewise) | runs finished |",
        "|---|---|---|---|---|---|",
    ]
    for size in settings.sizes:
        cells = [summary(runs, size, policy) for policy in POLICIES]
        shown = [
            f"{100 * mean:.1f} ± {100 * sd:.1f}" if math.isfinite(sd) else f"{100 * mean:.1f}"
            for mean, sd, _, _ in cells
        ]
        difference = 100 * (cells[0][0] - cells[1][0])
        published = PUBLISHED.get(size)
        cited = f"{published[0]} / {published[1]}" if published else "-"
        done = " / ".join(f"{finished}/{total}" for _, _, finished, total in cells)
        lines.append(
            f"| {size:,} | {shown[0]} | {shown[1]} | {difference:+.1f} | {cited} | {done} |"
        )
    return "\n".join(lines) + "\n"


def _plot(runs: dict[str, Any], settings: Settings) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 4.5), layout="constrained")
    ax = fig.subplots()
    for policy, marker in zip(POLICIES, "os", strict=True):
        means, sds, sizes = [], [], []
        for size in settings.sizes:
            mean, sd, finished, _ = summary(runs, size, policy)
            if finished:
                sizes.append(size)
                means.append(100 * mean)
                sds.append(100 * sd if math.isfinite(sd) else 0.0)
        if sizes:
            ax.errorbar(sizes, means, yerr=sds, marker=marker, capsize=3, label=f"{policy} (ours)")
        published = sorted(PUBLISHED)
        ax.plot(
            published,
            [PUBLISHED[s][POLICIES.index(policy)] for s in published],
            linestyle=":",
            marker=marker,
            alpha=0.5,
            label=f"{policy} (Smith & Topin, ResNet-56)",
        )
    cifar.finish_axes(ax, "training images", "test accuracy (%)")
    fig.suptitle("cifar10-data-size: one cycle vs piecewise-constant, mean ± sd over seeds")
    return fig
