"""Run by test_trials.py as a separate process: a worker of a tune study (the Python API).

Usage: python trials_worker.py URL EPOCHS SLEEP_S
"""

import sys
import time

import torch
from torch import nn

import superconverge as sc
from superconverge.data import load
from superconverge.models import build
from superconverge.tuning import TrialStudy


class Slow(nn.Module):
    """The digits MLP, `delay` seconds slower a forward pass (a trial long enough to kill)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.mlp, self.delay = build("mlp"), delay

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.delay:
            time.sleep(self.delay)
        return self.mlp(x)


def arguments(epochs: int, delay: float) -> tuple:
    digits = load("digits")
    return (lambda: Slow(delay), digits.train, digits.val), {"epochs": epochs, "seed": 0}


if __name__ == "__main__":
    url, epochs, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    torch.set_num_threads(1)
    positional, keywords = arguments(epochs, delay)
    study = TrialStudy(url, heartbeat=1, grace=3, retries=2, poll=0.1)
    plan = sc.tune(*positional, **keywords, study=study, join=True)
    print(f"worker done: max_lr {plan.max_lr!r}")
