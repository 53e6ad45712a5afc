"""Per-step overhead of Trainer.fit_one_cycle against a hand-written PyTorch loop.

The baseline is the physical floor: forward, loss, backward, ``optimizer.step()`` and
``OneCycleLR.step()`` over the same ArrayLoader batches, same model and same initial weights.
The two alternate in ABBA order; each run trains from a fresh copy of the weights; the table
reports the median time per optimizer step over --repeats rounds and the median of the
per-round ratios.

    SUPERCONVERGE_DATA=../shared/data python benchmarks/overhead.py --repeats 9
    SUPERCONVERGE_DATA=../shared/data python benchmarks/overhead.py --repeats 9 --loader DataLoader
    SUPERCONVERGE_DATA=../shared/data python benchmarks/overhead.py --repeats 40 --loader DataLoader \
        --tasks digits --threads 1
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from _common import machine, table
from superconverge.data import ArrayLoader, load
from superconverge.models import build
from superconverge.training import Trainer

LOSS = torch.nn.functional.cross_entropy


def hand_written(model, loader, epochs: int, max_lr: float) -> int:
    optimizer = torch.optim.SGD(model.parameters(), lr=max_lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=epochs * len(loader)
    )
    model.train()
    steps = 0
    for _ in range(epochs):
        for inputs, targets in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = LOSS(model(inputs), targets)
            loss.backward()
            optimizer.step()
            scheduler.step()
            steps += 1
    return steps


def ours(model, loader, epochs: int, max_lr: float) -> int:
    trainer = Trainer(model, LOSS, loader, progress=False)
    return trainer.fit_one_cycle(epochs, max_lr, policy="torch").steps


def data_loader(data, batch: int):
    """What a user holds: a torch DataLoader over the same tensors, shuffled by a seeded generator
    (issue 14: the Trainer over a DataLoader against a hand-written loop over the same one)."""
    generator = torch.Generator().manual_seed(0)
    dataset = TensorDataset(data.inputs, data.targets)
    return DataLoader(dataset, batch_size=batch, shuffle=True, generator=generator)


def measure(
    name: str,
    model_name: str,
    batch: int,
    epochs: int,
    repeats: int,
    max_lr: float,
    loader_kind: str = "ArrayLoader",
) -> list:
    splits = load(name, val_fraction=0.0)
    torch.manual_seed(0)
    initial = build(model_name)
    times: dict[str, list[float]] = {"hand-written": [], "fit_one_cycle": []}
    contenders = [("hand-written", hand_written), ("fit_one_cycle", ours)]
    for round_index in range(repeats):
        # ABBA order: whichever runs second in a round must not always be the same one
        for label, run in contenders if round_index % 2 == 0 else contenders[::-1]:
            model = copy.deepcopy(initial)
            if loader_kind == "DataLoader":
                loader = data_loader(splits.train, batch)
            else:
                loader = ArrayLoader(splits.train, batch, seed=0)
            start = time.perf_counter()
            steps = run(model, loader, epochs, max_lr)
            times[label].append((time.perf_counter() - start) / steps)
    base = statistics.median(times["hand-written"])
    mine = statistics.median(times["fit_one_cycle"])
    # each round's two runs are neighbours in time: their ratio cancels the machine's drift
    paired = sorted(
        o / b for o, b in zip(times["fit_one_cycle"], times["hand-written"], strict=True)
    )
    quartiles = statistics.quantiles(paired, n=4)
    ratio, spread = f"{statistics.median(paired):.3f}", f"{quartiles[0]:.3f}–{quartiles[2]:.3f}"
    return [
        f"{name} {model_name} ({loader_kind})",
        batch,
        steps,
        f"{base * 1e6:.0f}",
        f"{mine * 1e6:.0f}",
        ratio,
        spread,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument(
        "--loader",
        choices=("ArrayLoader", "DataLoader"),
        default="ArrayLoader",
        help="what both loops read: our ArrayLoader, or a torch DataLoader (issue 14: <= 3%%)",
    )
    parser.add_argument(
        "--tasks", nargs="+", choices=("digits", "mnist"), default=["digits", "mnist"]
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own choice)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine())
    tasks = {
        "digits": ("digits", "mlp", 32, 20),
        "mnist": ("mnist", "mnist-cnn", 128, 1),
    }
    rows = [measure(*tasks[task], args.repeats, 0.05, args.loader) for task in args.tasks]
    print()
    print(f"median microseconds per optimizer step over {args.repeats} alternating runs")
    header = ["task", "batch", "steps/run", "hand-written + OneCycleLR (µs)", "fit_one_cycle (µs)",
              "median paired ratio", "quartiles of the ratio"]  # fmt: skip
    print(table(header, rows))


if __name__ == "__main__":
    main()
