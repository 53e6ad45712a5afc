import math

import pytest

from superconverge.finder.smoothing import LossSmoother


def _smoothed(losses, beta, **kwargs):
    smoother = LossSmoother(beta, **kwargs)
    return [smoother.add(loss) for loss in losses]


def test_smoothing_is_bias_corrected_and_matches_hand_values():
    assert _smoothed([1.0, 3.0], 0.5) == pytest.approx([1.0, 1.75 / 0.75])
    assert _smoothed([2.0] * 5, 0.98) == pytest.approx([2.0] * 5)
    assert math.isnan(_smoothed([1.0, math.nan], 0.5)[1])


def test_a_non_finite_loss_is_divergence():
    smoother = LossSmoother(0.5)
    smoother.add(1.0)
    assert smoother.divergence() is None
    smoother.add(math.inf)
    assert smoother.divergence() == "the loss became non-finite"


def test_divergence_against_the_running_minimum():
    smoother = LossSmoother(0.0, diverge_factor=4.0)
    for loss in (8.0, 1.0, 3.9):  # 3.9 < 4 x the minimum 1.0
        smoother.add(loss)
    assert smoother.divergence() is None
    smoother.add(4.1)
    assert "passed 4x its minimum 1" in smoother.divergence()


def test_a_blow_up_in_the_warm_up_that_stays_flat_is_divergence():
    """Digits MLP at max_lr=1e3: loss 2.3 at the start, then flat at 565 (issue 13, item 4)."""
    smoother = LossSmoother(0.0, diverge_factor=4.0, warmup_steps=3)
    for loss in [2.3] + [565.0] * 10:
        smoother.add(loss)
    assert smoother.best == 565.0  # against its own minimum nothing looks wrong
    assert "passed 4x the first loss 2.3" in smoother.divergence()


def test_no_verdict_inside_the_warm_up():
    smoother = LossSmoother(0.0, diverge_factor=4.0, warmup_steps=3)
    for loss in (1.0, 100.0, 100.0):
        smoother.add(loss)
    assert smoother.divergence() is None


def test_a_blow_up_of_orders_of_magnitude_inside_the_warm_up_is_divergence():
    # a user's check: a 7-step fit whose losses went 2.34, 4.4e7, 1.6e17, 1.1e22 was reported
    # "completed" (the warm-up judged nothing but NaN)
    smoother = LossSmoother(0.0, diverge_factor=4.0, warmup_steps=10)
    for loss in (2.34, 2000.0):  # under 1000 x 2.34: a loss still settling
        smoother.add(loss)
        assert smoother.divergence() is None
    smoother.add(4.4e7)
    assert smoother.divergence() == (
        "the smoothed loss 4.4e+07 passed 1000x the first loss 2.34 (or 1) within its first 10 "
        "steps"
    )
    tiny = LossSmoother(0.0, diverge_factor=4.0, warmup_steps=10)  # a fine-tuned model's 0.001
    for loss in (0.001, 0.5, 900.0):  # 1000 x 1, not 1000 x 0.001
        tiny.add(loss)
        assert tiny.divergence() is None


def test_a_floor_keeps_a_trained_models_noise_from_counting_as_divergence():
    """Digits final run after a back-off: losses near 0.002 then a batch or two at 0.01 passed
    4x the running minimum, and the recipe redid its final run (2026-12-01)."""
    losses = [2.3] + [0.002] * 20 + [0.012] * 5
    plain = LossSmoother(0.0, diverge_factor=4.0, warmup_steps=3)
    floored = LossSmoother(0.0, diverge_factor=4.0, warmup_steps=3, floor_fraction=0.05)
    for loss in losses:
        plain.add(loss)
        floored.add(loss)
    assert "passed 4x its minimum 0.002" in plain.divergence()
    assert floored.divergence() is None  # the minimum is read as 5% of 2.3: 0.115
    floored.add(0.5)  # above 4 x 0.115: a real rise
    assert "passed 4x its minimum 0.115" in floored.divergence()


def test_a_given_first_loss_is_kept():
    """A fit continued after a back-off or a resume keeps its own first loss as the reference,
    not the loss of the next batch it sees."""
    given = LossSmoother(0.0, diverge_factor=4.0, first=0.5)
    fresh = LossSmoother(0.0, diverge_factor=4.0)
    for smoother in (given, fresh):
        smoother.add(3.0)
    assert given.first == 0.5 and "passed 4x the first loss 0.5" in given.divergence()
    assert fresh.first == 3.0 and fresh.divergence() is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"floor_fraction": 1.0}, r"floor_fraction must be in \[0, 1\), got 1.0"),
        ({"floor_fraction": -0.1}, r"floor_fraction must be in \[0, 1\), got -0.1"),
        ({"first": math.inf}, "first must be a finite loss or None, got inf"),
    ],
)
def test_bad_floor_or_first_names_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LossSmoother(0.98, 4.0, **kwargs)


def test_a_loss_below_zero_diverges_on_the_scale_of_its_fall():
    # 4x a minimum at or below 0 means nothing: such curves ran on to a non-finite loss
    smoother = LossSmoother(smoothing=0.0, diverge_factor=4.0)
    for loss in (-1.0, -1.01, -1.015):  # has not fallen 2% yet: noise is no divergence
        smoother.add(loss)
    smoother.add(-1.0)
    assert smoother.divergence() is None
    for loss in (-2.0, -3.0):  # fell by 2
        smoother.add(loss)
    smoother.add(2.9)  # 5.9 above the minimum: less than 3x the fall
    assert smoother.divergence() is None
    smoother.add(3.1)  # 6.1 above it
    reason = smoother.divergence()
    assert reason is not None and "rose above its minimum -3 by more than 3x its fall" in reason
    # a positive loss keeps the ratio
    positive = LossSmoother(smoothing=0.0, diverge_factor=4.0)
    for loss in (2.0, 0.5, 1.9):
        positive.add(loss)
    assert positive.divergence() is None
    positive.add(2.1)
    assert "passed 4x its minimum 0.5" in positive.divergence()
