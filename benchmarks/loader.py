"""Samples/s of ArrayLoader against DataLoader(TensorDataset(...), shuffle=True).

Both serve the same in-memory tensors on the CPU (or the GPU when --device cuda) and each
measurement reads every batch of one pass over up to --max-samples samples and touches it
(a sum), so lazily produced batches are paid for. Runs alternate between the loaders and the
table reports medians over --repeats passes, and the ratio ArrayLoader / DataLoader.

    python benchmarks/loader.py --repeats 5
"""

from __future__ import annotations

import argparse
from functools import partial

from torch.utils.data import DataLoader, TensorDataset

from _common import machine, medians_alternating, table
from superconverge.data import ArrayData, ArrayLoader, Augment, load


def consume(loader: object) -> None:
    total = 0.0
    for inputs, _ in loader:  # type: ignore[attr-defined]
        total += float(inputs[0, 0, 0, 0])


def run_torch(dataset: TensorDataset, batch_size: int) -> None:
    consume(DataLoader(dataset, batch_size=batch_size, shuffle=True))


def run_ours(data: ArrayData, batch_size: int, augment: Augment | None) -> None:
    consume(ArrayLoader(data, batch_size, seed=0, augment=augment))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-samples", type=int, default=20000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(machine())
    rows = []
    for name in ("mnist", "cifar10"):
        splits = load(name, val_fraction=0.0)
        count = min(args.max_samples, len(splits.train))
        data = ArrayData(splits.train.inputs[:count], splits.train.targets[:count])
        data = ArrayData(data.inputs.to(args.device), data.targets.to(args.device))
        dataset = TensorDataset(data.inputs, data.targets)
        for batch_size in args.batch_sizes:
            runs = {
                "DataLoader": partial(run_torch, dataset, batch_size),
                "ArrayLoader": partial(run_ours, data, batch_size, None),
            }
            if name == "cifar10":
                runs["ArrayLoader+augment"] = partial(run_ours, data, batch_size, Augment())
            seconds = medians_alternating(runs, args.repeats)
            base = count / seconds["DataLoader"]
            fast = count / seconds["ArrayLoader"]
            augmented = (
                f"{count / seconds['ArrayLoader+augment']:,.0f}"
                if "ArrayLoader+augment" in seconds
                else "-"
            )
            rows.append(
                [name, batch_size, f"{base:,.0f}", f"{fast:,.0f}", f"{fast / base:.1f}x", augmented]
            )
            print(rows[-1], flush=True)
    print()
    print(
        f"samples/s, median of {args.repeats} alternating passes over {args.max_samples} samples, "
        f"device {args.device}"
    )
    print(
        table(
            ["data", "batch", "DataLoader", "ArrayLoader", "ratio", "ArrayLoader + crop/flip"], rows
        )
    )


if __name__ == "__main__":
    main()
