"""Which reference model suits which data: the default, its options, the shapes it requires.

The CLI asks here instead of deciding itself: `default_model_for` picks a model for a data set,
`model_options_for` sizes a named one for the data (or says why it does not fit), and
`ModelFactory` rebuilds it by name in worker processes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import nn

from superconverge.models.zoo import MODELS, build

# the input shape (C, H, W) each image model is built for; the others take any shape
IMAGE_SHAPES: dict[str, tuple[int, ...]] = {
    "mnist-cnn": (1, 28, 28),
    "cifar-resnet": (3, 32, 32),
    "resnet56": (3, 32, 32),
    "resnet9": (3, 32, 32),
}
WIDTH_MODELS = ("cifar-resnet", "resnet9")  # the models with a `width` option
# CPU-sized CIFAR ResNet, with the published runs' BatchNorm fraction 0.95 (arXiv:1708.07120)
DEFAULT_CIFAR_OPTIONS: dict[str, object] = {"width": 0.25, "bn_momentum": 0.05}


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def default_model_for(data: str, input_shape: Sequence[int]) -> tuple[str, dict[str, object]]:
    """The reference model for a data set: a small CNN for 28x28, a CPU-sized CIFAR ResNet for
    32x32 colour images, an MLP otherwise.

    Example:
        >>> default_model_for("digits", (1, 8, 8))
        ('mlp', {'in_features': 64})
    """
    shape = tuple(input_shape)
    if shape == IMAGE_SHAPES["mnist-cnn"]:
        return "mnist-cnn", {}
    if shape == IMAGE_SHAPES["cifar-resnet"]:
        return "cifar-resnet", dict(DEFAULT_CIFAR_OPTIONS)
    return "mlp", {"in_features": math.prod(shape)}


def model_options_for(
    name: str, input_shape: Sequence[int], num_classes: int, width: float | None = None
) -> dict[str, Any]:
    """The `build` options that size model `name` for data of `input_shape` and `num_classes`.

    Raises:
        ValueError: an unknown name, a model that needs another input shape, or a `width` for a
            model without that option. Messages start with ``model`` or ``width``.

    Example:
        >>> model_options_for("mlp", (1, 8, 8), 10)
        {'num_classes': 10, 'in_features': 64}
    """
    if name not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {name!r}")
    needed = IMAGE_SHAPES.get(name)
    if needed is not None and tuple(input_shape) != needed:
        raise ValueError(
            f"model {name} needs {_shape_text(needed)} inputs; the data has "
            f"{_shape_text(input_shape)} (use mlp, or data of that shape)"
        )
    options: dict[str, Any] = {"num_classes": num_classes}
    if name == "mlp":
        options["in_features"] = math.prod(input_shape)
    if width is not None:
        if name not in WIDTH_MODELS:
            raise ValueError(f"width applies to {' and '.join(WIDTH_MODELS)}, not {name}")
        options["width"] = width
    return options


class ModelFactory:
    """A picklable ``() -> nn.Module`` that builds a reference model by name (worker processes
    rebuild the model from it).

    Example:
        >>> factory = ModelFactory("mlp", {"in_features": 4, "num_classes": 2})
        >>> factory()(__import__("torch").zeros(1, 4)).shape
        torch.Size([1, 2])
    """

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        self.options = dict(options)

    def __call__(self) -> nn.Module:
        return build(self.name, **self.options)

    def __repr__(self) -> str:
        return f"ModelFactory({self.name!r}, {self.options!r})"
