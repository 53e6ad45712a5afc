"""The final run's guard: divergences and stalls answered by restoring the epoch's first
weights and halving the LR (issue 16, item 4), against no guard and a divergence-only guard.

1cycle runs of the digits MLP (10 epochs, batch 32, momentum 0.95 -> 0.85) at peak LRs from
safe to far too high, several seeds; the test accuracy says which runs the guard saved:

    SUPERCONVERGE_DATA=../shared/data python benchmarks/final_run_guard.py --seeds 5
"""

from __future__ import annotations

import argparse
import math
import statistics
import warnings

import torch

from _common import machine, table
from superconverge.data import load
from superconverge.models import build
from superconverge.training import Trainer, loop

LOSS = torch.nn.functional.cross_entropy
VARIANTS = {
    "no guard (backoff=0)": (0, None),
    "divergences only (backoff=2, no stall check)": (2, math.inf),
    "divergences and stalls (backoff=2, tune's default)": (2, loop.STALL_FACTOR),
}


def one_run(splits, max_lr: float, seed: int, backoff: int, stall: float | None) -> tuple:
    if stall is not None:
        loop.STALL_FACTOR = stall  # the benchmark's switch: inf turns the stall check off
    torch.manual_seed(seed)
    trainer = Trainer(build("mlp"), LOSS, splits.train, splits.val, batch_size=32,
                      progress=False, seed=seed)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = trainer.fit_one_cycle(10, max_lr, backoff=backoff)
    return history.status, trainer.evaluate(splits.test)["accuracy"], len(history.notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-lrs", type=float, nargs="+", default=[0.1, 0.3, 0.6, 1.0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine())
    splits = load("digits")
    default_stall = loop.STALL_FACTOR
    rows = []
    for max_lr in args.max_lrs:
        for name, (backoff, stall) in VARIANTS.items():
            runs = [one_run(splits, max_lr, s, backoff, stall) for s in range(args.seeds)]
            loop.STALL_FACTOR = default_stall
            accuracies = [accuracy for _, accuracy, _ in runs]
            rows.append([
                max_lr, name, f"{100 * statistics.median(accuracies):.2f}",
                f"{100 * min(accuracies):.2f}",
                sum(accuracy < 0.5 for accuracy in accuracies),
                sum(status != "completed" for status, _, _ in runs),
                sum(notes for _, _, notes in runs),
                " / ".join(f"{100 * a:.1f}" for a in accuracies),
            ])  # fmt: skip
            print(table(HEADER, rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(HEADER, rows))


HEADER = ["max_lr", "guard", "median test %", "worst test %", "runs below 50%",
          "runs stopped (diverged)", "back-offs", "per seed"]  # fmt: skip

if __name__ == "__main__":
    main()
