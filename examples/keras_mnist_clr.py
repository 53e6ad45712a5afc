"""The published Keras MNIST comparison, in Keras 3 with superconverge.keras.

CyclicSGD (LR 0.0005-0.002, momentum 0.95 -> 0.8, step size 40 iterations) vs Adam (defaults)
vs SGD (LR 0.001, momentum 0.8), one epoch at batch 32, on the small CNN of the original
notebook (40,558 parameters, Keras's default Glorot-uniform initialisation) and, as published,
raw 0-255 pixels (``--scaling unit`` divides by 255). Prints the three test accuracies beside
the published ones (CLR 0.9664, Adam 0.9705, SGD 0.9630).

    KERAS_BACKEND=torch python examples/keras_mnist_clr.py [--data-dir ../shared/data/mnist]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "torch")


import keras
from superconverge.data import load
from superconverge.keras import CyclicSGD

PUBLISHED = {"CyclicSGD": 0.9664, "Adam": 0.9705, "SGD": 0.9630}


def optimizers() -> dict[str, keras.optimizers.Optimizer]:
    return {
        "CyclicSGD": CyclicSGD(bounds=(0.0005, 0.002), momentum_bounds=(0.95, 0.8), steps=40),
        "Adam": keras.optimizers.Adam(),
        "SGD": keras.optimizers.SGD(learning_rate=0.001, momentum=0.8),
    }


def cnn() -> keras.Model:
    """The notebook's CNN: three valid 3x3 convolutions, then Dense 64 and Dense 10."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.Conv2D(20, 3, strides=2, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(64),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", default=None, help="MNIST IDX files (default: $SUPERCONVERGE_DATA/mnist)"
    )
    parser.add_argument("--scaling", choices=("raw", "unit"), default="raw")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-samples", type=int, default=None, help="default: all 60,000")
    parser.add_argument("--test-samples", type=int, default=None, help="default: all 10,000")
    args = parser.parse_args(argv)

    splits = load("mnist", args.data_dir, val_fraction=0.0, normalize=args.scaling)
    x_train = splits.train.inputs.numpy().transpose(0, 2, 3, 1)[: args.train_samples]
    y_train = splits.train.targets.numpy()[: args.train_samples]
    x_test = splits.test.inputs.numpy().transpose(0, 2, 3, 1)[: args.test_samples]
    y_test = splits.test.targets.numpy()[: args.test_samples]
    print(f"MNIST: {len(x_train)} training, {len(x_test)} test images, {args.scaling} pixels, "
          f"backend {keras.backend.backend()}")  # fmt: skip

    accuracies = {}
    for name, optimizer in optimizers().items():
        keras.utils.set_random_seed(args.seed)
        model = cnn()
        model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
        start = time.perf_counter()
        model.fit(x_train, y_train, batch_size=32, epochs=1, verbose=0)
        _, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
        accuracies[name] = float(accuracy)
        print(f"{name:>9}: test accuracy {accuracy:.4f}  (published {PUBLISHED[name]:.4f}; "
              f"{time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    return accuracies


if __name__ == "__main__":
    main(sys.argv[1:])
