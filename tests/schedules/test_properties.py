"""Property tests: bounds, exact endpoints, monotone phases and continuity for any valid input."""

import itertools
import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from superconverge.schedules import Chain, cyclic, fastai_one_cycle, one_cycle, smith_one_cycle

lrs = st.floats(min_value=1e-6, max_value=10.0)
divs = st.floats(min_value=1.0, max_value=1e3)
momenta = st.tuples(st.floats(0.5, 0.99), st.floats(0.0, 1.0)).map(
    lambda hl: (hl[0], hl[0] * hl[1])
)


def _within(values, low, high):
    tolerance = 1e-12 * max(abs(high), 1.0)
    return all(low - tolerance <= v <= high + tolerance for v in values)


def _monotone(values, direction):
    tolerance = 1e-12
    pairs = list(itertools.pairwise(values))
    if direction > 0:
        return all(b >= a - tolerance * max(abs(a), 1e-300) for a, b in pairs)
    return all(b <= a + tolerance * max(abs(a), 1e-300) for a, b in pairs)


def _continuous_at_boundaries(schedule: Chain):
    """Just past each boundary the value differs by no more than the slope allows (no jump)."""
    scale = max(abs(schedule(t)) for t in range(int(schedule.duration) + 1))
    offset = 0.0
    for phase in schedule.phases[:-1]:
        offset += phase.duration
        left, right = schedule(offset), schedule(offset + 1e-9)
        assert math.isclose(left, right, rel_tol=0, abs_tol=1e-6 * scale), (offset, left, right)


@settings(max_examples=60, deadline=None)
@given(
    total_steps=st.integers(10, 3000),
    max_lr=lrs,
    min_div=divs,
    final_div=divs,
    warmup=st.floats(0.1, 0.9),
    shape=st.sampled_from(["cosine", "linear"]),
)
def test_one_cycle_properties(total_steps, max_lr, min_div, final_div, warmup, shape):
    min_lr, final_lr = max_lr / min_div, max_lr / min_div / final_div
    warmup_end = warmup * total_steps - 1  # torch's end of the warm-up; shorter ones are refused
    assume(warmup_end > 0)
    plan = one_cycle(
        total_steps, max_lr, min_lr=min_lr, final_lr=final_lr, warmup_fraction=warmup, shape=shape
    )
    lrs_, moms = plan.values()
    assert _within(lrs_, final_lr, max_lr)
    assert math.isclose(lrs_[0], min_lr, rel_tol=1e-9)
    assert math.isclose(lrs_[-1], final_lr, rel_tol=1e-9)
    peak = math.floor(warmup_end)
    assert _monotone(lrs_[: peak + 1], +1) and _monotone(lrs_[peak + 1 :], -1)
    assert _monotone(moms[: peak + 1], -1) and _monotone(moms[peak + 1 :], +1)
    assert _within(moms, 0.85, 0.95)
    _continuous_at_boundaries(plan.lr)
    _continuous_at_boundaries(plan.momentum)


@settings(max_examples=60, deadline=None)
@given(
    total_steps=st.integers(10, 3000), max_lr=lrs, fraction=st.floats(0.05, 0.5), momentum=momenta
)
def test_smith_one_cycle_properties(total_steps, max_lr, fraction, momentum):
    plan = smith_one_cycle(total_steps, max_lr, annihilation_fraction=fraction, momentum=momentum)
    lrs_, moms = plan.values()
    half = plan.lr.phases[0].duration
    assert lrs_[0] == max_lr / 10 and math.isclose(lrs_[int(half)], max_lr, rel_tol=1e-12)
    assert math.isclose(lrs_[-1], max_lr / 1000, rel_tol=1e-9)
    assert _within(lrs_, max_lr / 1000, max_lr)
    assert _monotone(lrs_[: int(half) + 1], +1) and _monotone(lrs_[int(half) :], -1)
    assert _within(moms, momentum[1], momentum[0])
    assert moms[-1] == momentum[0]
    _continuous_at_boundaries(plan.lr)
    _continuous_at_boundaries(plan.momentum)


@settings(max_examples=40, deadline=None)
@given(total_steps=st.integers(2, 3000), max_lr=lrs, warmup=st.floats(0.05, 0.95))
def test_fastai_one_cycle_properties(total_steps, max_lr, warmup):
    plan = fastai_one_cycle(total_steps, max_lr, warmup_fraction=warmup)
    lrs_, _ = plan.values()
    assert _within(lrs_, max_lr / 1e5, max_lr)
    assert math.isclose(lrs_[0], max_lr / 25, rel_tol=1e-9)
    assert math.isclose(plan.lr(total_steps), max_lr / 1e5, rel_tol=1e-9)
    _continuous_at_boundaries(plan.lr)


@settings(max_examples=40, deadline=None)
@given(
    base=lrs,
    ratio=st.floats(1.0, 100.0),
    step_size=st.integers(1, 50),
    mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
    gamma=st.floats(0.9, 1.0),
)
def test_cyclic_stays_within_bounds_and_restarts_each_cycle(base, ratio, step_size, mode, gamma):
    plan = cyclic(base, base * ratio, step_size, mode=mode, gamma=gamma)
    lrs_, moms = plan.values(6 * step_size + 1)
    assert _within(lrs_, base, base * ratio)
    assert _within(moms, 0.85, 0.95)
    assert all(lrs_[2 * step_size * c] == base for c in range(3))
    if mode != "exp_range":
        assert math.isclose(lrs_[step_size], base * ratio, rel_tol=1e-12)
