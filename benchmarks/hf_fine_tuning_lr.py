"""Does the range test over-suggest for fine-tuning a pretrained transformer? (issue 15)

Hugging Face declined an LR finder because on pretrained transformers it suggests LRs far above
those that fine-tune well. Measured on a tiny BERT (2 layers, hidden 64, from a config: no hub)
on SST-2 with a word-level vocabulary: (1) the range test's suggestion on a randomly initialised
model and on a "pretrained-like" one (trained here on one part of the training split), (2)
the dev accuracy of fine-tuning the pretrained-like model on another part with 1cycle at a grid
of peak LRs, next to the suggestion. Prints a markdown table (docs/integrations.md).

    SUPERCONVERGE_DATA=../shared/data python benchmarks/hf_fine_tuning_lr.py
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.huggingface.sst2 import (
    Sst2Dataset,
    build_vocabulary,
    read_split,
    tiny_bert,
)

from superconverge import HyperparamScheduler, one_cycle
from superconverge.huggingface import FINE_TUNING_DIVISOR, lr_find

BATCH = 32
GRID = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def loader(dataset, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, generator=generator)


def train(model, dataset, max_lr, epochs, seed=0):
    torch.manual_seed(seed)
    data = loader(dataset, seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=max_lr, weight_decay=0.01)
    scheduler = HyperparamScheduler(optimizer, one_cycle(epochs * len(data), max_lr))
    model.train()
    for _ in range(epochs):
        for batch in data:
            optimizer.zero_grad()
            model(**batch).loss.backward()
            optimizer.step()
            scheduler.step()


def accuracy(model, dataset):
    model.eval()
    correct = 0
    with torch.no_grad():
        for batch in torch.utils.data.DataLoader(dataset, batch_size=256):
            correct += int((model(**batch).logits.argmax(-1) == batch["labels"]).sum())
    return correct / len(dataset)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-size", type=int, default=8192)
    parser.add_argument("--pretrain-epochs", type=int, default=3)
    parser.add_argument("--pretrain-lr", type=float, default=3e-3)
    parser.add_argument("--finetune-size", type=int, default=1024)
    parser.add_argument("--sweep-steps", type=int, default=40)
    parser.add_argument("--skip-random", action="store_true", help="no range test on random init")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    sentences, labels = read_split("train")
    vocabulary = build_vocabulary(sentences, 5000)
    pretrain = Sst2Dataset(
        sentences[: args.pretrain_size], labels[: args.pretrain_size], vocabulary
    )
    end = 20000 + args.finetune_size
    finetune = Sst2Dataset(sentences[20000:end], labels[20000:end], vocabulary)
    dev_sentences, dev_labels = read_split("dev")
    dev = Sst2Dataset(dev_sentences, dev_labels, vocabulary)
    sweep = {"start_lr": 1e-6, "end_lr": 1.0, "num_steps": args.sweep_steps}

    random_result = None
    if not args.skip_random:
        random_model = tiny_bert(5000, seed=0)
        random_result = lr_find(random_model, loader(finetune, 1), **sweep)
        print(f"random init: {random_result.summary()}", flush=True)

    pretrained = tiny_bert(5000, seed=0)
    train(pretrained, pretrain, args.pretrain_lr, epochs=args.pretrain_epochs)
    base_accuracy = accuracy(pretrained, dev)
    print(
        f"pretrained-like: dev accuracy {base_accuracy:.3f} ({time.time() - start:.0f}s)",
        flush=True,
    )
    state = {k: v.clone() for k, v in pretrained.state_dict().items()}
    tuned_result = lr_find(pretrained, loader(finetune, 1), **sweep)
    print(f"pretrained-like: {tuned_result.summary()}", flush=True)

    rows = []
    suggestion = tuned_result.max_lr
    extra = [] if suggestion is None else [suggestion, suggestion / FINE_TUNING_DIVISOR]
    for max_lr in sorted({round(v, 12) for v in (*GRID, *extra)}):
        pretrained.load_state_dict(state)
        train(pretrained, finetune, max_lr, epochs=1)
        rows.append((max_lr, accuracy(pretrained, dev)))
        print(f"fine-tune max_lr {max_lr:.3g}: dev accuracy {rows[-1][1]:.3f}", flush=True)
    print(f"pretrained-like: dev accuracy {base_accuracy:.3f} ({time.time() - start:.0f}s)")
    best = max(rows, key=lambda row: row[1])
    print("\n| model | range test max_lr (rule minimum) | valley | steepest |")
    print("|---|---|---|---|")
    for name, result in (("random init", random_result), ("pretrained-like", tuned_result)):
        if result is None:
            continue
        s = result.suggestions
        print(f"| {name} | {result.max_lr} | {s.get('valley')} | {s.get('steepest')} |")
    print(f"\npretrained-like before fine-tuning: dev accuracy {base_accuracy:.3f}")
    print(
        f"\n| fine-tuning peak LR (1cycle, 1 epoch, {args.finetune_size} samples) | dev accuracy |"
    )
    print("|---|---|")
    for max_lr, acc in rows:
        mark = " (suggestion)" if max_lr == suggestion else ""
        mark += (
            " (suggestion / 10)"
            if suggestion and max_lr == suggestion / FINE_TUNING_DIVISOR
            else ""
        )
        print(f"| {max_lr:.3g}{mark} | {acc:.3f} |")
    print(f"\nbest peak LR {best[0]:.3g} ({best[1]:.3f}); total {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()
