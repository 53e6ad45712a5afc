import pytest

from superconverge.tuning.decisions import (
    choose_batch_size,
    choose_max_lr,
    choose_weight_decay,
    weight_decay_midpoint,
)


def test_batch_size_where_throughput_stops_growing():
    assert choose_batch_size({16: 100.0, 32: 200.0, 64: 215.0, 128: 220.0}, 1000)[0] == 32
    assert choose_batch_size({16: 100.0, 32: 200.0, 64: 400.0}, 1000)[0] == 64  # still growing
    assert choose_batch_size({16: 100.0, 32: 200.0, 64: 400.0}, 40)[0] == 32  # capped by the data
    size, why = choose_batch_size({16: 100.0, 32: 200.0}, 16)  # nothing to compare with
    assert size == 16 and "only candidate size allowed" in why and "grew" not in why
    with pytest.raises(ValueError, match="no measured batch size fits"):
        choose_batch_size({64: 1.0}, 10)


def test_weight_decay_midpoint_between_close_neighbours_only():
    assert weight_decay_midpoint({1e-3: 0.300, 1e-4: 0.301, 1e-5: 0.5}) == pytest.approx(10**-3.5)
    assert weight_decay_midpoint({1e-3: 0.300, 1e-4: 0.400, 1e-5: 0.5}) is None  # not close
    assert weight_decay_midpoint({1e-5: 0.300, 0.0: 0.300}) is None  # zero has no exponent
    # neighbours are adjacent in exponent: 1e-3's neighbour is 10^-3.5, which is not close
    assert weight_decay_midpoint({1e-3: 0.3, 10**-3.5: 0.5, 1e-4: 0.3001}) is None


def test_choose_weight_decay():
    wd, why = choose_weight_decay({1e-3: 0.5, 1e-4: 0.3, 0.0: float("nan")})
    assert wd == 1e-4 and "1e-04: 0.3000" in why.replace("0.0001", "1e-04")
    assert choose_weight_decay({1e-3: float("nan")})[0] == 0.0


def test_max_lr_moves_up_only_when_clearly_better():
    # the lowest finite candidate by default
    assert choose_max_lr({0.01: 0.30, 0.02: 0.299, 0.033: 0.298})[0] == 0.01
    # a higher one that wins by more than 2% is taken; the next must beat *it* by 2%
    assert choose_max_lr({0.01: 0.30, 0.02: 0.25, 0.033: 0.248})[0] == 0.02
    assert choose_max_lr({0.01: 0.30, 0.02: 0.25, 0.033: 0.20})[0] == 0.033
    # a diverged run is never chosen, and a diverged low run does not block a finite high one
    assert choose_max_lr({0.01: float("nan"), 0.02: 0.4, 0.033: float("inf")})[0] == 0.02
    chosen, why = choose_max_lr({0.01: float("nan")})
    assert chosen is None and why == "every short run diverged"


def test_lower_candidate_only_at_the_low_edge_of_the_grid():
    from superconverge.tuning.decisions import lower_candidate

    assert lower_candidate({0.05: 1.7, 0.1: 2.3, 0.17: float("nan")}, 0.05) == pytest.approx(
        0.05 / 3
    )
    assert lower_candidate({0.05: 0.3, 0.1: 0.2}, 0.1) is None
    assert lower_candidate({0.05: float("nan"), 0.1: float("nan")}, None) == pytest.approx(0.05 / 3)
