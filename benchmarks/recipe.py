"""The whole recipe (`tune`) against the usual ways of picking an LR, side by side.

For each data set, from the same initial weights and for the same number of epochs:
- recipe: `superconverge.tune` (batch size, LR bounds, weight decay, momentum, 1cycle);
- fastai-style: fastai's valley rule on the range-test curve, then fit_one_cycle's curve (fastai
  policy), batch 64 (fastai's default), SGD with momentum;
- torch-lr-finder + OneCycleLR: pytorch-lr-finder's steepest rule on the same kind of curve, then
  torch's OneCycleLR curve, batch 64;
- Adam: defaults (lr 1e-3), constant, batch 64.
Test accuracy, and wall time including each contender's own LR search. With --seeds N each
seed changes the initial weights, the data order and every search's randomness, and a last table
gives each contender's median and worst over the seeds and how often the recipe led.

    SUPERCONVERGE_DATA=../shared/data python benchmarks/recipe.py --data digits mnist cifar10
    SUPERCONVERGE_DATA=../shared/data python benchmarks/recipe.py --data digits mnist --seeds 3
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import torch

import superconverge as sc
from _common import machine, table
from lr_finder import fastai_valley, torch_lr_finder_steepest
from superconverge.data import default_augment, load
from superconverge.models import build, default_model_for
from superconverge.training import Trainer

EPOCHS = {"digits": 10, "mnist": 3, "cifar10": 5}
BASELINE_BATCH = 64
LOSS = torch.nn.functional.cross_entropy


class Factory:
    def __init__(self, name: str, options: dict, seed: int = 0) -> None:
        self.name, self.options, self.seed = name, options, seed

    def __call__(self) -> torch.nn.Module:
        torch.manual_seed(self.seed)  # the same initial weights for every contender
        return build(self.name, **self.options)


def baseline(factory, splits, epochs, augment, kind: str) -> dict:
    start = time.perf_counter()
    trainer = Trainer(factory(), LOSS, splits.train, splits.val, batch_size=BASELINE_BATCH,
                      optimizer="adam" if kind == "adam" else "sgd", augment=augment,
                      progress=False, seed=factory.seed)  # fmt: skip
    if kind == "adam":
        history = trainer.fit(epochs, sc.constant(1e-3))
        lr = 1e-3
    else:
        curve = trainer.lr_find()
        lrs, smoothed = list(curve.lrs), list(curve.smoothed_losses)
        if kind == "fastai":
            lr = fastai_valley(lrs, smoothed, 100)
            history = trainer.fit_one_cycle(epochs, lr, policy="fastai")
        else:
            lr = torch_lr_finder_steepest(lrs, smoothed)
            history = trainer.fit_one_cycle(epochs, lr, policy="torch")
    accuracy = (
        trainer.evaluate(splits.test)["accuracy"] if history.status == "completed" else float("nan")
    )
    return {"max_lr": lr, "test_accuracy": accuracy, "status": history.status,
            "seconds": time.perf_counter() - start}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", default=["digits", "mnist", "cifar10"])
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (default 1)")
    parser.add_argument(
        "--recipe-batch",
        type=int,
        default=None,
        help="pin the recipe's batch size (default: its own choice)",
    )
    parser.add_argument("--json", default="recipe_results.json")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    print(machine())
    rows, splits_rows, raw, summary = [], [], {}, []
    for name in args.data:
        splits = load(name)
        model_name, options = default_model_for(name, splits.input_shape)
        epochs = EPOCHS[name]
        augment = default_augment(name)
        per_seed = []
        for seed in range(args.seeds):
            results = one_seed(
                name,
                splits,
                model_name,
                options,
                epochs,
                augment,
                seed,
                args.recipe_batch or "auto",
            )
            per_seed.append(results)
            label = name if args.seeds == 1 else f"{name} (seed {seed})"
            for contender, r in results.items():
                lr = "-" if r["max_lr"] is None else f"{r['max_lr']:.3g}"
                rows.append([label, f"{model_name} {options.get('width', '')}".strip(), epochs,
                             contender, lr, f"{r['test_accuracy']:.4f}", f"{r['seconds']:.0f}"])  # fmt: skip
            recipe = results["recipe (tune)"]
            split = ", ".join(f"{k} {v:.1f}" for k, v in recipe["steps"].items())
            splits_rows.append([label, f"{recipe['seconds']:.0f}", split, recipe["batch_size"],
                                f"{recipe['weight_decay']:g}", recipe["verdict"]])  # fmt: skip
        raw[name] = (
            per_seed[0] if args.seeds == 1 else {f"seed {i}": r for i, r in enumerate(per_seed)}
        )
        summary.extend(summarise(name, per_seed))
    print()
    print(
        table(["data", "model", "epochs", "contender", "max_lr", "test accuracy", "seconds"], rows)
    )
    print()
    print(
        table(
            ["data", "recipe total (s)", "split (s)", "batch", "weight decay", "verdict"],
            splits_rows,
        )
    )
    if args.seeds > 1:
        print()
        print(table(["data", "contender", "median accuracy", "worst", "seeds where it is best"],
                    summary))  # fmt: skip
    with open(args.json, "w") as handle:
        json.dump(raw, handle, indent=1, default=str)


def summarise(name: str, per_seed: list[dict]) -> list[list[object]]:
    """Per contender: median and worst test accuracy over the seeds (NaN, a diverged run, counts
    as 0), and in how many seeds it was at least as good as every other contender."""

    def accuracy(r: dict) -> float:
        return 0.0 if math.isnan(r["test_accuracy"]) else r["test_accuracy"]

    out = []
    for contender in per_seed[0]:
        values = [accuracy(seed[contender]) for seed in per_seed]
        best = sum(
            accuracy(seed[contender]) >= max(map(accuracy, seed.values())) for seed in per_seed
        )
        out.append([name, contender, f"{statistics.median(values):.4f}", f"{min(values):.4f}",
                    f"{best} of {len(per_seed)}"])  # fmt: skip
    return out


def one_seed(name, splits, model_name, options, epochs, augment, seed: int, batch="auto") -> dict:
    factory = Factory(model_name, {**options, "num_classes": 10}, seed)
    start = time.perf_counter()
    plan = sc.tune(factory, splits.train, splits.val, epochs=epochs, test_data=splits.test,
                   augment=augment, seed=seed, batch_size=batch)  # fmt: skip
    test_accuracy = plan.results.get("test", {}).get("accuracy", float("nan"))  # NaN: diverged
    recipe = {"max_lr": plan.max_lr, "test_accuracy": test_accuracy,
              "status": plan.results["status"], "seconds": time.perf_counter() - start,
              "batch_size": plan.batch_size, "weight_decay": plan.weight_decay,
              "verdict": plan.results["verdict"]["kind"],
              "steps": {s["step"]: s["seconds"] for s in plan.evidence}}  # fmt: skip
    results = {"recipe (tune)": recipe}
    for kind, label in (("fastai", "fastai valley + fit_one_cycle"),
                        ("torch", "lr-finder steepest + OneCycleLR"), ("adam", "Adam defaults")):  # fmt: skip
        results[label] = baseline(factory, splits, epochs, augment, kind)
        print(name, seed, label, results[label], flush=True)
    print(name, seed, "recipe", recipe, flush=True)
    return results


if __name__ == "__main__":
    main()
