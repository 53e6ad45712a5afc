import math
import pickle

import pytest

from superconverge.schedules import Chain, Constant, Cyclic, Piecewise, Ramp, Schedule


def test_linear_ramp_matches_hand_computed_values_and_holds():
    ramp = Ramp(start=1.0, end=3.0, steps=4)
    assert [ramp(t) for t in range(7)] == pytest.approx([1.0, 1.5, 2.0, 2.5, 3.0, 3.0, 3.0])


def test_cosine_ramp_halfway_is_the_midpoint():
    ramp = Ramp(start=1.0, end=0.0, steps=10, shape="cosine")
    assert ramp(0) == 1.0
    assert ramp(5) == pytest.approx(0.5)
    assert ramp(10) == pytest.approx(0.0)
    assert ramp(2.5) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)


def test_exponential_ramp_is_geometric():
    ramp = Ramp(start=1e-6, end=1.0, steps=6, shape="exponential")
    assert [ramp(t) for t in range(7)] == pytest.approx([10.0**-k for k in range(6, -1, -1)])


def test_chain_gives_boundary_step_to_the_earlier_phase():
    chain = Chain((Ramp(0.0, 2.0, 2), Ramp(2.0, 0.0, 4)))
    assert [chain(t) for t in range(9)] == pytest.approx([0, 1, 2, 1.5, 1, 0.5, 0, 0, 0])
    assert chain.duration == 6


def test_chain_rejects_a_never_ending_phase_before_the_last():
    with pytest.raises(ValueError, match=r"phases\[0\].*never ends"):
        Chain((Constant(1.0), Ramp(1.0, 0.0, 3)))


def test_piecewise_constant_changes_at_its_boundaries():
    schedule = Piecewise(values=(0.35, 0.035, 0.0035), boundaries=(3, 5))
    assert [schedule(t) for t in range(7)] == [0.35] * 3 + [0.035] * 2 + [0.0035] * 2


@pytest.mark.parametrize(
    ("values", "boundaries", "message"),
    [
        ((0.1, 0.01), (), "one more entry"),
        ((0.1, 0.01, 0.001), (5, 5), "increasing"),
        ((0.1, 0.01), (0,), "boundaries must be >= 1"),
        ((), (), "at least one value"),
    ],
)
def test_piecewise_rejects_inconsistent_pieces(values, boundaries, message):
    with pytest.raises(ValueError, match=message):
        Piecewise(values=values, boundaries=boundaries)


def test_triangular_matches_hand_computed_cycle():
    schedule = Cyclic(base=1.0, peak=5.0, half_cycle=4)
    assert [schedule(t) for t in range(11)] == pytest.approx([1, 2, 3, 4, 5, 4, 3, 2, 1, 2, 3])


def test_triangular2_halves_the_amplitude_each_cycle():
    schedule = Cyclic(base=0.0, peak=8.0, half_cycle=2, mode="triangular2")
    peaks = [schedule(2 + 4 * cycle) for cycle in range(4)]
    assert peaks == pytest.approx([8.0, 4.0, 2.0, 1.0])


def test_exp_range_scales_the_amplitude_by_gamma_to_the_step():
    schedule = Cyclic(base=0.0, peak=1.0, half_cycle=5, mode="exp_range", gamma=0.9)
    assert schedule(5) == pytest.approx(0.9**5)
    assert schedule(15) == pytest.approx(0.9**15)


def test_cyclic_may_run_downwards_for_momentum():
    schedule = Cyclic(base=0.95, peak=0.85, half_cycle=2)
    assert [schedule(t) for t in range(5)] == pytest.approx([0.95, 0.9, 0.85, 0.9, 0.95])


SCHEDULES = [
    Constant(0.1),
    Constant(0.9, steps=3.5),
    Ramp(0.1, 1.0, 7.5, "cosine"),
    Ramp(1e-7, 10.0, 99, "exponential"),
    Chain((Ramp(0.1, 1.0, 3), Ramp(1.0, 0.01, 5), Constant(0.01))),
    Piecewise((0.35, 0.035, 0.0035), (10, 20)),
    Cyclic(0.001, 0.006, 4, "exp_range", 0.99),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: type(s).__name__)
def test_schedules_round_trip_through_dict_and_pickle(schedule):
    rebuilt = Schedule.from_dict(schedule.to_dict())
    assert rebuilt == schedule
    assert pickle.loads(pickle.dumps(schedule)) == schedule
    assert [rebuilt(t) for t in range(30)] == [schedule(t) for t in range(30)]
    assert repr(schedule).startswith(type(schedule).__name__ + "(")


def test_from_dict_rejects_unknown_keys_and_types_by_name():
    with pytest.raises(ValueError, match=r"unknown Ramp settings: \['endlr'\]"):
        Schedule.from_dict({"type": "Ramp", "start": 1, "end": 2, "steps": 3, "endlr": 4})
    with pytest.raises(ValueError, match="unknown schedule type 'Spiral'"):
        Schedule.from_dict({"type": "Spiral"})


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: type(s).__name__)
def test_negative_steps_are_rejected(schedule):
    with pytest.raises(ValueError, match="step must be >= 0, got -1"):
        schedule(-1)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Ramp(1.0, 2.0, 0), "steps must be > 0, got 0"),
        (lambda: Ramp(1.0, 2.0, 3, "spline"), "shape must be one of"),
        (lambda: Ramp(0.0, 2.0, 3, "exponential"), "start > 0 and end > 0"),
        (lambda: Ramp(float("nan"), 2.0, 3), "start must be a finite number"),
        (lambda: Cyclic(1.0, 2.0, 0), "half_cycle must be >= 1, got 0"),
        (lambda: Cyclic(1.0, 2.0, 2, "sine"), "mode must be one of"),
        (lambda: Cyclic(1.0, 2.0, 2, "exp_range", 1.5), r"gamma must be in \(0, 1\], got 1.5"),
        (lambda: Constant(1.0, steps=0), "steps must be > 0 or None"),
    ],
)
def test_primitives_reject_bad_arguments_with_the_value(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match="half_cycle must be an integer"):
        Cyclic(1.0, 2.0, 2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="start must be a number"):
        Ramp("1", 2.0, 3)  # type: ignore[arg-type]
