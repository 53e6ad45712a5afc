"""Reference models of the published experiments: `build(name, **options)`, and which one
suits which data (`default_model_for`, `model_options_for`)."""

from superconverge.models.choice import (
    IMAGE_SHAPES,
    ModelFactory,
    default_model_for,
    model_options_for,
)
from superconverge.models.zoo import (
    MODELS,
    bn_momentum_from_fraction,
    build,
    count_parameters,
    keras_init_,
)

__all__ = [
    "IMAGE_SHAPES",
    "MODELS",
    "ModelFactory",
    "bn_momentum_from_fraction",
    "build",
    "count_parameters",
    "default_model_for",
    "keras_init_",
    "model_options_for",
]
