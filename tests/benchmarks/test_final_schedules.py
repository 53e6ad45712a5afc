"""benchmarks/final_schedules.py: the WSD and D2Z plans the recipe's 1cycle is compared with."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import final_schedules  # noqa: E402


def test_wsd_warms_up_holds_the_peak_and_cools_down_linearly_to_zero():
    plan = final_schedules.schedule_plan("wsd", 0.4, 100)  # warmup 5, hold 75, cool-down 20
    lr = [plan.lr(step) for step in range(101)]
    assert lr[0] == pytest.approx(0.0)
    assert lr[5] == pytest.approx(0.4)  # the end of the warmup
    assert lr[2] == pytest.approx(0.4 * 2 / 5)
    assert all(value == pytest.approx(0.4) for value in lr[5:81])  # held to 80% of the steps
    assert lr[90] == pytest.approx(0.2)  # half-way down the cool-down
    assert lr[100] == pytest.approx(0.0)
    assert plan.momentum is not None and plan.momentum(50) == pytest.approx(0.9)
    assert plan.max_lr == 0.4 and plan.total_steps == 100 and plan.policy == "wsd"


def test_d2z_warms_up_then_decays_linearly_to_zero_at_the_last_step():
    plan = final_schedules.schedule_plan("d2z", 1.0, 105)  # warmup 5, then 100 steps down
    assert plan.lr(5) == pytest.approx(1.0)
    assert plan.lr(55) == pytest.approx(0.5)
    assert plan.lr(105) == pytest.approx(0.0)
    assert plan.lr(200) == pytest.approx(0.0)  # held past the end


def test_an_unknown_schedule_is_named_in_the_error():
    with pytest.raises(ValueError, match="'cosine'"):
        final_schedules.schedule_plan("cosine", 0.1, 10)
