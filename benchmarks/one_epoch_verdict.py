"""Is the recipe's verdict on a one-epoch run right? Train longer and see.

A one-epoch final run has one validation point, so the curve's trend (Smith's Remark 1) is
unknown; the recipe then reads the trend from its short run at the same settings
(`diagnostics.verdicts.diagnose_by_run_length`: the validation loss's fall per doubling of
training between the two, against the noise margin). Per data set, model and seed: `tune` at
`epochs=1` (the final run kept at one epoch), its verdict and predicted fall per doubling; then
the recipe's choices trained for 2 and 4 epochs (one 1cycle each, same seed), and the fall each
doubling measured.

    SUPERCONVERGE_DATA=../../shared/data python one_epoch_verdict.py --data digits mnist \\
        --model default linear --seeds 1
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import superconverge as sc
from _common import machine, table
from superconverge.data import load
from superconverge.models import build, default_model_for
from superconverge.tuning import RecipeSettings


def model_factory(name: str, data: str, shape: tuple[int, ...], seed: int):
    if name == "linear":
        features = 1
        for size in shape:
            features *= size

        def make() -> nn.Module:
            torch.manual_seed(seed)
            return nn.Sequential(nn.Flatten(), nn.Linear(features, 10))

        return make
    reference, options = default_model_for(data, shape)

    def make_reference() -> nn.Module:
        torch.manual_seed(seed)
        return build(reference, **options)

    return make_reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", default=["digits"], choices=["digits", "mnist"])
    parser.add_argument("--model", nargs="+", default=["default"], choices=["default", "linear"])
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    torch.set_num_threads(1)
    print(machine())
    rows = []
    for data in args.data:
        splits = load(data)
        shape = tuple(splits.train.inputs.shape[1:])
        for model in args.model:
            for seed in range(args.seeds):
                make = model_factory(model, data, shape, seed)
                plan = sc.tune(make, splits.train, splits.val, epochs=1, seed=seed,
                               test_data=splits.test,
                               settings=RecipeSettings(extend_final_run=False))  # fmt: skip
                verdict = plan.results["verdict"]
                rate = verdict["evidence"].get("fall_per_doubling")
                losses = {1: plan.results["final_val_loss"]}
                tests = {1: plan.results["test"]["accuracy"]}
                for epochs in (2, 4):
                    longer = sc.TunePlan.from_json(plan.to_json())
                    longer.epochs = epochs
                    longer.run(make, splits.train, splits.val, test_data=splits.test)
                    losses[epochs] = longer.results["final_val_loss"]
                    tests[epochs] = longer.results["test"]["accuracy"]
                rows.append([
                    data, model, seed, verdict["kind"],
                    "-" if rate is None else f"{100 * rate:.1f}%",
                    f"{100 * verdict['evidence'].get('noise', 0):.1f}%",
                    " / ".join(f"{losses[e]:.4f}" for e in (1, 2, 4)),
                    f"{100 * (1 - losses[2] / losses[1]):.1f}% / "
                    f"{100 * (1 - losses[4] / losses[2]):.1f}%",
                    " / ".join(f"{100 * tests[e]:.2f}" for e in (1, 2, 4)),
                ])  # fmt: skip
                print(rows[-1], flush=True)
    header = ["data", "model", "seed", "verdict (1 epoch)", "predicted fall per doubling",
              "noise margin", "val loss at 1 / 2 / 4 epochs", "measured fall 1→2 / 2→4",
              "test % at 1 / 2 / 4 epochs"]  # fmt: skip
    print(table(header, rows))


if __name__ == "__main__":
    main()
