"""``mnist-clr``: the published Keras comparison of CLR, Adam and SGD on MNIST, re-run.

The original (a Keras notebook accompanying the CLR paper, arXiv:1506.01186): the small CNN
(`mnist-cnn`, Keras initialisation), one epoch, batch 32, categorical cross-entropy, raw 0-255
pixels; test accuracy CLR 0.9664, Adam 0.9705, SGD 0.9630. We add our 1cycle (max_lr from the
range test) and the recipe (`tune`, one epoch), and run both raw and [0, 1]-scaled inputs.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from superconverge import schedules
from superconverge._files import write_atomically, write_text_atomically
from superconverge.data import ArrayData, load
from superconverge.experiments.curves import TestCurve, curve_trainer, head, split_tail
from superconverge.models import build

PUBLISHED = {"CLR": 0.9664, "Adam": 0.9705, "SGD": 0.9630}
BATCH = 32
CONTENDERS = ("CLR", "Adam", "SGD", "1cycle (range test)", "recipe (tune)")
SCALINGS = ("raw", "unit")
SCALING_NAMES = {"raw": "raw", "unit": "[0, 1]"}
CHANCE_LEVEL = 0.2  # test accuracy below it: a run that learnt (next to) nothing; 10 classes


@dataclass(frozen=True)
class Settings:
    seeds: int = 3
    train_samples: int | None = None  # None: all 60,000 (no validation split, as published)
    test_samples: int | None = None
    evaluations: int = 10  # test-accuracy points along the epoch, for the curves


QUICK = Settings(seeds=1, train_samples=3000, test_samples=1000, evaluations=4)
FULL = Settings()


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build("mnist-cnn", init="keras")


def _contender(
    name: str, seed: int, train: ArrayData, val: ArrayData, test: ArrayData, settings: Settings
) -> dict[str, Any]:
    """One contender, one seed: final test accuracy, the curve, and the LR it used."""
    steps = math.ceil(len(train) / BATCH)
    curve = TestCurve(test, steps // settings.evaluations)
    start = time.perf_counter()
    if name == "recipe (tune)":
        from superconverge.tuning import tune

        # the published batch, as for every contender: a timing-chosen batch would make the
        # reproduction depend on the machine's load
        tuned = tune(
            lambda: _model(seed),
            train,
            val,
            epochs=1,
            test_data=test,
            seed=seed,
            batch_size=BATCH,
            callbacks=[curve],  # the final run's curve (the budget may lengthen it)
        )
        accuracy = tuned.results.get("test", {}).get("accuracy", math.nan)  # NaN: diverged
        return {
            "accuracy": accuracy,
            "curve": curve.points,
            "max_lr": tuned.max_lr,
            "status": tuned.results["status"],
            "batch_size": tuned.batch_size,
            "epochs": tuned.epochs,  # its final run's: the budget lengthens it
            "samples": tuned.compute.get("total_samples"),  # search and final run
            "seconds": time.perf_counter() - start,
        }
    optimizer = "adam" if name == "Adam" else "sgd"
    trainer = curve_trainer(_model(seed), train, optimizer, curve, batch_size=BATCH, seed=seed)
    if name == "CLR":  # triangular 0.0005-0.002, momentum 0.95 -> 0.8, step size 40 iterations
        plan = schedules.cyclic(0.0005, 0.002, 40, momentum=(0.95, 0.8), total_steps=steps)
        history, max_lr = trainer.fit(1, plan), 0.002
    elif name == "Adam":
        history, max_lr = trainer.fit(1, schedules.constant(1e-3)), 1e-3
    elif name == "SGD":
        history, max_lr = trainer.fit(1, schedules.constant(0.001, momentum=0.8)), 0.001
    else:
        result = trainer.lr_find()
        if result.max_lr is None:
            return {
                "accuracy": math.nan,
                "curve": [],
                "max_lr": None,
                "note": result.reason,
                "seconds": time.perf_counter() - start,
            }
        history, max_lr = trainer.fit_one_cycle(1, result.max_lr), result.max_lr
    accuracy = trainer.evaluate(test)["accuracy"] if history.status == "completed" else math.nan
    return {
        "accuracy": accuracy,
        "curve": curve.points,
        "max_lr": max_lr,
        "status": history.status,
        "seconds": time.perf_counter() - start,
    }


def run(out: Path, settings: Settings, data_dir: str | None = None) -> dict[str, Any]:
    """Run every contender on both input scalings for `settings.seeds` seeds; write the table
    (``results.md``, ``results.json``) and the curves (``accuracy.png``) into `out`.

    ``results.json`` is rewritten after each run, and a run already recorded there under the
    same settings is not run again: an interrupted run resumes where it stopped.
    """
    results = _resume(out / "results.json", settings)
    for scaling in SCALINGS:
        splits = load("mnist", data_dir, val_fraction=0.0, normalize=scaling)
        train, test = splits.train, splits.test
        assert test is not None
        train, test = head(train, settings.train_samples), head(test, settings.test_samples)
        # the recipe needs validation data to compare candidates: the last 5,000 training images
        held = min(5000, len(train) // 10)
        fit_part, val = split_tail(train, held)
        for name in CONTENDERS:
            runs = results.setdefault(scaling, {}).setdefault(name, [])
            for seed in range(len(runs), settings.seeds):  # those recorded are kept
                data = fit_part if name == "recipe (tune)" else train
                runs.append(_contender(name, seed, data, val, test, settings))
                _write_json(out, settings, results)
    _write_json(out, settings, results)
    write_text_atomically(out / "results.md", _table(results, settings))
    figure = _plot(results)
    write_atomically(out / "accuracy.png", lambda f: figure.savefig(f, dpi=110, format="png"))
    return results


def _write_json(out: Path, settings: Settings, results: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    record = {"settings": asdict(settings), "results": results}
    write_text_atomically(out / "results.json", json.dumps(record, indent=1))


def recorded_runs(out: Path, settings: Settings) -> int:
    """How many runs `run` would keep from ``out/results.json`` (`reproduce --resume`)."""
    kept = _resume(out / "results.json", settings)
    return sum(len(runs) for contenders in kept.values() for runs in contenders.values())


def _resume(path: Path, settings: Settings) -> dict[str, Any]:
    """The runs recorded at `path` under the same `settings` (each contender's seeds in order,
    as `run` makes them), else none."""
    if not path.is_file():
        return {}
    saved = json.loads(path.read_text())
    if saved.get("settings") != json.loads(json.dumps(asdict(settings))):
        return {}
    return dict(saved.get("results", {}))


def _mean_sd(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "diverged"
    if len(finite) == 1:  # one seed has no spread to show
        text = f"{finite[0]:.4f}"
    else:
        text = f"{statistics.mean(finite):.4f} ± {statistics.stdev(finite):.4f}"
    notes = []
    if len(finite) < len(values):
        notes.append(f"{len(values) - len(finite)} diverged")
    chance = sum(v < CHANCE_LEVEL for v in finite)  # learnt nothing: too few steps, or too hot
    if chance:
        notes.append("at chance" if chance == len(values) else f"{chance} at chance")
    return text + (f" ({', '.join(notes)})" if notes else "")


def _lrs(results: dict[str, Any], name: str) -> str:
    """The max_lr each run used, per input scaling, in seed order (the recipe's vary)."""
    parts = []
    for scaling in SCALINGS:
        lrs = [f"{r['max_lr']:.3g}" for r in results[scaling][name] if r.get("max_lr")]
        if lrs:
            parts.append((SCALING_NAMES[scaling], lrs))
    if len({tuple(lrs) for _, lrs in parts}) <= 1:  # the same on both: said once
        return ", ".join(parts[0][1]) if parts else ""
    return "; ".join(f"{label}: {', '.join(lrs)}" for label, lrs in parts)


def _count(samples: int | None) -> str:
    return "all" if samples is None else f"{samples:,}"


def _table(results: dict[str, Any], settings: Settings) -> str:
    spread = f"mean ± sd over {settings.seeds} seeds" if settings.seeds > 1 else "one seed"
    lines = [
        f"# mnist-clr: test accuracy after one epoch, batch {BATCH} ({spread})",
        "",
    ]
    if settings.train_samples is not None or settings.test_samples is not None:
        lines += [
            f"**A reduced run** ({_count(settings.train_samples)} training, "
            f"{_count(settings.test_samples)} test images; `--quick`): not comparable with the "
            "published column, which is one epoch over all 60,000 training images.",
            "",
        ]
    lines += [
        "| contender | published (raw pixels) | raw 0-255 | [0, 1] | max_lr |",
        "|---|---|---|---|---|",
    ]
    for name in CONTENDERS:
        raw = [r["accuracy"] for r in results["raw"][name]]
        unit = [r["accuracy"] for r in results["unit"][name]]
        published = PUBLISHED.get(name)
        lines.append(
            f"| {name} | {published if published else '-'} | {_mean_sd(raw)} | {_mean_sd(unit)} | {_lrs(results, name)} |"
        )
    return "\n".join(lines) + "\n" + _recipe_note(results)


def _recipe_note(results: dict[str, Any]) -> str:
    """What the recipe's final run trained where it was not the one epoch of the heading (the
    budget lengthens it, 2 epochs by default): the table said nothing of it."""
    runs = [run for scaling in results.values() for run in scaling.get("recipe (tune)", [])]
    epochs = sorted({run["epochs"] for run in runs if run.get("epochs", 1) != 1})
    if not epochs:
        return ""
    samples = []  # per scaling: "raw 5,400"
    for scaling in SCALINGS:
        counts = [r["samples"] for r in results.get(scaling, {}).get("recipe (tune)", [])]
        if counts := [f"{count:,}" for count in sorted(set(counts)) if count]:  # seeds alike
            samples.append(f"{SCALING_NAMES[scaling]} {', '.join(counts)}")
    spent = f" (training samples, its search's included: {'; '.join(samples)})"
    return (
        f"\nThe recipe's final run trained {' or '.join(map(str, epochs))} epochs"
        f"{spent if samples else ''}, not one: `tune` spends its budget (2x one run) on a longer "
        "final run. The others trained one epoch.\n"
    )


def _plot(results: dict[str, Any]) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.0, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, scaling in zip(axes, SCALINGS, strict=True):
        for name in CONTENDERS:
            curve = results[scaling][name][0].get("curve") or []
            if curve:
                ax.plot([p[0] for p in curve], [p[-1] for p in curve], marker="o", label=name)
        ax.set_title(f"inputs: {'raw 0-255' if scaling == 'raw' else '[0, 1]'} (seed 0)")
        ax.set_xlabel("optimizer step")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    axes[0].legend(fontsize=8)
    fig.suptitle("mnist-clr: one epoch, batch 32, mnist-cnn with Keras initialisation")
    return fig
