"""`RangeTestResult`: the lowest-loss LR is recorded, whatever the rule, and saved."""

import json
import math
import re

import pytest
import torch

from superconverge.finder.result import RangeTestResult, build_result, superconvergence_check

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


def test_no_superconvergence_claim_at_chance():
    # issue 17: a CIFAR-10 network whose validation accuracy never left chance (best 0.115) was
    # said to "likely super-converge"
    lrs = (0.01, 0.1, 0.3, 1.0, 3.0, 10.0)
    flat = (0.10, 0.105, 0.115, 0.11, 0.112, 0.108)
    verdict = superconvergence_check(lrs, flat, chance=0.1)
    assert not verdict.likely
    assert "never rose clearly above chance (best 0.115, chance 0.100, needed 0.235)" in (
        verdict.explanation
    )
    assert superconvergence_check(lrs, (0.3, 0.6, 0.7, 0.72, 0.7, 0.69), chance=0.1).likely


def test_chance_is_the_most_common_class_of_the_validation_batches():
    from superconverge.finder.runner import _chance

    labels = torch.tensor([0, 0, 0, 1, 2, 3, 0, 1])
    assert _chance([(None, labels[:4]), (None, labels[4:])]) == pytest.approx(4 / 8)
    assert _chance([(None, torch.randn(4))]) is None  # regression targets: no chance level
    assert _chance(None) is None


def _saved(**change) -> dict:
    curve = {**_bowl_curve(LRS[60]), "val_steps": [10, 50], "val_losses": [2.0, 1.5],
             "val_accuracies": [0.2, None]}  # fmt: skip
    result = build_result([curve], diverge_factor=4.0, rule="minimum", policy="one_cycle",
                          settings={})  # fmt: skip
    return {**result.to_dict(), **change}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lrs": "oops"}, "field lrs must be tuple[float, ...], got 'oops'"),
        ({"losses": [1.0, "x"]}, "field losses[1] must be float, got 'x'"),
        (
            {"losses": [1.0, 2.0]},
            "smoothed_losses must be as long as each other, got lengths 100, 2",
        ),
        ({"val_accuracies": [0.2]}, "val_losses, val_accuracies must be as long as each other"),
        ({"val_steps": [10, 100]}, "field val_steps[1] must be a step of the sweep (0 to 99)"),
        ({"max_lr": "big"}, "field max_lr must be float | null, got 'big'"),
        ({"suggestions": {"valley": "x"}}, "field suggestions['valley'] must be float | null"),
        ({"confidence": {"level": 3}}, "field confidence must be Confidence | null, got"),
        ({"rule": None}, "field rule must be str, got None"),
        ({"notes": "x"}, "field notes must be tuple[str, ...], got 'x'"),
    ],
)
def test_a_range_test_of_the_wrong_shape_is_named_field_by_field(change, message):
    # a user's check: lrs "oops" loaded, and the report failed on zip()'s lengths
    with pytest.raises(ValueError, match=re.escape(message)):
        RangeTestResult.from_dict(_saved(**change))


def test_a_range_test_missing_a_field_says_so_and_non_finite_numbers_load():
    data = _saved(losses=["nan", *_saved()["losses"][1:-1], "inf"])  # as to_dict writes them
    assert math.isnan(RangeTestResult.from_json(json.dumps(data)).losses[0])
    del data["rule"], data["reason"]
    with pytest.raises(ValueError, match=r"^not a range test: rule, reason missing$"):
        RangeTestResult.from_dict(data)
