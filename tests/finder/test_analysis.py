import math

import pytest

from superconverge.finder import (
    RangeTestResult,
    analyse,
    divergence_lr,
    suggest_minimum,
    suggest_steepest,
    suggest_valley,
)
from superconverge.finder.analysis import FAILURES, SWEEP_FURTHER
from superconverge.finder.result import build_result, superconvergence_check

LRS = [10 ** (-6 + 7 * i / 99) for i in range(100)]


def bowl(lr, lowest=-1.0):
    """A range-test-like curve: flat, falls around 1e-3, lowest at 10**lowest, then blows up."""
    x = math.log10(lr)
    fall = 1 / (1 + math.exp(4 * (x + 3)))
    rise = math.exp(3 * (x - lowest)) if x > lowest else 0.0
    return 0.5 + 2 * fall + rise


def _unsmoothed(losses):
    """The losses up to the first non-finite one, NaN from there (what a sweep records)."""
    first_bad = next((i for i, loss in enumerate(losses) if not math.isfinite(loss)), len(losses))
    return list(losses[:first_bad]) + [math.nan] * (len(losses) - first_bad)


def test_steepest_point_of_a_synthetic_loss_curve():
    lrs = [10 ** (-6 + 5 * i / 99) for i in range(100)]
    losses = [1 / (1 + math.exp(4 * (math.log10(lr) + 3))) for lr in lrs]  # steepest at 1e-3
    assert suggest_steepest(lrs, losses) == pytest.approx(1e-3, rel=0.15)


def test_steepest_ignores_the_fall_after_a_blow_up():
    losses = [bowl(lr) for lr in LRS]
    losses[-10:] = [5.0 - 0.4 * i for i in range(10)]  # the loss falling back after exploding
    assert suggest_steepest(LRS, losses) == pytest.approx(1e-3, rel=0.3)


def test_minimum_rule_is_the_lowest_loss_divided_by_ten():
    losses = [bowl(lr, lowest=-1.0) for lr in LRS]
    lowest = LRS[losses.index(min(losses))]
    assert suggest_minimum(LRS, losses) == pytest.approx(lowest / 10)
    assert 0.05 < lowest < 0.2


def test_valley_lies_inside_the_descent():
    losses = [bowl(lr) for lr in LRS]
    valley = suggest_valley(LRS, losses)
    assert 1e-4 < valley < 1e-1


def test_divergence_point_by_hand():
    assert divergence_lr([1, 2, 3, 4], [2.0, 1.0, 3.0, 5.0], 4.0) == 4
    assert divergence_lr([1, 2, 3], [2.0, 1.0, float("nan")], 4.0) == 3
    assert divergence_lr([1, 2, 3], [2.0, 1.0, 3.0], 4.0) is None


def test_analyse_recommends_minimum_over_ten_by_default():
    losses = [bowl(lr) for lr in LRS]
    analysis = analyse(LRS, losses, losses)
    assert analysis.rule == "minimum"
    assert analysis.max_lr == pytest.approx(analysis.suggestions["minimum"])
    assert "lowest at LR" in analysis.reason
    assert analysis.suggestions["divergence"] is not None


@pytest.mark.parametrize(
    ("losses", "phrase", "kind"),
    [
        ([2.0 + 0.001 * math.sin(i) for i in range(100)], "the loss is flat", "flat"),
        ([1.0 + 0.05 * i for i in range(100)], "never went down", "never_down"),
        ([3.0 - 0.02 * i for i in range(100)], "still falling at the end", "still_falling"),
        ([1.0] * 30 + [math.nan] * 70, "were NaN or infinite", "unstable"),
        # SST-2 with SGD: flat at 0.69 (noise of +-0.3%) over most of the sweep, then divergence;
        # the noise's lowest point is no LR to train at
        (
            [0.693 + 0.002 * math.sin(3 * i) for i in range(80)]
            + [0.7 * 1.1**i for i in range(20)],
            "the loss never fell",
            "no_fall",
        ),
    ],
    ids=["flat", "never-descends", "never-diverges", "mostly-nan", "flat-then-diverges"],
)
def test_honest_failure_gives_no_max_lr_and_a_reason(losses, phrase, kind):
    smoothed = _unsmoothed(losses)
    analysis = analyse(LRS, losses, smoothed)
    assert analysis.max_lr is None
    assert phrase in analysis.reason
    assert analysis.failure == kind and kind in FAILURES
    assert (kind in SWEEP_FURTHER) == ("raise end_lr" in analysis.reason)


def test_a_usable_curve_has_no_failure_kind():
    losses = [bowl(lr) for lr in LRS]
    analysis = analyse(LRS, losses, _unsmoothed(losses))
    assert analysis.max_lr is not None and analysis.failure is None


def test_too_few_points():
    analysis = analyse(LRS[:5], [1.0, 0.9, 0.8, 5.0, 9.0], [1.0, 0.9, 0.8, 5.0, 9.0])
    assert analysis.max_lr is None and "only 5 points" in analysis.reason
    assert analysis.failure == "too_few_points"


def test_unknown_rule_is_rejected():
    with pytest.raises(
        ValueError, match="rule must be one of minimum, valley, steepest, got 'consensus'"
    ):
        analyse(LRS, LRS, LRS, rule="consensus")


def _curve(shift=0.0):
    losses = [bowl(lr * 10**shift) for lr in LRS]
    return {"lrs": LRS, "losses": losses, "smoothed": losses, "stop_reason": "test"}


def test_repeats_report_their_median_and_spread():
    result = build_result(
        [_curve(0.0), _curve(0.2), _curve(-0.2)],
        diverge_factor=4.0,
        rule="minimum",
        policy="one_cycle",
        settings={},
    )
    singles = sorted(r for r in result.repeat_max_lrs)
    assert result.max_lr == singles[1]
    assert result.min_lr == pytest.approx(result.max_lr / 10)
    assert result.confidence.repeat_ratio == pytest.approx(singles[2] / singles[0])
    assert result.bounds("cyclic") == (pytest.approx(result.max_lr / 4), result.max_lr)
    assert result.bounds() == (result.min_lr, result.max_lr)


def test_bounds_default_to_the_policy_the_test_was_run_for():
    # lr_find(policy="cyclic").bounds() gave the one-cycle max/10, not its own min_lr (max/4)
    result = build_result([_curve(0.0)], diverge_factor=4.0, rule="minimum", policy="cyclic",
                          settings={})  # fmt: skip
    assert result.min_lr == pytest.approx(result.max_lr / 4)
    assert result.bounds() == (result.min_lr, result.max_lr)
    assert result.bounds("one_cycle") == (pytest.approx(result.max_lr / 10), result.max_lr)


def test_superconvergence_check():
    lrs = (0.01, 0.1, 0.3, 1.0, 3.0)
    likely = superconvergence_check(lrs, (0.5, 0.8, 0.85, 0.84, 0.83))
    assert likely.likely and "3" in likely.explanation
    unlikely = superconvergence_check(lrs, (0.5, 0.8, 0.6, 0.2, 0.1))
    assert not unlikely.likely and unlikely.lrs == lrs


def test_result_round_trips_through_json_with_nan():
    curve = _curve()
    curve["losses"] = [*curve["losses"][:-1], math.nan]
    result = build_result(
        [curve], diverge_factor=4.0, rule="minimum", policy="one_cycle", settings={"a": 1}
    )
    text = result.to_json()
    assert "NaN" not in text  # standard JSON
    back = RangeTestResult.from_json(text)
    assert math.isnan(back.losses[-1])
    assert back.max_lr == result.max_lr and back.suggestions == result.suggestions
    assert back.lrs == result.lrs and back.confidence == result.confidence


def test_the_failure_kind_survives_json_and_repeats_and_old_files_load():
    still = {"lrs": LRS, "losses": [3.0 - 0.02 * i for i in range(100)], "stop_reason": "test"}
    still["smoothed"] = still["losses"]
    single = build_result([still], diverge_factor=4.0, rule="minimum", policy="one_cycle",
                          settings={})  # fmt: skip
    assert single.max_lr is None and single.failure == "still_falling"
    assert RangeTestResult.from_json(single.to_json()).failure == "still_falling"
    # two of three repeats still falling: no answer, and the kind the repeats gave most
    mixed = build_result([_curve(), still, still], diverge_factor=4.0, rule="minimum",
                         policy="one_cycle", settings={})  # fmt: skip
    assert mixed.max_lr is None and mixed.failure == "still_falling"
    # a result saved before the field existed loads, with no failure kind
    data = build_result([_curve()], diverge_factor=4.0, rule="minimum", policy="one_cycle",
                        settings={}).to_dict()  # fmt: skip
    del data["failure"]
    assert RangeTestResult.from_dict(data).failure is None


def test_plot_returns_a_figure_with_the_bounds(tmp_path):
    result = build_result(
        [_curve()], diverge_factor=4.0, rule="minimum", policy="one_cycle", settings={}
    )
    figure = result.plot()
    assert figure.axes[0].get_xscale() == "log"
    assert "max_lr" in figure.axes[0].get_title()
    figure.savefig(tmp_path / "lr.png")
    assert (tmp_path / "lr.png").stat().st_size > 10_000


def test_the_plot_shows_the_plateau_above_a_low_first_loss():
    # a user's check: the top of the axis came from the first smoothed loss (0.893 from a
    # lucky first batch) and cut off the plateau at 1.09-1.2 before the minimum
    curve = _curve()
    losses = list(curve["losses"])
    losses[0] = min(losses[1:]) + 0.2 * (max(losses[: losses.index(min(losses))]) - min(losses))
    curve = {**curve, "losses": losses, "smoothed": losses}
    result = build_result([curve], diverge_factor=4.0, rule="minimum", policy="one_cycle",
                          settings={})  # fmt: skip
    low, top = result.plot().axes[0].get_ylim()
    lowest = min(losses)
    assert top >= max(losses[: losses.index(lowest) + 1]) and low < lowest
