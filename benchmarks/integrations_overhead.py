"""Per-step overhead of superconverge's Lightning and Hugging Face integrations over the same
run with the framework's own ``OneCycleLR`` (issue 15: at most 2%).

Lightning: ``OneCycle(max_lr=...)`` (no range test) against a module whose
``configure_optimizers`` returns ``OneCycleLR`` (interval "step"). Hugging Face: ``OneCycleTrainer(max_lr=...)``
against ``Trainer(optimizers=(optimizer, OneCycleLR(...)))``. Same model, data, initial weights;
only the training loop is timed (``on_train_start`` to ``on_train_end``), per optimizer step.
The two alternate ABBA-style; the table gives the median time per step and the median of the
per-pair ratios. Models are small on purpose: the per-step overhead weighs most there.

    SUPERCONVERGE_DATA=../shared/data python benchmarks/integrations_overhead.py --pairs 5
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.lightning.digits_module import DigitsModule, digits_loader

from _common import machine

MAX_LR = 0.1


def _lightning_pair(epochs: int, ours_first: bool) -> tuple[float, float]:
    import lightning.pytorch as pl

    from superconverge.lightning import OneCycle

    class Clock(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            self.start = time.perf_counter()

        def on_train_end(self, trainer, pl_module):
            self.per_step = (time.perf_counter() - self.start) / trainer.global_step

    class TorchOneCycle(DigitsModule):
        def configure_optimizers(self):
            optimizer = torch.optim.SGD(self.parameters(), lr=MAX_LR, momentum=0.9)
            total = self.trainer.estimated_stepping_batches
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, MAX_LR, total_steps=total)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
            }

    def run(module, callbacks):
        clock = Clock()
        pl.Trainer(
            max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            callbacks=[*callbacks, clock],
        ).fit(module, digits_loader(batch_size=32, size=1536))  # fmt: skip
        return clock.per_step

    runs = {
        "ours": lambda: run(DigitsModule(), [OneCycle(max_lr=MAX_LR)]),
        "theirs": lambda: run(TorchOneCycle(), []),
    }
    order = ("ours", "theirs") if ours_first else ("theirs", "ours")
    times = {name: runs[name]() for name in order}
    return times["ours"], times["theirs"]


def _huggingface_pair(steps: int, ours_first: bool) -> tuple[float, float]:
    from tests.huggingface.sst2 import datasets, tiny_bert
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from superconverge.huggingface import OneCycleTrainer

    train, _, vocab = datasets(train_size=steps * 16, val_size=16, vocab_size=2000)

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
            self.per_step = (time.perf_counter() - self.start) / state.global_step

    def arguments():
        return TrainingArguments(
            output_dir="/tmp/sc-bench-hf", num_train_epochs=1, per_device_train_batch_size=16,
            report_to=[], logging_steps=10_000, save_strategy="no", use_cpu=True,
            disable_tqdm=True, seed=0,
        )  # fmt: skip

    def theirs() -> float:
        clock, model = Clock(), tiny_bert(vocab)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, 1e-3, total_steps=steps)
        Trainer(
            model=model, args=arguments(), train_dataset=train, optimizers=(optimizer, scheduler),
            callbacks=[clock],
        ).train()  # fmt: skip
        return clock.per_step

    def ours() -> float:
        clock = Clock()
        OneCycleTrainer(
            model=tiny_bert(vocab), args=arguments(), train_dataset=train, max_lr=1e-3,
            callbacks=[clock],
        ).train()  # fmt: skip
        return clock.per_step

    if ours_first:
        a = ours()
        return a, theirs()
    b = theirs()
    return ours(), b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3, help="Lightning epochs of 48 steps")
    parser.add_argument("--hf-steps", type=int, default=40)
    parser.add_argument("--only", choices=["lightning", "huggingface"], default=None)
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(machine())
    for name, pair in (
        ("lightning", lambda first: _lightning_pair(args.epochs, first)),
        ("huggingface", lambda first: _huggingface_pair(args.hf_steps, first)),
    ):
        if args.only not in (None, name):
            continue
        ours, theirs, ratios = [], [], []
        for index in range(args.pairs):
            a, b = pair(index % 2 == 0)  # alternate which runs first
            ours.append(a)
            theirs.append(b)
            ratios.append(a / b)
            print(
                f"{name} pair {index}: ours {a * 1e3:.3f} ms/step, OneCycleLR {b * 1e3:.3f} ms/step"
            )
        print(
            f"| {name} | {statistics.median(theirs) * 1e3:.3f} | {statistics.median(ours) * 1e3:.3f}"
            f" | {(statistics.median(ratios) - 1) * 100:+.1f}% | {args.pairs} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
