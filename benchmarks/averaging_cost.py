"""What `WeightAverage` costs a fit: the same `fit_one_cycle` on the benchmarks' models and data
(`contenders.py`'s MNIST CNN, SST-2 bag of words, CIFAR-10 ResNet 1/8), with and without the
callback (every step averaged, `keep="better"`: BatchNorm statistics recomputed, the paired
comparison on the validation data), alternating, one torch thread. The table gives the median
seconds of each over the rounds, their ratio, and how much of the time with the callback its
end (BatchNorm refresh and the four validation passes) took. Training samples are the same
with and without: the callback trains nothing.

    cd benchmarks && SUPERCONVERGE_DATA=../../shared/data PYTHONPATH=../src \\
        python averaging_cost.py --data mnist sst2 --rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from _common import machine, table
from contenders import DEFAULTS, load_task
from superconverge.training import Trainer, WeightAverage


class _EndTimer(WeightAverage):
    """`WeightAverage` that times its end (the refresh and the comparison)."""

    seconds = 0.0

    def after_fit(self, fit):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        super().after_fit(fit)
        self.seconds = time.perf_counter() - start


def one_fit(task, epochs: int, batch: int, averaging: bool) -> tuple[float, float]:
    """Seconds of one fit (and of the callback's end)."""
    callback = _EndTimer() if averaging else None
    torch.manual_seed(0)
    trainer = Trainer(task.build_model(), torch.nn.functional.cross_entropy, task.train,
                      task.val, optimizer="adamw", weight_decay=0.1, batch_size=batch,
                      augment=task.augment, progress=False, seed=0,
                      callbacks=[] if callback is None else [callback])  # fmt: skip
    start = time.perf_counter()
    trainer.fit_one_cycle(epochs, 0.003)
    return time.perf_counter() - start, 0.0 if callback is None else callback.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", default=["mnist", "sst2"], choices=list(DEFAULTS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine())
    rows = []
    for data in args.data:
        setup = dataclasses.replace(DEFAULTS[data], train_size=0, val_size=0)
        if data == "cifar10":
            setup = dataclasses.replace(setup, val_size=5000, width=0.125)
        task = load_task(setup)
        batch = 32 if data == "cifar10" else 128  # what tune chose on each
        plain, averaged, ends = [], [], []
        for _ in range(args.rounds):
            plain.append(one_fit(task, args.epochs, batch, False)[0])
            seconds, end = one_fit(task, args.epochs, batch, True)
            averaged.append(seconds)
            ends.append(end)
        without, with_ = statistics.median(plain), statistics.median(averaged)
        end = statistics.median(ends)
        samples = args.epochs * len(task.train)
        rows.append([data, f"{args.epochs} ({samples:,} samples)", f"{without:.1f}",
                     f"{with_:.1f}", f"{with_ / without:.3f}", f"{end:.1f}",
                     f"{(with_ - end) / without:.3f}"])  # fmt: skip
        print(rows[-1], flush=True)
    header = ["data", "epochs", "fit s, without", "fit s, with WeightAverage", "ratio",
              "its end, s", "ratio without the end"]  # fmt: skip
    print(table(header, rows))


if __name__ == "__main__":
    main()
