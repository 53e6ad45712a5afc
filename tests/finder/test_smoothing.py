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
