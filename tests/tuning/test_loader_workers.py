"""`tune` over a map-style Dataset with DataLoader workers: one run's workers at a time.

The recipe makes many trainers (range tests, short runs, the final run); each used to keep its
persistent workers until the garbage collector found it, so workers of finished runs lived on
beside the next run's (8 worker processes at once on CIFAR-10 PNGs, docs/benchmarks.md). Now
each run's trainer is closed when the run ends: at most the training loader's workers plus one
evaluation loader's (while validating) are alive, and none once `tune` returns.
"""

import contextlib
import gc
import sys
import threading
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

import superconverge as sc
from superconverge.tuning import RecipeSettings

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="counts child processes in /proc"
)
WORKERS = 2


class Images(Dataset):
    """`n` random 3x8x8 images whose class (of 4) a linear map of the pixels decides."""

    def __init__(self, n, seed):
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 3, 8, 8, generator=generator)
        weights = torch.randn(192, 4, generator=torch.Generator().manual_seed(7))
        self.y = (self.x.flatten(1) - 0.5).matmul(weights).argmax(1)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return self.x[index], self.y[index]


def make_model():
    return nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.ReLU(), nn.Linear(32, 4))


def children():
    """This process's child processes (the DataLoader workers), from /proc."""
    found = []
    for task in Path("/proc/self/task").glob("*/children"):
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            found += task.read_text().split()
    return len(found)


class Sampler:
    """The most child processes seen, sampled every few milliseconds in a thread."""

    def __init__(self):
        self.most = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self.done.wait(0.002):
            self.most = max(self.most, children())

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


def test_tune_keeps_one_runs_workers_alive_and_none_after_it_returns():
    gc.collect()  # workers of loaders an earlier test dropped
    before = children()  # any still held by an earlier test's objects are not tune's
    with Sampler() as sampled:
        plan = sc.tune(
            make_model,
            Images(384, 0),
            Images(96, 1),
            epochs=1,
            test_data=Images(96, 2),
            num_workers=WORKERS,
            batch_size=32,
            budget=2.0,
            settings=RecipeSettings(lr_search="short_runs"),
        )
        left = children()
    assert plan.results["status"] == "completed"
    # the range tests, the short runs and the final run each started workers of their own
    assert plan.evidence[1]["details"]["short_runs"]
    # training workers + one evaluation loader's (validation or test), never two runs' at once
    assert 0 < sampled.most - before <= 2 * WORKERS
    assert left == before  # the final run's trainer (plan.trainer) was closed too
    # closed, not broken: the trainer starts workers again when asked to evaluate
    assert plan.trainer.evaluate()["loss"] > 0
