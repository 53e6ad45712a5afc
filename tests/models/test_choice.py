import pickle

import pytest
import torch

from superconverge.models import ModelFactory, default_model_for, model_options_for


def test_default_model_per_input_shape():
    assert default_model_for("mnist", (1, 28, 28)) == ("mnist-cnn", {})
    assert default_model_for("cifar10", (3, 32, 32)) == (
        "cifar-resnet",
        {"width": 0.25, "bn_momentum": 0.05},
    )
    assert default_model_for("digits", (1, 8, 8)) == ("mlp", {"in_features": 64})
    assert default_model_for("table", (7,)) == ("mlp", {"in_features": 7})


def test_default_options_are_a_fresh_dict_each_time():
    first = default_model_for("cifar10", (3, 32, 32))[1]
    first["num_classes"] = 3
    assert "num_classes" not in default_model_for("cifar10", (3, 32, 32))[1]


def test_options_size_the_model_for_the_data():
    assert model_options_for("mlp", (1, 8, 8), 10) == {"num_classes": 10, "in_features": 64}
    assert model_options_for("mnist-cnn", (1, 28, 28), 10) == {"num_classes": 10}
    assert model_options_for("resnet9", (3, 32, 32), 10, width=0.5) == {
        "num_classes": 10,
        "width": 0.5,
    }


@pytest.mark.parametrize(
    ("name", "shape", "width", "message"),
    [
        ("resnet9", (1, 8, 8), None, "model resnet9 needs 3x32x32 inputs; the data has 1x8x8"),
        ("mnist-cnn", (3, 32, 32), None, "model mnist-cnn needs 1x28x28 inputs"),
        ("mlp", (1, 8, 8), 0.5, "width applies to cifar-resnet and resnet9, not mlp"),
        ("vgg", (1, 8, 8), None, "model must be one of mlp, mnist-cnn"),
    ],
)
def test_options_name_what_does_not_fit(name, shape, width, message):
    with pytest.raises(ValueError, match=message):
        model_options_for(name, shape, 10, width)


def test_factory_builds_the_named_model_and_pickles():
    factory = ModelFactory("mlp", {"in_features": 4, "num_classes": 3})
    again = pickle.loads(pickle.dumps(factory))
    assert again().__class__ is factory().__class__
    assert factory()(torch.zeros(2, 4)).shape == (2, 3)
