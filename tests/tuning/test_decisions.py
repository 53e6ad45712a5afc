import pytest

from superconverge.tuning.decisions import (
    choose_batch_size,
    choose_weight_decay,
    default_model_for,
    weight_decay_midpoint,
)


def test_batch_size_where_throughput_stops_growing():
    assert choose_batch_size({16: 100.0, 32: 200.0, 64: 215.0, 128: 220.0}, 1000)[0] == 32
    assert choose_batch_size({16: 100.0, 32: 200.0, 64: 400.0}, 1000)[0] == 64  # still growing
    assert choose_batch_size({16: 100.0, 32: 200.0, 64: 400.0}, 40)[0] == 32  # capped by the data
    with pytest.raises(ValueError, match="no measured batch size fits"):
        choose_batch_size({64: 1.0}, 10)


def test_weight_decay_midpoint_between_close_neighbours_only():
    assert weight_decay_midpoint({1e-3: 0.300, 1e-4: 0.301, 1e-5: 0.5}) == pytest.approx(10**-3.5)
    assert weight_decay_midpoint({1e-3: 0.300, 1e-4: 0.400, 1e-5: 0.5}) is None  # not close
    assert weight_decay_midpoint({1e-5: 0.300, 0.0: 0.300}) is None  # zero has no exponent
    # neighbours are adjacent in exponent: 1e-3's neighbour is 10^-3.5, which is not close
    assert weight_decay_midpoint({1e-3: 0.3, 10**-3.5: 0.5, 1e-4: 0.3001}) is None


def test_choose_weight_decay_and_default_models():
    wd, why = choose_weight_decay({1e-3: 0.5, 1e-4: 0.3, 0.0: float("nan")})
    assert wd == 1e-4 and "1e-04: 0.3000" in why.replace("0.0001", "1e-04")
    assert choose_weight_decay({1e-3: float("nan")})[0] == 0.0
    assert default_model_for("mnist", (1, 28, 28))[0] == "mnist-cnn"
    assert default_model_for("cifar10", (3, 32, 32)) == (
        "cifar-resnet",
        {"width": 0.25, "bn_momentum": 0.05},
    )
    assert default_model_for("digits", (1, 8, 8)) == ("mlp", {"in_features": 64})
