import numpy as np
import pytest
from sklearn.datasets import load_digits

import keras

assert keras.backend.backend() == "torch", "the root conftest.py sets KERAS_BACKEND=torch"


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits, scaled to [0, 1]: real data, 1,797 images of 8x8."""
    data = load_digits()
    return (data.data / 16.0).astype("float32"), data.target.astype("int64")


def make_model(optimizer, seed=0, dropout=0.0, hidden=32):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((64,)), keras.layers.Dense(hidden, activation="relu")]
    if dropout:
        layers.append(keras.layers.Dropout(dropout, seed=seed))
    layers.append(keras.layers.Dense(10))
    model = keras.Sequential(layers)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def values(variables):
    return [np.array(keras.ops.convert_to_numpy(v), copy=True) for v in variables]


def assert_bitwise_equal(left, right):
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b)


@pytest.fixture
def mixed_float16():
    """Keras's mixed_float16 policy, under which compile wraps the optimizer in a
    LossScaleOptimizer; the float32 policy again afterwards."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")
