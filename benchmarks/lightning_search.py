"""Lightning on the full MNIST: `OneCycle("search")` (the rise is the range test) against
`OneCycle()` (a 100-step range test, then torch's 1cycle) and a plain AdamW at its default LR.

The same LightningModule (`mnist-cnn`, AdamW with weight decay 0.1, batch 128) and the same
seeded shuffled loader per seed; 3 epochs of the 54,000 training images; test accuracy on the
10,000 test images after the fit. Compute is the training samples the module processed (range
test included), counted by a forward hook. Prints a markdown table (docs/benchmarks.md).

    cd benchmarks && SUPERCONVERGE_DATA=../../shared/data python lightning_search.py --seeds 3
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning.pytorch as pl

from _common import keep, machine, table
from superconverge.data import load
from superconverge.lightning import OneCycle
from superconverge.models import build

BATCH, EPOCHS, WEIGHT_DECAY = 128, 3, 0.1


class Module(pl.LightningModule):
    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.net = build("mnist-cnn")
        self.samples = 0

    def training_step(self, batch, batch_idx):
        inputs, targets = batch
        self.samples += len(targets)
        return nn.functional.cross_entropy(self.net(inputs), targets)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=WEIGHT_DECAY)


def accuracy(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        hits = sum(int((net(inputs[i : i + 1000]).argmax(1) == targets[i : i + 1000]).sum())
                   for i in range(0, len(targets), 1000))  # fmt: skip
    return hits / len(targets)


def run(variant: str, seed: int, splits) -> dict:
    module = Module(seed)
    callbacks = {"search": [OneCycle("search")], "range test + 1cycle": [OneCycle()],
                 "AdamW lr 1e-3": []}[variant]  # fmt: skip
    train = TensorDataset(splits.train.inputs, splits.train.targets)
    loader = DataLoader(train, batch_size=BATCH, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))  # fmt: skip
    trainer = pl.Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=callbacks)  # fmt: skip
    start = time.perf_counter()
    trainer.fit(module, loader)
    seconds = time.perf_counter() - start
    setting = "-"
    if callbacks:
        callback = callbacks[0]
        setting = f"max_lr {callback.plan.max_lr:.3g}"
    return {"variant": variant, "seed": seed, "setting": setting, "samples": module.samples,
            "seconds": seconds,
            "test": accuracy(module.net, splits.test.inputs, splits.test.targets)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", help="append each run's record to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    root = Path(os.environ.get("SUPERCONVERGE_DATA", "../shared/data"))
    splits = load("mnist", root / "mnist")
    assert splits.test is not None
    print(machine())
    records = []
    for seed in range(args.seeds):
        for variant in ("search", "range test + 1cycle", "AdamW lr 1e-3"):
            keep(run(variant, seed, splits), records, args.json)
    rows = []
    for variant in ("search", "range test + 1cycle", "AdamW lr 1e-3"):
        mine = [r for r in records if r["variant"] == variant]
        tests = [100 * r["test"] for r in mine]
        rows.append([variant, f"{statistics.median(tests):.2f}", f"{min(tests):.2f}",
                     f"{statistics.median(r['samples'] for r in mine):,.0f}",
                     f"{statistics.median(r['seconds'] for r in mine):.0f}",
                     "; ".join(r["setting"] for r in mine)])  # fmt: skip
    print(table(["Lightning fit", "median test %", "worst", "samples", "seconds", "max_lr per seed"],
                rows))  # fmt: skip


if __name__ == "__main__":
    main()
