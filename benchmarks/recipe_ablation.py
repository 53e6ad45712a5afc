"""What each change of the budgeted recipe buys: `tune` variants on the contenders' data.

Issue 16 asks to measure each change. Per data set and seed, from the same initial weights and
data as ``contenders.py`` (its ``load_task``): the default recipe; SGD only (no optimizer
decision, the first round's family); no noise repeat (the fixed 2% margin decides); and the
default at half and twice the budget. Test accuracy and the compute in training samples
(`plan.compute`) and in runs (x one plain run).

    cd benchmarks && SUPERCONVERGE_DATA=../../shared/data python recipe_ablation.py \\
        --data digits --seeds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import torch

import superconverge as sc
from _common import machine, table
from contenders import DEFAULTS, load_task
from superconverge.tuning import RecipeSettings

VARIANTS = {
    "default (budget 1)": {},
    "SGD only": {"optimizer": "sgd"},
    "no noise repeat (2% margin)": {"settings": RecipeSettings(measure_noise=False)},
    "budget 0.5": {"budget": 0.5},
    "budget 2": {"budget": 2.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="digits", choices=list(DEFAULTS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train-size", type=int)
    parser.add_argument("--val-size", type=int)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = {k: v for k, v in (("train_size", args.train_size), ("val_size", args.val_size))
                 if v is not None}  # fmt: skip
    setup = dataclasses.replace(DEFAULTS[args.data], **overrides)
    task = load_task(setup)
    print(machine())
    print(f"{setup}: train {len(task.train)}, val {len(task.val)}, test {len(task.test)}")
    rows = []
    for name in args.variants:
        accuracies, runs, choices = [], [], []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            plan = sc.tune(task.build_model, task.train, task.val, epochs=setup.epochs,
                           test_data=task.test, augment=task.augment, seed=seed,
                           **VARIANTS[name])  # fmt: skip
            accuracies.append(plan.results.get("test", {}).get("accuracy", 0.0))
            runs.append(plan.compute["x_final_run"])
            choices.append(f"{plan.optimizer} {plan.max_lr:.3g} wd {plan.weight_decay:g}")
            print(f"{name} seed {seed}: {accuracies[-1]:.4f}, {runs[-1]:.2f} runs, {choices[-1]}",
                  flush=True)  # fmt: skip
        rows.append([name, f"{100 * statistics.median(accuracies):.2f}",
                     f"{100 * min(accuracies):.2f}", f"{statistics.median(runs):.2f}",
                     "; ".join(choices)])  # fmt: skip
    print()
    print(table(["variant", "median test %", "worst test %", "x one run (median)",
                 "choices per seed"], rows))  # fmt: skip


if __name__ == "__main__":
    main()
