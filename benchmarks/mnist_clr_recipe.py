"""The recipe's row of the `mnist-clr` reproduction alone, at `tune`'s current defaults.

`superconverge reproduce mnist-clr` runs every contender (CLR, Adam, SGD, 1cycle from a range
test, the recipe) on raw and [0, 1] inputs: over an hour on 2 CPU cores. The other rows do not
depend on `tune`; when `tune`'s defaults change, this re-runs the recipe's row only, with the
reproduction's own code (`superconverge.experiments.mnist_clr`: the same data, model, seeds,
batch 32 and held-out 5,000 validation images), and prints it with the training samples each
run processed (search and final run: `plan.compute`). With ``--adam`` it also trains the
strongest published contender, Adam at its fixed LR 1e-3 (as the reproduction does), on the
recipe's training part for as many samples as the recipe processed: the comparison at equal
compute that the reproduction's table (one epoch each) does not make.

    SUPERCONVERGE_DATA=../../shared/data python mnist_clr_recipe.py --seeds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from _common import machine
from superconverge import schedules
from superconverge.data import load
from superconverge.experiments import mnist_clr
from superconverge.experiments.curves import TestCurve, curve_trainer, split_tail


def adam_at(samples: int, seed: int, train: object, test: object) -> float:
    """Adam at the reproduction's fixed LR, batch and model, for `samples` training samples."""
    curve = TestCurve(test)
    model = mnist_clr._model(seed)  # noqa: SLF001 - the reproduction's model and seed
    trainer = curve_trainer(model, train, "adam", curve, batch_size=mnist_clr.BATCH, seed=seed)
    epochs = max(1, round(samples / len(train)))  # type: ignore[arg-type]
    history = trainer.fit(epochs, schedules.constant(1e-3))
    return trainer.evaluate(test)["accuracy"] if history.status == "completed" else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--scalings", nargs="+", choices=mnist_clr.SCALINGS,
                        default=list(mnist_clr.SCALINGS))  # fmt: skip
    parser.add_argument("--results", type=Path, default=Path("mnist_clr_recipe.jsonl"))
    parser.add_argument("--adam", action="store_true", help="Adam at the recipe's compute too")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine())
    rows = []
    for scaling in args.scalings:
        splits = load("mnist", None, val_fraction=0.0, normalize=scaling)
        fit_part, val = split_tail(splits.train, 5000)  # as `mnist_clr.run` holds them out
        for seed in range(args.seeds):
            run = mnist_clr._contender(  # noqa: SLF001 - the reproduction's own contender
                "recipe (tune)", seed, fit_part, val, splits.test, mnist_clr.Settings()
            )
            row = {"scaling": scaling, "seed": seed, "accuracy": run["accuracy"],
                   "max_lr": run["max_lr"], "batch_size": run["batch_size"],
                   "samples": run["samples"], "seconds": round(run["seconds"], 1)}  # fmt: skip
            if args.adam:
                row["adam_equal_compute"] = adam_at(run["samples"], seed, fit_part, splits.test)
            rows.append(row)
            with args.results.open("a") as file:
                file.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    print(
        "\n| inputs | test accuracy, seeds | mean ± sd | max_lr | samples per run | Adam, same samples |"
    )
    print("|---|---|---|---|---|---|")
    for scaling in args.scalings:
        mine = [r for r in rows if r["scaling"] == scaling]
        accuracies = [r["accuracy"] for r in mine]
        spread = f" ± {statistics.stdev(accuracies):.4f}" if len(accuracies) > 1 else ""
        cells = [
            mnist_clr.SCALING_NAMES[scaling],
            ", ".join(f"{a:.4f}" for a in accuracies),
            f"{statistics.mean(accuracies):.4f}{spread}",
            ", ".join(f"{r['max_lr']:.3g}" for r in mine),
            ", ".join(f"{r['samples']:,}" for r in mine),
            ", ".join(f"{r['adam_equal_compute']:.4f}" for r in mine if "adam_equal_compute" in r)
            or "-",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
