"""What the Trainer adds per batch when it reads a user's loader instead of an `ArrayLoader`.

The training loop reads a user's loader through the library's wrapper (`FactoryLoader`: the
position, ``peek``), the batch hook (`split_batch`: pairs, dicts, ``batch_fn``) and `forward`
(dict inputs as keywords, ``logits`` out of model outputs); the `ArrayLoader` path calls the
model directly. This times those layers alone, around a model that does nothing
(``nn.Identity``), against a plain ``for inputs, targets in batches: model(inputs)``; the two
alternate, and the table gives medians over rounds of microseconds per batch.

    cd benchmarks && PYTHONPATH=../src python batch_hook_cost.py --rounds 21
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from _common import machine
from superconverge.batches import forward, split_batch
from superconverge.data.sources import as_source


class _Batches:
    """A sized iterable of ``[inputs, targets]`` lists (what ``default_collate`` yields)."""

    def __init__(self, batches: list[list[torch.Tensor]]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--batches", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x = torch.randn(32, 64)
    batches = _Batches([[x, x[:, 0]]] * args.batches)
    model = torch.nn.Identity()
    loader = as_source(batches).loader(32)

    def hand_written() -> None:
        for inputs, _targets in batches:
            model(inputs)

    def trainer_path() -> None:  # the loop's `_batches` and its call, as in training/loop.py
        for inputs, _targets in (split_batch(b, None, "train_data") for b in loader):
            forward(model, inputs)

    times: dict[str, list[float]] = {"hand-written": [], "library": []}
    runs = (("hand-written", hand_written), ("library", trainer_path))
    for round_index in range(args.rounds):
        for name, run in runs if round_index % 2 else runs[::-1]:
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) / args.batches * 1e6)
    extra = [b - a for a, b in zip(times["hand-written"], times["library"], strict=True)]
    print(machine())
    print("| path | µs per batch (median) |\n|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} |")
    print(f"| library - hand-written, per round (median) | {statistics.median(extra):.2f} |")


if __name__ == "__main__":
    main()
