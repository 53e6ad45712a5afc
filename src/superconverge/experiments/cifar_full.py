"""``cifar10-full``: the published Keras super-convergence experiment on the full CIFAR-10.

The seeds' notebook trained the 8-block residual network (`cifar-resnet`, BatchNorm
moving-average fraction 0.95) on 40,000 CIFAR-10 images (Keras ``validation_split=0.2``: the
last 10,000 of the 50,000 are the validation set) at Keras's default batch 32, so 1,250
updates per epoch, and measured all 10,000 test images. The contenders and their published
test accuracies are those of `cifar_superconvergence` (one cycle 0.1-3.5 without momentum for
E = 8 epochs 0.8636; piecewise-constant 0.35/0.035/0.0035 for 8E 0.5015; constant 0.35 for E
0.5656 and 1.5E 0.716; Adam for E 0.6429), plus our recipe for E epochs. That module runs
them; this one only fixes the protocol: the full data, batch 32, 40,000 / 10,000 / 10,000.

`FULL_CUDA` is the published protocol (width 1, 8 blocks, E = 8). `FULL` is the protocol sized
for one shared CPU thread: the same data, batch and updates per epoch, but a network of width
0.125 and 2 blocks, E = 1, and a piecewise baseline of 4E epochs, not 8E (so 4 epochs,
5,000 updates, against the published 64 epochs, 80,000 updates).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from superconverge.experiments import cifar_superconvergence
from superconverge.experiments.cifar import data_root
from superconverge.experiments.cifar_superconvergence import (
    CONTENDERS,
    PUBLISHED,
    Settings,
    recorded_runs,
)

TRAIN, VAL = 40_000, 10_000  # Keras validation_split=0.2 of the 50,000 training images

FULL = Settings(
    epochs=1,
    width=0.125,
    blocks=2,
    batch_size=32,
    train_samples=TRAIN,
    val_samples=VAL,
    piecewise_factor=4,
)
FULL_CUDA = Settings(
    epochs=8, width=1.0, blocks=8, batch_size=32, train_samples=TRAIN, val_samples=VAL
)
QUICK = Settings(
    epochs=1,
    width=0.125,
    blocks=1,
    batch_size=32,
    train_samples=2048,
    test_samples=1000,
    val_samples=512,
)


def run(
    out: Path, settings: Settings, data_dir: str | None = None, device: str = "auto"
) -> dict[str, Any]:
    """`cifar_superconvergence.run` on the full archive (default ``$SUPERCONVERGE_DATA/cifar10-full``)."""
    return cifar_superconvergence.run(out, settings, data_root(data_dir), device, "cifar10-full")


__all__ = [
    "CONTENDERS",
    "FULL",
    "FULL_CUDA",
    "PUBLISHED",
    "QUICK",
    "Settings",
    "data_root",
    "recorded_runs",
    "run",
]
