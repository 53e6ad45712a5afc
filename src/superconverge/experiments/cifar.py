"""What the CIFAR-10 reproductions share: the papers' constants, where the data lives, the SGD
they train with, and writing the results folder.

``cifar10-superconvergence`` (and ``cifar10-full``, its protocol on the full archive) and
``cifar10-data-size`` each write ``results.json`` (rewritten after every run, so an interrupted
run resumes), ``results.md`` and ``accuracy.png`` into their output folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from superconverge._files import write_text_atomically
from superconverge.data import ArrayData, load
from superconverge.data.datasets import default_root

WEIGHT_DECAY = 1e-4  # the papers' value for their CIFAR-10 residual networks (both solvers)
BN_MOMENTUM = 0.05  # torch's momentum = 1 - the published moving-average fraction 0.95


def data_root(data_dir: str | None) -> str:
    """`data_dir`, or ``$SUPERCONVERGE_DATA/cifar10-full`` (where the full archive lives)."""
    return data_dir if data_dir is not None else str(default_root("cifar10-full"))


def pick_device(device: str) -> str:
    """``"auto"``: CUDA when available, else the CPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_cifar10(root: str | None, data_dir: str | None) -> tuple[ArrayData, ArrayData]:
    """(all training images, the test images) of the archive in `root`; a ValueError naming
    `data_dir` (what the caller was given) when the archive has no test batch."""
    splits = load("cifar10", root, val_fraction=0.0)
    if splits.test is None:
        raise ValueError(f"{data_dir}: the CIFAR-10 archive has no test_batch")
    return splits.train, splits.test


def sgd(momentum: float) -> Callable[[Any], torch.optim.Optimizer]:
    """SGD with `momentum` at `WEIGHT_DECAY`; the plan sets the LR."""

    def make(groups: Any) -> torch.optim.Optimizer:
        return torch.optim.SGD(groups, lr=0.1, momentum=momentum, weight_decay=WEIGHT_DECAY)

    return make


def write_results(
    out: Path,
    settings: Any,
    environment: dict[str, Any],
    key: str,
    rows: dict[str, Any],
    table: Callable[[dict[str, Any], Any, dict[str, Any]], str],
    plot: Callable[[dict[str, Any], Any], Any],
) -> None:
    """``results.json`` (the `settings` dataclass, the `environment` and the `rows` under `key`),
    then ``results.md`` (`table`) and ``accuracy.png`` (`plot`, a Figure), each written whole or
    not at all."""
    out.mkdir(parents=True, exist_ok=True)
    record = {"settings": asdict(settings), "environment": environment, key: rows}
    write_text_atomically(out / "results.json", json.dumps(record, indent=1))
    write_text_atomically(out / "results.md", table(rows, settings, environment))
    plot(rows, settings).savefig(out / "accuracy.png", dpi=110)


def finish_axes(ax: Any, xlabel: str, ylabel: str) -> None:
    """The shared look of the accuracy plots: labels, a light grid, a small legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
