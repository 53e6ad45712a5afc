"""Time to accuracy: the super-convergence claim as a number.

For each data set, every policy trains from the same initial weights while the test accuracy is
measured along the run. The target is the best baseline's final test accuracy; the table gives
the optimizer steps and the training wall time (evaluations excluded) each policy needs to first
reach it, and the speed-up: the best baseline's steps (or seconds) to its own final accuracy
divided by the policy's. The paper's claim: 10k vs 80k iterations, 8x.

Policies on digits and MNIST (batch 128, weight decay 1e-4, E epochs for 1cycle, 8E for the rest):
- 1cycle: the range test's max_lr (minimum/10), the paper's 1cycle (smith policy), E epochs;
  its seconds include the range test;
- piecewise: SGD momentum 0.9, LR 0.1 / 0.01 / 0.001 dropping at 50% and 75%, 8E epochs;
- constant: SGD momentum 0.9, LR 0.1, 8E epochs; Adam: lr 0.001, 8E epochs.
CIFAR-10 is read from a `reproduce cifar10-superconvergence` run (its curves, one per epoch):

    SUPERCONVERGE_DATA=../shared/data python benchmarks/time_to_accuracy.py --data digits mnist \
        --cifar-results runs/reproduce-cifar10-superconvergence/results.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch

import superconverge as sc
from _common import machine, table
from superconverge.data import load
from superconverge.experiments.curves import TestCurve, first_reaching
from superconverge.models import build
from superconverge.training import Trainer

SETTINGS = {  # model, E (epochs of 1cycle), test points per epoch
    "digits": ("mlp", 10, 2),
    "mnist": ("mnist-cnn", 1, 4),
}
BATCH = 128
WEIGHT_DECAY = 1e-4
LOSS = torch.nn.functional.cross_entropy
BASELINES = ("piecewise", "constant", "Adam")


def _trainer(model_name: str, splits: Any, seed: int, optimizer: str, curve: TestCurve) -> Trainer:
    torch.manual_seed(seed)
    model = build(model_name, **({"in_features": 64} if model_name == "mlp" else {}))
    return Trainer(model, LOSS, splits.train, splits.val, batch_size=BATCH, optimizer=optimizer,
                   weight_decay=WEIGHT_DECAY, callbacks=[curve], seed=seed, progress=False)  # fmt: skip


def race(name: str, seed: int) -> dict[str, dict[str, Any]]:
    model_name, epochs, points = SETTINGS[name]
    splits = load(name)
    steps_per_epoch = math.ceil(len(splits.train) / BATCH)
    every = max(1, steps_per_epoch // points)
    runs: dict[str, dict[str, Any]] = {}
    for policy in ("1cycle", *BASELINES):
        curve = TestCurve(splits.test, every)
        trainer = _trainer(model_name, splits, seed, "adam" if policy == "Adam" else "sgd", curve)
        search = 0.0
        if policy == "1cycle":
            start = time.perf_counter()
            result = trainer.lr_find()
            search = time.perf_counter() - start
            trainer.fit_one_cycle(epochs, result.max_lr)
        else:
            total = 8 * epochs * steps_per_epoch
            plan = {
                "piecewise": sc.piecewise_constant(
                    [0.1, 0.01, 0.001], [total // 2, 3 * total // 4]
                ),
                "constant": sc.constant(0.1),
                "Adam": sc.constant(1e-3),
            }[policy]
            trainer.fit(8 * epochs, plan)
        runs[policy] = {"curve": curve.points, "search_seconds": search}
    return runs


def summarise(runs: dict[str, dict[str, Any]], baselines: tuple[str, ...]) -> dict[str, Any]:
    """Target, each policy's steps/seconds to it, and speed-ups against the best baseline."""
    finals = {p: runs[p]["curve"][-1][-1] for p in runs if runs[p]["curve"]}
    best = max(baselines, key=lambda p: finals.get(p, -1.0))
    target = finals[best]
    reference = first_reaching(runs[best]["curve"], target)
    assert reference is not None
    rows = {}
    for policy, run in runs.items():
        hit = first_reaching(run["curve"], target)
        extra = run.get("search_seconds", 0.0)
        rows[policy] = {
            "final": finals.get(policy, math.nan),
            "steps": None if hit is None else hit[0],
            "seconds": None if hit is None else hit[1] + extra,
            "step_speedup": None if hit is None else reference[0] / hit[0],
            "time_speedup": None if hit is None else (reference[1] + runs[best].get("search_seconds", 0.0)) / (hit[1] + extra),
        }  # fmt: skip
    return {"target": target, "best_baseline": best, "rows": rows}


def _cifar(path: Path) -> tuple[dict[str, dict[str, Any]], tuple[str, ...]]:
    results = json.loads(path.read_text())["results"]
    runs = {name: {"curve": row["curve"]} for name, row in results.items() if row.get("curve")}
    baselines = tuple(name for name in runs if not name.startswith("one cycle"))
    return runs, baselines


def _print(name: str, summaries: list[dict[str, Any]]) -> None:
    first = summaries[0]
    print(f"\n### {name}: target {first['target']:.4f} (final accuracy of {first['best_baseline']}"
          f"{'' if len(summaries) == 1 else ', seed 0'})\n")  # fmt: skip
    rows = []
    for policy in first["rows"]:
        cells = [s["rows"][policy] for s in summaries]
        reached = [c for c in cells if c["steps"] is not None]

        def median(key: str, cells: list[dict[str, Any]] = reached) -> float:
            return statistics.median(c[key] for c in cells)

        rows.append([
            policy,
            f"{statistics.median(c['final'] for c in cells):.4f}",
            f"{len(reached)}/{len(cells)}",
            f"{median('steps'):.0f}" if reached else "never",
            f"{median('seconds'):.1f}" if reached else "-",
            f"{median('step_speedup'):.2f}x" if reached else "-",
            f"{median('time_speedup'):.2f}x" if reached else "-",
        ])  # fmt: skip
    print(table(["policy", "final accuracy", "reached target", "steps to target",
                 "seconds to target", "speed-up (steps)", "speed-up (time)"], rows))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="*", default=["digits"], choices=sorted(SETTINGS))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--cifar-results", type=Path)
    parser.add_argument("--json", type=Path, help="also write every curve here")
    args = parser.parse_args()
    print(machine())
    print(f"batch {BATCH}, weight decay {WEIGHT_DECAY}; medians over {args.seeds} seed(s)")
    everything: dict[str, Any] = {}
    for name in args.data:
        per_seed = [race(name, seed) for seed in range(args.seeds)]
        everything[name] = per_seed
        _print(f"{name} ({SETTINGS[name][0]}, 1cycle {SETTINGS[name][1]} epochs, others "
               f"{8 * SETTINGS[name][1]})", [summarise(r, BASELINES) for r in per_seed])  # fmt: skip
    if args.cifar_results:
        runs, baselines = _cifar(args.cifar_results)
        everything["cifar10"] = [runs]
        _print("cifar10 (from the reproduction's curves, one point per epoch)",
               [summarise(runs, baselines)])  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
