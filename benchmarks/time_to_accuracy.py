"""Time to accuracy: the super-convergence claim as a number.

For each data set, every policy trains from the same initial weights while the test accuracy is
measured along the run. The target is the best baseline's final test accuracy; the table gives
the optimizer steps and the training wall time (evaluations excluded) each policy needs to first
reach it, and the speed-up: the best baseline's steps (or seconds) to its own final accuracy
divided by the policy's. The paper's claim: 10k vs 80k iterations, 8x.

Policies on digits and MNIST (batch 128, weight decay 1e-4, E epochs for 1cycle, 8E for the rest):
- 1cycle: the range test's max_lr (minimum/10), the paper's 1cycle (smith policy), E epochs;
  its seconds include the range test;
- piecewise: SGD momentum 0.9, LR r / (r/10) / (r/100) dropping at 50% and 75%, 8E epochs;
- constant: SGD momentum 0.9, LR r, 8E epochs; Adam: lr 0.001, 8E epochs;
with r = 0.1 on digits and 0.02 on MNIST (0.1 left mnist-cnn at chance in 2 of 3 seeds).
CIFAR-10 is read from a `reproduce cifar10-superconvergence` or `cifar10-full` run (its curves,
one per epoch), and from a `cifar10-data-size` sweep (one race per training-set size, each seed
a race; its curves have a point every `test_every` steps and at the end):

    SUPERCONVERGE_DATA=../shared/data python benchmarks/time_to_accuracy.py --data digits mnist \
        --cifar-results runs/reproduce-cifar10-superconvergence/results.json
    python benchmarks/time_to_accuracy.py --data --cifar-results runs/cifar-full/keras/results.json \
        --sweep-results runs/cifar-full/data-size/results.json
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

SETTINGS = {  # model, E (epochs of 1cycle), test points per epoch, the baselines' SGD LR
    "digits": ("mlp", 10, 2, 0.1),
    # 0.1 with momentum 0.9 left mnist-cnn at chance in 2 of 3 seeds (a first run): 0.02 trains
    "mnist": ("mnist-cnn", 1, 4, 0.02),
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
    model_name, epochs, points, lr = SETTINGS[name]
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
                    [lr, lr / 10, lr / 100], [total // 2, 3 * total // 4]
                ),
                "constant": sc.constant(lr),
                "Adam": sc.constant(1e-3),
            }[policy]
            trainer.fit(8 * epochs, plan)
        runs[policy] = {"curve": curve.points, "search_seconds": search}
    return runs


def summarise(runs: dict[str, dict[str, Any]], reference: str) -> dict[str, Any]:
    """Target = `reference`'s final accuracy; each policy's steps/seconds to first reach it, and
    its speed-up: the reference's steps (seconds) to its own final accuracy over the policy's."""
    finals = {p: runs[p]["curve"][-1][-1] for p in runs if runs[p]["curve"]}
    target = finals[reference]
    mark = first_reaching(runs[reference]["curve"], target)
    assert mark is not None
    mark_seconds = mark[1] + runs[reference].get("search_seconds", 0.0)
    rows = {}
    for policy, run in runs.items():
        hit = first_reaching(run["curve"], target)
        seconds = None if hit is None else hit[1] + run.get("search_seconds", 0.0)
        rows[policy] = {
            "final": finals.get(policy, math.nan),
            "steps": None if hit is None else hit[0],
            "seconds": seconds,
            "step_speedup": None if hit is None else mark[0] / hit[0],
            "time_speedup": None if seconds is None else mark_seconds / seconds,
        }
    return {"target": target, "reference": reference, "rows": rows}


def best_baseline(runs: dict[str, dict[str, Any]], baselines: tuple[str, ...]) -> str:
    return max(baselines, key=lambda p: runs[p]["curve"][-1][-1] if runs[p]["curve"] else -1.0)


def _cifar(path: Path) -> dict[str, dict[str, Any]]:
    results = json.loads(path.read_text())["results"]
    return {name: {"curve": row["curve"]} for name, row in results.items() if row.get("curve")}


def _sweep(path: Path) -> dict[str, list[dict[str, dict[str, Any]]]]:
    """``cifar10 <size> images`` -> one race per seed, each {policy: {"curve": points}}."""
    runs = json.loads(path.read_text())["runs"]
    races: dict[str, dict[int, dict[str, dict[str, Any]]]] = {}
    for row in runs.values():
        if row.get("curve"):
            race = races.setdefault(f"cifar10 {row['size']} images", {}).setdefault(row["seed"], {})
            race[row["policy"]] = {"curve": row["curve"]}
    return {name: [by_seed[seed] for seed in sorted(by_seed) if len(by_seed[seed]) == 2]
            for name, by_seed in races.items()}  # fmt: skip


def _report(name: str, per_seed: list[dict[str, dict[str, Any]]], cycle: str) -> None:
    baselines = tuple(p for p in per_seed[0] if p != cycle)
    claim = [summarise(r, best_baseline(r, baselines)) for r in per_seed]
    _print(f"{name}: the claim, target = the best baseline's final accuracy", claim)
    reverse = [summarise(r, cycle) for r in per_seed]
    _print(f"{name}: the other way, target = {cycle}'s final accuracy", reverse)


def _print(title: str, summaries: list[dict[str, Any]]) -> None:
    first = summaries[0]
    seeds = (
        ""
        if len(summaries) == 1
        else "; seed 0 shown, targets of seeds: "
        + ", ".join(f"{s['target']:.4f}" for s in summaries)
    )
    print(f"\n### {title}\n\ntarget {first['target']:.4f} ({first['reference']}{seeds})\n")
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
    print(table(["policy", "final accuracy (median)", "reached target", "steps to target",
                 "seconds to target", "speed-up (steps)", "speed-up (time)"], rows))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="*", default=["digits"], choices=sorted(SETTINGS))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--cifar-results", type=Path)
    parser.add_argument("--sweep-results", type=Path, help="a cifar10-data-size results.json")
    parser.add_argument("--json", type=Path, help="also write every curve here")
    parser.add_argument("--from-json", type=Path, help="summarise curves saved by --json instead")
    args = parser.parse_args()
    print(machine())
    if args.data or args.from_json:  # the races this script runs itself
        print(f"batch {BATCH}, weight decay {WEIGHT_DECAY}; medians over seeds")
    everything: dict[str, Any] = {}
    if args.from_json:
        everything = json.loads(args.from_json.read_text())
    else:
        for name in args.data:
            everything[name] = [race(name, seed) for seed in range(args.seeds)]
        if args.cifar_results:
            everything["cifar10"] = [_cifar(args.cifar_results)]
        if args.sweep_results:
            everything |= {k: v for k, v in _sweep(args.sweep_results).items() if v}
    for name, per_seed in everything.items():
        if name in SETTINGS:
            model, epochs, _, lr = SETTINGS[name]
            label = (
                f"{name} ({model}, 1cycle {epochs} epochs, the others {8 * epochs}, SGD LR {lr:g})"
            )
            _report(label, per_seed, "1cycle")
        elif name == "cifar10":
            _report(f"{name} (the reproduction's curves, one point per epoch)", per_seed,
                    "one cycle 0.1-3.5")  # fmt: skip
        else:
            _report(f"{name} (the data-size sweep, {len(per_seed)} seeds)", per_seed, "one cycle")
    if args.json and not args.from_json:
        args.json.write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
