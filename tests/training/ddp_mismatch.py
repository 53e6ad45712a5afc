"""Run by test_distributed.py under torchrun: two gloo ranks asked for different epochs (or,
with the argument ``seed``, seeded apart)."""

import sys

import torch
import torch.distributed as dist

from superconverge.data import load
from superconverge.models import build
from superconverge.training import Trainer


def main() -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    splits = load("digits")
    torch.manual_seed(0)
    seeded_apart = sys.argv[1:] == ["seed"]
    trainer = Trainer(build("mlp"), torch.nn.functional.cross_entropy, splits.train,
                      batch_size=16, progress=False, seed=rank if seeded_apart else 0)  # fmt: skip
    try:
        if seeded_apart:  # the loaders would order the samples apart: they overlap
            trainer.fit_one_cycle(2, 0.05)
        else:
            trainer.fit_one_cycle(2 + rank, 0.05)  # rank 0: 2 epochs, rank 1: 3
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
