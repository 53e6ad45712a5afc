"""The whole recipe (`tune`) against the usual ways of picking an LR, side by side.

For each data set, from the same initial weights and for the same number of epochs:
- recipe: `superconverge.tune` (batch size, LR bounds, weight decay, momentum, 1cycle);
- fastai-style: fastai's valley rule on the range-test curve, then fit_one_cycle's curve (fastai
  policy), batch 64 (fastai's default), SGD with momentum;
- torch-lr-finder + OneCycleLR: pytorch-lr-finder's steepest rule on the same kind of curve, then
  torch's OneCycleLR curve, batch 64;
- Adam: defaults (lr 1e-3), constant, batch 64.
Test accuracy, and wall time including each contender's own LR search.

    SUPERCONVERGE_DATA=../shared/data python benchmarks/recipe.py --data digits mnist cifar10
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import superconverge as sc
from _common import machine, table
from lr_finder import fastai_valley, torch_lr_finder_steepest
from superconverge.data import Augment, load
from superconverge.models import build
from superconverge.training import Trainer
from superconverge.tuning.decisions import default_model_for

EPOCHS = {"digits": 10, "mnist": 3, "cifar10": 5}
BASELINE_BATCH = 64
LOSS = torch.nn.functional.cross_entropy


class Factory:
    def __init__(self, name: str, options: dict) -> None:
        self.name, self.options = name, options

    def __call__(self) -> torch.nn.Module:
        torch.manual_seed(0)  # the same initial weights for every contender
        return build(self.name, **self.options)


def baseline(factory, splits, epochs, augment, kind: str) -> dict:
    start = time.perf_counter()
    trainer = Trainer(factory(), LOSS, splits.train, splits.val, batch_size=BASELINE_BATCH,
                      optimizer="adam" if kind == "adam" else "sgd", augment=augment, progress=False)  # fmt: skip
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
    parser.add_argument("--json", default="recipe_results.json")
    args = parser.parse_args()
    print(machine())
    rows, splits_rows, raw = [], [], {}
    for name in args.data:
        splits = load(name)
        model_name, options = default_model_for(name, splits.input_shape)
        factory = Factory(model_name, {**options, "num_classes": 10})
        epochs = EPOCHS[name]
        augment = Augment() if name == "cifar10" else None
        start = time.perf_counter()
        plan = sc.tune(factory, splits.train, splits.val, epochs=epochs, test_data=splits.test,
                       augment=augment)  # fmt: skip
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
            print(name, label, results[label], flush=True)
        print(name, "recipe", recipe, flush=True)
        raw[name] = results
        for label, r in results.items():
            lr = "-" if r["max_lr"] is None else f"{r['max_lr']:.3g}"
            rows.append([name, f"{model_name} {options.get('width', '')}".strip(), epochs, label, lr,
                         f"{r['test_accuracy']:.4f}", f"{r['seconds']:.0f}"])  # fmt: skip
        split = ", ".join(f"{k} {v:.1f}" for k, v in recipe["steps"].items())
        splits_rows.append([name, f"{recipe['seconds']:.0f}", split, recipe["batch_size"],
                            f"{recipe['weight_decay']:g}", recipe["verdict"]])  # fmt: skip
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
    with open(args.json, "w") as handle:
        json.dump(raw, handle, indent=1, default=str)


if __name__ == "__main__":
    main()
