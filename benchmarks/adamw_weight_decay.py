"""Which weight-decay candidates suit AdamW's decoupled decay in the recipe's 1cycle runs?

SGD's L2 penalty and AdamW's decoupled decay are different knobs: AdamW shrinks each weight by
``lr * weight_decay`` per step, so at the LRs Adam runs at (~1e-3) the paper's SGD grid
(1e-3, 1e-4, 1e-5, 0) decays by almost nothing. For each data set: a range test with AdamW
(decay 0), then 1cycle runs with β1 cycled 0.95 → 0.85 (as the recipe does) at the range test's
lowest-loss LR / 10 and / 3 (the ends of the recipe's LR grid), for each decay in a wide grid,
all from the same initial weights. Validation loss (what the recipe decides on) and test
accuracy per decay.

    SUPERCONVERGE_DATA=../shared/data python benchmarks/adamw_weight_decay.py --data digits sst2
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.data import DataLoader

from _common import machine, table
from _sst2 import BagOfWords, load_sst2_dataset, pad_collate
from superconverge.data import load
from superconverge.models import build
from superconverge.training import Trainer

DECAYS = (0.0, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1)
LOSS = torch.nn.functional.cross_entropy


def setup(name: str, seed: int):
    """(model factory, train, val, test, epochs, batch size) as a user would write them."""
    if name == "digits":
        splits = load("digits", val_fraction=0.2)

        def model():
            torch.manual_seed(seed)
            return build("mlp")

        return model, splits.train, splits.val, splits.test, 10, 32
    train, val, test, vocab = load_sst2_dataset()

    def text_model():
        torch.manual_seed(seed)
        return BagOfWords(vocab, hidden=False)

    def loader(data, shuffle):
        return DataLoader(data, batch_size=64, shuffle=shuffle, collate_fn=pad_collate)

    return text_model, loader(train, True), loader(val, False), loader(test, False), 2, 64


def run(name: str, seed: int) -> list[dict]:
    model, train, val, test, epochs, batch = setup(name, seed)
    probe = Trainer(
        model(), LOSS, train, val, optimizer="adamw", batch_size=batch, seed=seed, progress=False
    )
    lowest = 10 * probe.lr_find().max_lr
    rows = []
    for divisor in (10, 3):
        peak = lowest / divisor
        for decay in DECAYS:
            start = time.perf_counter()
            trainer = Trainer(
                model(),
                LOSS,
                train,
                val,
                optimizer="adamw",
                batch_size=batch,
                weight_decay=decay,
                seed=seed,
                progress=False,
            )
            history = trainer.fit_one_cycle(epochs, peak, momentum=(0.95, 0.85))
            last = history.epochs[-1] if history.epochs else {}
            rows.append(
                {
                    "data": name,
                    "seed": seed,
                    "max_lr": peak,
                    "lr_divisor": divisor,
                    "weight_decay": decay,
                    "status": history.status,
                    "val_loss": last.get("val_loss"),
                    "val_accuracy": last.get("val_accuracy"),
                    "test_accuracy": trainer.evaluate(test)["accuracy"],
                    "seconds": time.perf_counter() - start,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", default=["digits", "sst2"])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [row for name in args.data for seed in range(args.seeds) for row in run(name, seed)]
    print(machine())
    print(
        table(
            ["data", "seed", "max_lr", "weight decay", "val loss", "val acc", "test acc"],
            [
                [
                    r["data"],
                    r["seed"],
                    f"{r['max_lr']:.3g}",
                    f"{r['weight_decay']:g}",
                    f"{r['val_loss']:.4f}",
                    f"{r['val_accuracy']:.4f}",
                    f"{r['test_accuracy']:.4f}",
                ]
                for r in rows
            ],
        )
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
