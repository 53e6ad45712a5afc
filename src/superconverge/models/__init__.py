"""Reference models of the published experiments: `build(name, **options)`."""

from superconverge.models.zoo import (
    MODELS,
    bn_momentum_from_fraction,
    build,
    count_parameters,
    keras_init_,
)

__all__ = ["MODELS", "bn_momentum_from_fraction", "build", "count_parameters", "keras_init_"]
