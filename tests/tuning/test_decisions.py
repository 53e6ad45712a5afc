import math

import pytest

from superconverge.tuning.decisions import (
    batch_sizes_to_try,
    choose_batch_size,
    choose_max_lr,
    choose_momentum,
    choose_weight_decay,
    extend_lr_grid,
    final_run_extension,
    final_run_failed,
    higher_candidate,
    largest_batch_allowed,
    lower_candidate,
    lr_grid,
    weight_decay_midpoint,
    weight_decay_runs_skipped,
)
from superconverge.tuning.settings import RecipeSettings


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


def test_no_lr_above_a_diverged_run_is_taken():
    # a user's regression: 0.272 -> 8.39, 0.544 diverged, 0.906 -> 7.58: 0.906 was chosen (at the
    # edge of stability; the final model was 4x worse than at an LR 30x lower)
    chosen, why = choose_max_lr({0.272: 8.39, 0.544: float("nan"), 0.906: 7.58})
    assert chosen == 0.272 and "0.544 diverged, so nothing above it counts" in why
    # below the divergence the usual rule holds; a winner above it is not taken either
    losses = {0.1: 0.5, 0.2: 0.4, 0.3: float("inf"), 0.5: 0.1}
    assert choose_max_lr(losses)[0] == 0.2
    # a divergence at the top, with nothing finite above it, changes nothing and is not mentioned
    chosen, why = choose_max_lr({0.1: 0.5, 0.2: 0.4, 0.3: float("nan")})
    assert chosen == 0.2 and "diverged" not in why


def test_lower_candidate_only_at_the_low_edge_of_the_grid():
    assert lower_candidate({0.05: 1.7, 0.1: 2.3, 0.17: float("nan")}, 0.05) == pytest.approx(
        0.05 / 3
    )
    assert lower_candidate({0.05: 0.3, 0.1: 0.2}, 0.1) is None
    assert lower_candidate({0.05: float("nan"), 0.1: float("nan")}, None) == pytest.approx(0.05 / 3)


def test_settings_reach_every_decision():
    strict = RecipeSettings(throughput_gain=0.5, close_losses=0.0, lr_safety_margin=0.5,
                            lr_extension_divisor=10.0, lr_raise_factor=4.0,
                            retry_loss_factor=0.0)  # fmt: skip
    # a 40% gain is not worth a doubling when 50% is asked for
    assert choose_batch_size({16: 100.0, 32: 140.0}, 1000, strict)[0] == 16
    assert weight_decay_midpoint({1e-3: 0.300, 1e-4: 0.301}, strict) is None
    assert choose_max_lr({0.01: 0.30, 0.02: 0.20}, strict)[0] == 0.01  # 33% < 50%
    assert lower_candidate({0.05: 1.0}, 0.05, strict) == pytest.approx(0.005)
    assert higher_candidate({0.05: 1.0}, 0.05, settings=strict) == pytest.approx(0.2)
    assert final_run_failed("completed", 0.1, 0.12, strict) is not None


def test_largest_batch_allowed_and_the_sizes_tried():
    assert largest_batch_allowed(60_000, 3) == 180  # 1,000 updates for 3 epochs
    assert largest_batch_allowed(60_000, 100) == 6_000  # a tenth of the set per update at most
    assert largest_batch_allowed(1_293, 2) == 16  # the update floor stops at 16
    assert largest_batch_allowed(5, 1) == 1  # never 0
    few = RecipeSettings(min_total_steps=1, min_steps_per_epoch=1)
    assert largest_batch_allowed(500, 1, few) == 500
    assert batch_sizes_to_try(180) == [16, 32, 64, 128]
    assert batch_sizes_to_try(16) == [16]
    assert batch_sizes_to_try(15) == [15]  # below every candidate: that size alone


def test_lr_grid_below_the_lowest_loss_lr_and_half_the_divergence_point():
    grid, ceiling = lr_grid(0.3, None)
    assert grid == pytest.approx([0.03, 0.06, 0.1]) and ceiling == 0.3
    grid, ceiling = lr_grid(0.3, 0.16)  # half of 0.16 caps the /3 candidate and the ceiling
    assert grid == pytest.approx([0.03, 0.06, 0.08]) and ceiling == pytest.approx(0.08)
    grid, _ = lr_grid(0.3, 0.02)  # every candidate capped: one run, not three equal ones
    assert grid == [0.01]
    own = RecipeSettings(lr_divisors=(1.0, 0.5), divergence_divisor=4.0)
    assert lr_grid(0.3, 2.0, own) == (pytest.approx([0.3, 0.5]), 0.3)


def test_the_grid_extends_downwards_while_lower_keeps_winning():
    losses = {0.03: 0.5, 0.06: 0.6}
    tried = []

    def loss_at(lr):  # lower is better down to 0.003, then worse
        tried.append(lr)
        return 0.4 if lr > 0.005 else 0.45

    extension = extend_lr_grid(losses, 0.03, "0.03 won", 0.3, loss_at)
    assert extension.below == pytest.approx((0.01, 0.01 / 3)) and extension.above == ()
    assert extension.max_lr == pytest.approx(0.01)
    assert "below the grid" in extension.why
    assert list(losses) == pytest.approx([0.03, 0.06, 0.01, 0.01 / 3])  # every run recorded


def test_every_diverged_run_looks_lower_and_nothing_finite_keeps_none():
    extension = extend_lr_grid({0.1: math.nan}, None, "every short run diverged", 1.0,
                               lambda lr: math.nan)  # fmt: skip
    assert extension.max_lr is None and len(extension.below) == 1  # no gain: stop at once


def test_the_grid_extends_upwards_by_the_margin_and_never_past_the_ceiling():
    losses = {0.01: 0.5, 0.02: 0.4}
    extension = extend_lr_grid(losses, 0.02, "0.02 won", 0.1, lambda lr: 0.4 - lr)
    assert extension.above == pytest.approx((0.04, 0.08, 0.1))  # the third capped at 0.1
    assert extension.max_lr == pytest.approx(0.1)
    # a higher LR that wins by less than the margin (2%) is not taken, and the search stops
    timid = extend_lr_grid({0.01: 0.5, 0.02: 0.4}, 0.02, "0.02 won", 1.0, lambda lr: 0.395)
    assert timid.above == (0.04,) and timid.max_lr == 0.02 and timid.why == "0.02 won"
    # at most lr_extensions runs
    once = extend_lr_grid({0.01: 0.5, 0.02: 0.4}, 0.02, "", 1.0, lambda lr: 0.4 - lr,
                          RecipeSettings(lr_extensions=1))  # fmt: skip
    assert once.above == (0.04,) and once.max_lr == 0.04


def test_choose_momentum_lowest_finite_loss_and_the_first_on_ties():
    assert choose_momentum({(0.95, 0.85): 0.3, 0.9: 0.2, 0.99: math.nan}) == 0.9
    assert choose_momentum({(0.95, 0.85): 0.3, 0.9: 0.3}) == (0.95, 0.85)
    assert choose_momentum({(0.95, 0.85): math.nan, 0.9: math.inf}) == (0.95, 0.85)


def test_the_final_run_is_extended_only_without_overfitting_and_by_whole_epochs():
    extra, why = final_run_extension(12_000, 5_000, 1.71, 1.62, 0.05)
    assert extra == 2 and "no overfitting" in why and "10,000 of the 12,000" in why
    # a training loss below the validation loss by more than the margin: decay is searched
    extra, why = final_run_extension(12_000, 5_000, 1.50, 1.62, 0.05)
    assert extra == 0 and "may overfit" in why and "1.5" in why and "1.62" in why
    # ... by less than the margin: inside the noise of a short run, no overfitting shown
    assert final_run_extension(12_000, 5_000, 1.55, 1.62, 0.05)[0] == 2
    assert final_run_extension(4_999, 5_000, 1.71, 1.62, 0.05) == (
        0, "the 4,999 samples left are less than one epoch (5,000)"
    )  # fmt: skip
    assert final_run_extension(-10, 5_000, 1.71, 1.62, 0.05)[0] == 0
    assert final_run_extension(50_000, 5_000, math.nan, 1.62, 0.05)[0] == 0
    assert final_run_extension(50_000, 5_000, None, 1.62, 0.05)[0] == 0
    off = RecipeSettings(extend_final_run=False)
    assert final_run_extension(50_000, 5_000, 1.71, 1.62, 0.05, off) == (
        0, "off (RecipeSettings.extend_final_run)"
    )  # fmt: skip


def test_weight_decay_runs_run_only_where_the_short_run_may_overfit():
    why = weight_decay_runs_skipped(1.71, 1.62, 0.05)
    assert why is not None and "no overfitting" in why and "1.71" in why and "5.0%" in why
    assert weight_decay_runs_skipped(1.55, 1.62, 0.05) is not None  # within the noise
    assert weight_decay_runs_skipped(1.50, 1.62, 0.05) is None  # a gap beyond it
    assert weight_decay_runs_skipped(math.nan, 1.62, 0.05) is None  # cannot tell: search
    assert weight_decay_runs_skipped(None, 1.62, 0.05) is None
    always = RecipeSettings(weight_decay_runs="always")
    assert weight_decay_runs_skipped(1.71, 1.62, 0.05, always) is None
    with pytest.raises(
        ValueError, match="weight_decay_runs must be 'if_overfitting' or 'always', got 'never'"
    ):
        RecipeSettings(weight_decay_runs="never")


def test_the_rules_read_a_loss_below_zero_as_they_read_one_above_it():
    from superconverge.tuning.decisions import choose_max_lr, choose_weight_decay, final_run_failed

    # a final run that ended lower than its short run is fine, whatever the sign
    assert final_run_failed("completed", -4.95, -4.56) is None
    assert final_run_failed("completed", -1.0, -4.56) is not None  # 3.56 above: 78% of |4.56|
    assert "3.56 above that of its short run" in final_run_failed("completed", -1.0, -4.56)
    # a higher LR must win by the margin of the loss's size, not by a ratio of a negative
    assert choose_max_lr({0.01: -4.35, 0.02: -4.30})[0] == 0.01  # worse: kept the lower LR
    assert choose_max_lr({0.01: -4.35, 0.02: -4.38})[0] == 0.01  # 0.7% better: within 2%
    lr, why = choose_max_lr({0.01: -4.35, 0.02: -4.56})
    assert lr == 0.02 and "by 4.8% (> 2.0%)" in why
    assert choose_weight_decay({1e-4: -4.30, 1e-3: -4.33}, anchor=1e-4, margin=0.02)[0] == 1e-4
    assert choose_weight_decay({1e-4: -4.30, 1e-3: -4.50}, anchor=1e-4, margin=0.02)[0] == 1e-3


def test_the_why_names_the_lower_lrs_that_were_tried_and_lost():
    # a user's reading: "chosen 0.00955: the lowest candidate" although 0.00318 was listed
    extension = extend_lr_grid({0.01: 0.5, 0.02: 0.6}, 0.01, "0.01: the lowest candidate", 1.0,
                               lambda lr: 0.7)  # fmt: skip
    assert extension.max_lr == 0.01 and extension.below == (0.01 / 3,)
    assert extension.why == "0.01: the lowest candidate; lower, 0.00333 did no better"
