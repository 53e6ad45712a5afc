"""``cifar10-superconvergence``: one LR cycle against the usual schedules on CIFAR-10.

The published comparison (Smith's residual-network notebook; Smith & Topin, arXiv:1708.07120):
`cifar-resnet` trained on 10,000 CIFAR-10 images with a BatchNorm moving-average fraction of
0.95. Contenders, all at the same batch size and weight decay:

- one LR cycle 0.1 → 3.5 → 0.1 without momentum for E epochs (the published super-convergence
  run: a single triangular cycle, plain SGD);
- piecewise-constant 0.35 / 0.035 / 0.0035 (drops at 50% and 75%) for 8×E epochs, momentum 0.9;
- constant 0.35 with momentum 0.9 for E and for 1.5×E epochs (the piecewise run's first phase);
- Adam (lr 0.001) for E epochs;
- our recipe (`tune`) for E epochs, validated on 1,000 of the training images.

Published: super-convergent 0.8636 after 8 epochs vs piecewise-constant 0.5015 after 64
(overfit); constant 8 epochs 0.5656, 12 epochs 0.716; Adam 8 epochs 0.6429. Smith & Topin with
ResNet-56 on 10,000 images: 80.6% (one cycle, 10k iterations) vs 71.4% (piecewise, 80k).
No augmentation, as in the published runs whose piecewise baseline overfit.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from superconverge import schedules
from superconverge.data import ArrayData
from superconverge.experiments import cifar
from superconverge.experiments.curves import TestCurve, curve_trainer, head, split_tail
from superconverge.models import build

PUBLISHED = {
    "one cycle 0.1-3.5": (0.8636, "8 epochs"),
    "piecewise 0.35/0.035/0.0035": (0.5015, "64 epochs"),
    "constant 0.35 (E)": (0.5656, "8 epochs"),
    "constant 0.35 (1.5E)": (0.716, "12 epochs"),
    "Adam": (0.6429, "8 epochs"),
}
CONTENDERS = (*PUBLISHED, "recipe (tune)")


@dataclass(frozen=True)
class Settings:
    epochs: int = 8  # E
    width: float = 0.25  # of cifar-resnet: CPU-sized (the published network is width 1)
    blocks: int = 8
    batch_size: int = 128
    train_samples: int | None = None  # None: the whole archive (10,000)
    test_samples: int | None = None  # None: the whole test batch (1,000)
    seed: int = 0
    # None: the recipe validates on the last 10% of the training images (which the others also
    # train on); a count: the images right after the training ones are the validation set and
    # nobody trains on them, as Keras's validation_split=0.2 did (40,000 train / 10,000 val)
    val_samples: int | None = None
    piecewise_factor: int = 8  # the piecewise baseline runs this many times E epochs
    contenders: tuple[str, ...] = CONTENDERS  # which to run, in this order


FULL = Settings()  # CPU-sized: about 25 minutes on 2 cores
FULL_CUDA = Settings(width=1.0)  # the published width, chosen by the CLI when CUDA is available
QUICK = Settings(
    epochs=1, width=0.125, blocks=1, batch_size=64, train_samples=1024, test_samples=256
)


def _model(settings: Settings) -> torch.nn.Module:
    torch.manual_seed(settings.seed)
    return build(
        "cifar-resnet", width=settings.width, blocks=settings.blocks, bn_momentum=cifar.BN_MOMENTUM
    )


def _contender(
    name: str, train: ArrayData, val: ArrayData, test: ArrayData, settings: Settings, device: str
) -> dict[str, Any]:
    """One contender: final test accuracy, test accuracy after every epoch, wall time."""
    epochs = settings.epochs
    steps_per_epoch = math.ceil(len(train) / settings.batch_size)
    start = time.perf_counter()
    if name == "recipe (tune)":
        from superconverge.tuning import tune

        tuned = tune(
            lambda: _model(settings),
            train,
            val,
            epochs=epochs,
            test_data=test,
            seed=settings.seed,
            batch_size=settings.batch_size,
            device=device,
        )
        return {
            "accuracy": tuned.results.get("test", {}).get("accuracy", math.nan),
            # what its final run trained: the budget lengthens it (2E by default), and the
            # table said E
            "epochs": tuned.epochs,
            "curve": [],
            "max_lr": tuned.max_lr,
            "weight_decay": tuned.weight_decay,
            "optimizer": tuned.optimizer,
            "compute": tuned.compute,
            "status": tuned.results["status"],
            "seconds": time.perf_counter() - start,
        }
    if name.startswith("one cycle"):
        total = epochs * steps_per_epoch
        half = max(1, total // 2)  # one triangular cycle: 0.1 up to 3.5 and back
        plan = schedules.cyclic(0.1, 3.5, half, momentum=None, total_steps=total)
        optimizer: Any = cifar.sgd(0.0)
    elif name.startswith("piecewise"):
        epochs = settings.piecewise_factor * settings.epochs
        total = epochs * steps_per_epoch
        plan = schedules.piecewise_constant(
            [0.35, 0.035, 0.0035], [total // 2, (3 * total) // 4], total_steps=total
        )
        optimizer = cifar.sgd(0.9)
    elif name.startswith("constant"):
        epochs = settings.epochs if name.endswith("(E)") else math.ceil(1.5 * settings.epochs)
        plan, optimizer = schedules.constant(0.35), cifar.sgd(0.9)
    else:  # Adam, its default LR
        plan = schedules.constant(1e-3)
        optimizer = _adam
    curve = TestCurve(test)  # every epoch
    trainer = curve_trainer(
        _model(settings),
        train,
        optimizer,
        curve,
        batch_size=settings.batch_size,
        seed=settings.seed,
        device=device,
    )
    history = trainer.fit(epochs, plan)
    accuracy = curve.points[-1][-1] if history.status == "completed" and curve.points else math.nan
    return {
        "accuracy": accuracy,
        "epochs": epochs,
        "curve": curve.points,
        "max_lr": plan.max_lr,
        "status": history.status,
        "seconds": time.perf_counter() - start,
    }


def _adam(groups: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(groups, lr=1e-3, weight_decay=cifar.WEIGHT_DECAY)


def run(
    out: Path,
    settings: Settings,
    data_dir: str | None = None,
    device: str = "auto",
    experiment: str = "cifar10-superconvergence",
) -> dict[str, Any]:
    """Run every contender; write ``results.md``, ``results.json`` and ``accuracy.png``, which
    name the `experiment` (``cifar10-full`` runs this one on the full archive).

    ``results.json`` is rewritten after each contender, and a contender already recorded there
    under the same settings is not run again: an interrupted run resumes where it stopped.
    """
    device = cifar.pick_device(device)
    everything, test = cifar.load_cifar10(data_dir, data_dir)
    train, test = head(everything, settings.train_samples), head(test, settings.test_samples)
    if settings.val_samples is None:
        held = max(1, len(train) // 10)  # the recipe compares candidates on validation data
        fit_part, val = split_tail(train, held)
    else:
        fit_part, val = train, _slice(everything, len(train), len(train) + settings.val_samples)
        if len(val) < settings.val_samples:
            raise ValueError(
                f"val_samples={settings.val_samples} needs {len(train) + settings.val_samples} "
                f"training images; {data_dir} has {len(everything)}"
            )
    environment = {
        "experiment": experiment,
        "device": device,
        "torch": torch.__version__,
        "train": len(train),
        "val": len(val),
        "test": len(test),
        "threads": torch.get_num_threads(),
    }
    results = _resume(out / "results.json", settings)
    for name in settings.contenders:
        if name in results:
            continue
        data = fit_part if name == "recipe (tune)" else train
        results[name] = _contender(name, data, val, test, settings, device)
        _write(out, settings, environment, results)
    _write(out, settings, environment, results)
    return results


def _slice(data: ArrayData, start: int, stop: int) -> ArrayData:
    return ArrayData(data.inputs[start:stop], data.targets[start:stop])


def recorded_runs(out: Path, settings: Settings) -> int:
    """How many contenders `run` would keep from ``out/results.json`` (`reproduce --resume`)."""
    return len(_resume(out / "results.json", settings))


def _resume(path: Path, settings: Settings) -> dict[str, Any]:
    """The contenders recorded at `path` that `settings` would run the same way.

    The settings must match but for ``contenders`` (a later call may run others) and
    ``piecewise_factor``, which only the piecewise contender reads: its row is kept only when
    its recorded epochs are ``piecewise_factor * epochs``.
    """
    if not path.is_file():
        return {}
    saved = json.loads(path.read_text())
    mine = json.loads(json.dumps(asdict(settings)))
    theirs = dict(saved.get("settings", {}))
    for key in ("contenders", "piecewise_factor"):
        mine.pop(key), theirs.pop(key, None)
    if theirs != mine:
        return {}
    results = dict(saved.get("results", {}))
    piecewise = results.get("piecewise 0.35/0.035/0.0035")
    if piecewise is not None and piecewise["epochs"] != settings.piecewise_factor * settings.epochs:
        del results["piecewise 0.35/0.035/0.0035"]
    return results


def _write(
    out: Path, settings: Settings, environment: dict[str, Any], results: dict[str, Any]
) -> None:
    cifar.write_results(
        out, settings, environment, "results", results, _table,
        lambda rows, settings: _plot(rows, settings, environment),
    )  # fmt: skip


def _table(results: dict[str, Any], settings: Settings, environment: dict[str, Any]) -> str:
    lines = [
        f"# {environment.get('experiment', 'cifar10-superconvergence')}: cifar-resnet width "
        f"{settings.width}, {settings.blocks} blocks, "
        f"batch {settings.batch_size}, E = {settings.epochs}, {environment['train']} training / "
        f"{environment['test']} test images, {environment['device']}",
        "",
        "| contender | epochs | test accuracy | published | wall time (s) |",
        "|---|---|---|---|---|",
    ]
    for name in settings.contenders:
        if name not in results:
            lines.append(f"| {name} | - | not run | - | - |")
            continue
        row = results[name]
        accuracy = row["accuracy"]
        shown = f"{accuracy:.4f}" if math.isfinite(accuracy) else row.get("status", "diverged")
        published = PUBLISHED.get(name)
        cited = f"{published[0]} ({published[1]})" if published else "-"
        lines.append(f"| {name} | {row['epochs']} | {shown} | {cited} | {row['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def _plot(results: dict[str, Any], settings: Settings, environment: dict[str, Any]) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 4.5), layout="constrained")
    ax = fig.subplots()
    for name in settings.contenders:
        if name not in results:
            continue
        curve = results[name].get("curve") or []
        if curve:
            ax.plot([p[0] for p in curve], [p[-1] for p in curve], marker=".", label=name)
        elif math.isfinite(results[name]["accuracy"]):
            # the recipe trains on what it does not validate on: 90% of the training images,
            # or all of them where a validation split is set apart (cifar10-full)
            trained = environment.get("train", settings.train_samples or 10_000) - (
                environment.get("val", 0) if settings.val_samples is None else 0
            )
            steps = results[name]["epochs"] * math.ceil(trained / settings.batch_size)
            ax.scatter([steps], [results[name]["accuracy"]], marker="*", s=120, label=name)
    ax.set_xscale("log")
    cifar.finish_axes(ax, "optimizer step (log)", "test accuracy")
    fig.suptitle(
        f"{environment.get('experiment', 'cifar10-superconvergence')}: cifar-resnet width "
        f"{settings.width}, E = {settings.epochs}"
    )
    return fig
