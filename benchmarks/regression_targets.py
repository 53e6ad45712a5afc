"""Does the recipe need standardised regression targets? `tune` on raw targets against the same
targets standardised with the training split's mean and std (z-scores), everything else equal.

- ``digits-labels``: scikit-learn's digits, the label 0-9 as a float target (mean 4.5, std 2.9),
  an MLP with one output.
- ``diabetes``: scikit-learn's ``load_diabetes`` (target mean 152, std 77), inputs standardised
  as usual, an MLP with one output.

Each run's validation MSE is reported in the raw target's units (a standardised run's loss times
std²), next to the MSE of predicting the training mean, with the recipe's choices and its
compute (training samples, in runs of the epochs asked for).

    python benchmarks/regression_targets.py --seeds 3
"""

from __future__ import annotations

import argparse
import logging
import statistics

import numpy as np
import torch
from torch import nn

from _common import machine
from superconverge.data import ArrayData
from superconverge.tuning import tune


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x / 16.0, y.astype(np.float64)


def _diabetes() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    return (x - x.mean(0)) / x.std(0), y


DATA = {"digits-labels": _digits, "diabetes": _diabetes}


def run(name: str, standardise: bool, epochs: int, seed: int) -> dict:
    x, y = DATA[name]()
    order = np.random.default_rng(0).permutation(len(x))
    cut = int(0.8 * len(x))
    train, val = order[:cut], order[cut:]
    shift, scale = (y[train].mean(), y[train].std()) if standardise else (0.0, 1.0)

    def split(rows: np.ndarray) -> ArrayData:
        inputs = torch.tensor(x[rows], dtype=torch.float32)
        targets = torch.tensor((y[rows] - shift) / scale, dtype=torch.float32)[:, None]
        return ArrayData(inputs, targets)

    features = x.shape[1]

    def model() -> nn.Module:
        return nn.Sequential(nn.Linear(features, 32), nn.ReLU(), nn.Linear(32, 1))

    torch.manual_seed(seed)
    mean_predictor = float(((y[val] - y[train].mean()) ** 2).mean())
    try:
        plan = tune(model, split(train), split(val), epochs=epochs,
                    loss_fn=nn.functional.mse_loss, seed=seed)  # fmt: skip
    except ValueError as error:  # the range test found no LR: recorded, not hidden
        return {"val_mse": float("nan"), "mean_predictor": mean_predictor,
                "choice": f"failed: {str(error)[:60]}", "x_run": float("nan")}  # fmt: skip
    return {
        "val_mse": plan.results["final_val_loss"] * scale**2,  # in the raw target's units
        "mean_predictor": mean_predictor,
        "choice": f"{plan.optimizer}, batch {plan.batch_size}, max_lr {plan.max_lr:.3g}",
        "x_run": plan.compute["x_final_run"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=list(DATA), choices=list(DATA))
    parser.add_argument("--epochs", nargs="+", type=int, default=[2, 10])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    torch.set_num_threads(1)
    print(machine())
    print("| data | epochs | targets | median val MSE (worst) | per seed | mean predictor | "
          "choices (seed 0) | x one run |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name in args.data:
        for epochs in args.epochs:
            for standardise in (False, True):
                rows = [run(name, standardise, epochs, seed) for seed in range(args.seeds)]
                found = [r for r in rows if not np.isnan(r["val_mse"])]
                mses = [r["val_mse"] for r in found]
                median = f"{statistics.median(mses):.4g} ({max(mses):.4g})" if mses else "-"
                each = " / ".join(f"{r['val_mse']:.4g}" for r in rows)
                if len(found) < len(rows):
                    each += f" ({len(rows) - len(found)} found no LR)"
                compute = statistics.median(r["x_run"] for r in found) if found else float("nan")
                print(
                    f"| {name} | {epochs} | {'standardised' if standardise else 'raw'} | "
                    f"{median} | {each} | {rows[0]['mean_predictor']:.4g} | "
                    f"{rows[0]['choice']} | {compute:.2f} |"
                )


if __name__ == "__main__":
    main()
