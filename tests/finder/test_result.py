"""`RangeTestResult`: the lowest-loss LR is recorded, whatever the rule, and saved."""

import math

import pytest

from superconverge.finder.result import RangeTestResult, build_result

LRS = [10 ** (-6 + 7 * i / 99) for i in range(100)]


def _bowl_curve(lowest_at: float) -> dict:
    """A loss falling from 3 to its lowest at `lowest_at`, then climbing steeply."""
    losses = [1.0 + abs(math.log10(lr) - math.log10(lowest_at)) for lr in LRS]
    return {"lrs": LRS, "losses": losses, "smoothed": losses, "stop_reason": "test"}


@pytest.mark.parametrize("rule", ["minimum", "valley", "steepest"])
def test_the_lowest_loss_lr_is_recorded_whatever_the_rule(rule):
    lowest = LRS[70]  # an LR on the grid: 10 ** (-6 + 7 * 70 / 99)
    result = build_result(
        [_bowl_curve(lowest)], diverge_factor=4.0, rule=rule, policy="one_cycle", settings={}
    )
    assert result.lowest_loss_lr == pytest.approx(lowest)


def test_the_lowest_loss_lr_survives_json_and_old_files_load_without_it():
    result = build_result(
        [_bowl_curve(LRS[60])], diverge_factor=4.0, rule="minimum", policy="one_cycle", settings={}
    )
    again = RangeTestResult.from_json(result.to_json())
    assert again.lowest_loss_lr == result.lowest_loss_lr == pytest.approx(LRS[60])
    assert again == result
    old = result.to_dict()
    del old["lowest_loss_lr"]  # a file saved before the field existed
    assert RangeTestResult.from_dict(old).lowest_loss_lr is None
