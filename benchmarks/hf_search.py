"""Hugging Face on SST-2: `OneCycleTrainer(max_lr="search")` (the rise is the range test).

Against it (also with `EdgeSettings(divisor=10)`, the range test's minimum/10):
`OneCycleTrainer()` (a range test, then 1cycle) and a plain ``Trainer`` at its defaults (AdamW,
LR 5e-5 decaying linearly) and at LR 1e-3.

A tiny BERT (2 layers, hidden 64, from a config: trained from scratch, no hub) on the first
`--train-size` training sentences of GLUE's SST-2 with a word-level vocabulary, batch 32,
`--epochs` epochs; accuracy on the 872 dev sentences. Compute is the training samples the model
processed (the range test's included), counted by a forward hook. Prints a markdown table
(docs/benchmarks.md).

    SUPERCONVERGE_DATA=../shared/data python benchmarks/hf_search.py --seeds 3
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import transformers
from tests.huggingface.sst2 import datasets, tiny_bert

from _common import keep, machine, table
from superconverge.huggingface import OneCycleTrainer
from superconverge.training import EdgeSettings

BATCH = 32
VARIANTS = (
    "search",
    "search, divisor 10",
    "range test + 1cycle",
    "Trainer defaults (5e-5)",
    "Trainer lr 1e-3",
)


def accuracy(model, dataset) -> float:
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=256)
    hits = 0
    with torch.no_grad():
        for batch in loader:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            hits += int((logits.logits.argmax(1) == batch["labels"]).sum())
    return hits / len(dataset)


def run(variant: str, seed: int, train, dev, vocab_size: int, epochs: int, out: Path) -> dict:
    model = tiny_bert(vocab_size, seed=seed)
    samples = [0]
    model.register_forward_hook(
        lambda module, args, kwargs, output: samples.__setitem__(0, samples[0] + (
            len(kwargs["input_ids"]) if module.training else 0)),
        with_kwargs=True,
    )  # fmt: skip
    lr = 1e-3 if variant == "Trainer lr 1e-3" else 5e-5
    args = transformers.TrainingArguments(
        output_dir=str(out), num_train_epochs=epochs, per_device_train_batch_size=BATCH,
        learning_rate=lr, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True,
        seed=seed, logging_strategy="no",
    )  # fmt: skip
    if variant.startswith("search"):
        settings = EdgeSettings(divisor=10.0) if variant.endswith("10") else None
        trainer = OneCycleTrainer(model=model, args=args, train_dataset=train, max_lr="search",
                                  search=settings)  # fmt: skip
    elif variant == "range test + 1cycle":
        trainer = OneCycleTrainer(model=model, args=args, train_dataset=train)
    else:
        trainer = transformers.Trainer(model=model, args=args, train_dataset=train)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    setting = "-"
    if isinstance(trainer, OneCycleTrainer):
        setting = f"max_lr {trainer.lr_scheduler.plan.max_lr:.3g}"
    return {"variant": variant, "seed": seed, "setting": setting, "samples": samples[0],
            "seconds": seconds, "dev": accuracy(model, dev)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=16000)
    parser.add_argument("--json", help="append each run's record to this file")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    logging.getLogger("superconverge").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    train, dev, vocab_size = datasets(train_size=args.train_size)
    print(machine(), f"; transformers {transformers.__version__}")
    records = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.seeds):
            for variant in args.variants:
                keep(
                    run(variant, seed, train, dev, vocab_size, args.epochs, Path(folder)),
                    records,
                    args.json,
                )
    rows = []
    for variant in args.variants:
        mine = [r for r in records if r["variant"] == variant]
        dev_accuracy = [100 * r["dev"] for r in mine]
        rows.append([variant, " / ".join(f"{a:.2f}" for a in dev_accuracy),
                     f"{statistics.median(dev_accuracy):.2f}",
                     f"{statistics.median(r['samples'] for r in mine):,.0f}",
                     f"{statistics.median(r['seconds'] for r in mine):.0f}",
                     "; ".join(r["setting"] for r in mine)])  # fmt: skip
    print(table(["Hugging Face fit", "dev % per seed", "median", "samples", "seconds",
                 "max_lr per seed"], rows))  # fmt: skip


if __name__ == "__main__":
    main()
