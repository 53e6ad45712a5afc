"""Run by test_distributed.py under torchrun: two gloo ranks asked for different epochs."""

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
    trainer = Trainer(build("mlp"), torch.nn.functional.cross_entropy, splits.train,
                      batch_size=16, progress=False)  # fmt: skip
    trainer.fit_one_cycle(2 + rank, 0.05)  # rank 0: 2 epochs, rank 1: 3


if __name__ == "__main__":
    main()
