"""Lightning's own LearningRateFinder callback against superconverge's OneCycle on one module.

The same LightningModule (digits MLP with BatchNorm and dropout, SGD momentum 0.9) and the same
shuffled loader (its own seeded generator). For each finder: the suggested LR, and whether the
run that follows is the one it would have been without the finder: the weights, the global torch
RNG and the loader's generator at ``on_train_start``, compared with a run that had no finder.
Prints a markdown table (docs/integrations.md).

    python benchmarks/lightning_lr_finder_comparison.py
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning.pytorch as pl
from lightning.pytorch.callbacks import LearningRateFinder
from tests.lightning.digits_module import DigitsModule, digits_loader

from superconverge.lightning import OneCycle


class Module(DigitsModule):
    def __init__(self):
        super().__init__()
        self.lr = 0.1  # LearningRateFinder writes its suggestion here

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


class Probe(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        loader = trainer.train_dataloader
        self.weights = [t.clone() for t in pl_module.state_dict().values()]
        self.rng = torch.get_rng_state()
        self.order = loader.generator.get_state() if loader.generator is not None else None


def run(finder):
    probe, module = Probe(), Module()
    callbacks = [probe] if finder is None else [finder, probe]
    pl.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks,
        default_root_dir="/tmp/sc-lr-finder-comparison",
    ).fit(module, digits_loader(batch_size=32, size=1536))  # fmt: skip
    return probe, module


def main() -> None:
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    plain, _ = run(None)
    theirs = LearningRateFinder(min_lr=1e-4, max_lr=10.0, num_training_steps=100)
    their_probe, their_module = run(theirs)
    ours = OneCycle(start_lr=1e-4, end_lr=10.0, num_steps=100)
    our_probe, _ = run(ours)

    def same(probe):
        weights = all(torch.equal(a, b) for a, b in zip(plain.weights, probe.weights, strict=True))
        rng = torch.equal(plain.rng, probe.rng)
        order = torch.equal(plain.order, probe.order)
        return (
            f"{'yes' if weights else 'NO'} | {'yes' if rng else 'NO'} | {'yes' if order else 'NO'}"
        )

    print(
        "| finder | suggested LR | rule | weights as before | torch RNG as before | loader order as before |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| Lightning LearningRateFinder | {their_module.lr:.3g} | steepest descent | {same(their_probe)} |"
    )
    print(
        f"| superconverge OneCycle | {ours.result.max_lr:.3g} | {ours.result.rule} (min/10) | {same(our_probe)} |"
    )
    print(f"\nsuperconverge's other rules on its curve: {ours.result.suggestions}")


if __name__ == "__main__":
    main()
