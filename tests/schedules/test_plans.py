import math
import pickle

import pytest

from superconverge.schedules import (
    Plan,
    constant,
    cyclic,
    fastai_one_cycle,
    one_cycle,
    piecewise_constant,
    smith_one_cycle,
)

torch = pytest.importorskip("torch")


def _torch_values(scheduler_factory, optimizer, steps):
    """The lr and momentum torch's scheduler sets before each of `steps` updates."""
    scheduler = scheduler_factory(optimizer)
    lrs, moms = [], []
    for _ in range(steps):
        group = optimizer.param_groups[0]
        lrs.append(group["lr"])
        moms.append(group["betas"][0] if "betas" in group else group["momentum"])
        optimizer.step()
        scheduler.step()
    return lrs, moms


def _sgd():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)


@pytest.mark.parametrize("total_steps", [10, 100, 1001])
@pytest.mark.parametrize("shape", ["cosine", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize(
    ("warmup_fraction", "min_div", "final_div"), [(0.3, 25.0, 1e4), (0.45, 10.0, 100.0)]
)
def test_one_cycle_matches_torch_one_cycle_lr_at_every_step(
    total_steps, shape, three_phase, warmup_fraction, min_div, final_div
):
    max_lr = 0.8
    plan = one_cycle(
        total_steps,
        max_lr,
        min_lr=max_lr / min_div,
        final_lr=max_lr / min_div / final_div,
        warmup_fraction=warmup_fraction,
        shape=shape,
        three_phase=three_phase,
    )

    def factory(optimizer):
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=max_lr,
            total_steps=total_steps,
            pct_start=warmup_fraction,
            anneal_strategy="cos" if shape == "cosine" else "linear",
            div_factor=min_div,
            final_div_factor=final_div,
            three_phase=three_phase,
            max_momentum=0.95,
            base_momentum=0.85,
        )

    torch_lrs, torch_moms = _torch_values(factory, _sgd(), total_steps)
    ours_lrs, ours_moms = plan.values()
    assert ours_lrs == pytest.approx(torch_lrs, rel=1e-9, abs=0)
    assert ours_moms == pytest.approx(torch_moms, rel=1e-9, abs=0)


def test_one_cycle_defaults_follow_torch_convention():
    plan = one_cycle(100, max_lr=1.0)
    assert plan.lr(0) == pytest.approx(1 / 25)
    assert plan.lr(99) == pytest.approx(1 / 25 / 1e4)
    assert plan.momentum(0) == pytest.approx(0.95)
    assert plan.momentum(29) == pytest.approx(0.85)


@pytest.mark.parametrize("total_steps", [4, 10, 1000])
def test_one_cycle_endpoints_and_hold(total_steps):
    schedule = one_cycle(total_steps, max_lr=1.0, warmup_fraction=0.5).lr
    assert schedule(0) == pytest.approx(1 / 25)
    assert schedule(total_steps - 1) == pytest.approx(4e-6)
    assert schedule(total_steps + 50) == schedule(total_steps - 1)  # holds and doesn't raise


def _fastai_reference(
    total_steps, max_lr, div=25.0, div_final=1e5, pct_start=0.25, moms=(0.95, 0.85, 0.95)
):
    """fastai's fit_one_cycle, transcribed: combined_cos evaluated at pos = k / total_steps."""

    def sched_cos(start, end, pos):
        return start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2

    def combined_cos(pos, start, middle, end):
        if pos < pct_start:
            return sched_cos(start, middle, pos / pct_start)
        return sched_cos(middle, end, (pos - pct_start) / (1 - pct_start))

    lrs = [
        combined_cos(k / total_steps, max_lr / div, max_lr, max_lr / div_final)
        for k in range(total_steps)
    ]
    momentum = [combined_cos(k / total_steps, *moms) for k in range(total_steps)]
    return lrs, momentum


@pytest.mark.parametrize("total_steps", [8, 100, 937])
def test_fastai_one_cycle_matches_fastai_formula(total_steps):
    ref_lrs, ref_moms = _fastai_reference(total_steps, 3e-3)
    lrs, moms = fastai_one_cycle(total_steps, 3e-3).values()
    assert lrs == pytest.approx(ref_lrs, rel=1e-9, abs=0)
    assert moms == pytest.approx(ref_moms, rel=1e-9, abs=0)


def test_fastai_one_cycle_custom_bounds_and_pct():
    ref_lrs, _ = _fastai_reference(200, 1.0, div=10.0, div_final=1e3, pct_start=0.4)
    lrs, _ = fastai_one_cycle(200, 1.0, min_lr=0.1, final_lr=1e-3, warmup_fraction=0.4).values()
    assert lrs == pytest.approx(ref_lrs, rel=1e-9, abs=0)


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
@pytest.mark.parametrize("optimizer_name", ["sgd", "adam"])
def test_cyclic_matches_torch_cyclic_lr_over_three_cycles(mode, optimizer_name):
    step_size, gamma = 7, 0.995
    steps = 2 * step_size * 3 + 5
    plan = cyclic(0.001, 0.006, step_size, mode=mode, gamma=gamma, momentum=(0.95, 0.8))
    param = torch.nn.Parameter(torch.zeros(1))
    if optimizer_name == "sgd":
        optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    else:
        optimizer = torch.optim.Adam([param], lr=0.1)

    def factory(opt):
        return torch.optim.lr_scheduler.CyclicLR(
            opt,
            0.001,
            0.006,
            step_size_up=step_size,
            mode=mode,
            gamma=gamma,
            base_momentum=0.8,
            max_momentum=0.95,
        )

    torch_lrs, torch_moms = _torch_values(factory, optimizer, steps)
    lrs, moms = plan.values(steps)
    assert lrs == pytest.approx(torch_lrs, rel=1e-9, abs=0)
    assert moms == pytest.approx(torch_moms, rel=1e-9, abs=1e-15)


def test_smith_one_cycle_hand_computed_values():
    plan = smith_one_cycle(11, max_lr=1.0, annihilation_fraction=0.2)
    # span 10 steps: half-cycles of 4, annihilation over the last 2
    expected = [0.1, 0.325, 0.55, 0.775, 1.0, 0.775, 0.55, 0.325, 0.1, 0.0505, 0.001]
    assert [plan.lr(k) for k in range(11)] == pytest.approx(expected)
    expected_moms = [0.95, 0.925, 0.9, 0.875, 0.85, 0.875, 0.9, 0.925, 0.95, 0.95, 0.95]
    assert [plan.momentum(k) for k in range(11)] == pytest.approx(expected_moms)
    assert plan.lr(500) == pytest.approx(0.001)


def test_smith_one_cycle_defaults_are_documented_values():
    plan = smith_one_cycle(1000, max_lr=0.8)
    lrs, _ = plan.values()
    assert lrs[0] == pytest.approx(0.08)
    assert max(lrs) == pytest.approx(0.8)
    assert lrs[-1] == pytest.approx(0.0008)
    cycle_end = max(k for k in range(1000) if lrs[k] >= 0.08 - 1e-12)
    assert (999 - cycle_end) / 999 == pytest.approx(0.137, abs=0.002)


def test_piecewise_and_constant_plans():
    plan = piecewise_constant([0.35, 0.035, 0.0035], [100, 200], momentum=0.9)
    assert (plan.lr(99), plan.lr(100), plan.lr(250)) == (0.35, 0.035, 0.0035)
    assert plan.momentum(150) == 0.9
    assert plan.max_lr == 0.35
    assert constant(0.01).momentum is None


PLANS = [
    one_cycle(100, 0.5, three_phase=True, shape="linear"),
    smith_one_cycle(100, 0.5, momentum=None),
    fastai_one_cycle(50, 1e-3),
    cyclic(0.1, 0.4, 5, mode="triangular2", total_steps=60),
    piecewise_constant([0.35, 0.035], [10]),
    constant(0.02, momentum=0.9),
]


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.policy)
def test_plans_round_trip_through_json_and_pickle(plan):
    assert Plan.from_json(plan.to_json()) == plan
    assert pickle.loads(pickle.dumps(plan)) == plan


def test_plan_from_dict_rejects_unknown_keys():
    data = one_cycle(10, 0.1).to_dict()
    data["warmup"] = 3
    with pytest.raises(ValueError, match=r"unknown plan settings: \['warmup'\]"):
        Plan.from_dict(data)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: one_cycle(100, float("nan")), "max_lr must be a finite number, got nan"),
        (lambda: one_cycle(100, 0.0), "max_lr must be > 0, got 0.0"),
        (lambda: one_cycle(100, -1), "max_lr must be > 0, got -1"),
        (lambda: one_cycle(100, 0.1, min_lr=0.2), r"min_lr must be <= max_lr \(0.1\), got 0.2"),
        (lambda: one_cycle(100, 0.1, min_lr=0.01, final_lr=0.02), "final_lr must be <= min_lr"),
        (
            lambda: one_cycle(100, 0.1, warmup_fraction=0.0),
            r"warmup_fraction must be in \(0, 1\), got 0.0",
        ),
        (lambda: one_cycle(100, 0.1, warmup_fraction=1.0), r"warmup_fraction must be in \(0, 1\)"),
        (
            lambda: one_cycle(100, 0.1, warmup_fraction=0.5, three_phase=True),
            r"warmup_fraction must be in \(0, 0.5\)",
        ),
        (lambda: one_cycle(3, 0.1), "total_steps=3 is too few steps"),
        (lambda: one_cycle(1, 0.1), "total_steps must be >= 2, got 1"),
        (
            lambda: one_cycle(100, 0.1, shape="cos"),
            "shape must be one of 'cosine', 'linear', got 'cos'",
        ),
        (lambda: one_cycle(100, 0.1, momentum=(0.85, 0.95)), "high >= low"),
        (lambda: one_cycle(100, 0.1, momentum=(1.0, 0.9)), r"momentum values must be in \[0, 1\)"),
        (
            lambda: one_cycle(100, 0.1, momentum=(0.9,)),
            r"momentum must be None or a \(high, low\) pair",
        ),
        (  # what to write instead of a torch-style constant or fastai's three-value moms
            lambda: one_cycle(100, 0.1, momentum=0.9),
            r"got 0\.9; a constant momentum is \(0\.9, 0\.9\)",
        ),
        (
            lambda: fastai_one_cycle(100, 0.1, momentum=(0.95, 0.85, 0.95)),
            r"got \(0\.95, 0\.85, 0\.95\); fastai's moms=\(0\.95, 0\.85, 0\.95\) is momentum=\(",
        ),
        (
            lambda: smith_one_cycle(100, 0.1, annihilation_fraction=1.2),
            r"annihilation_fraction must be in \(0, 1\)",
        ),
        (
            lambda: smith_one_cycle(4, 0.1, annihilation_fraction=0.9),
            "total_steps=4 is too few steps",
        ),
        (lambda: fastai_one_cycle(100, 0.1, min_lr=1.0), "min_lr must be <= max_lr"),
        (lambda: cyclic(0.5, 0.1, 10), r"base_lr must be <= max_lr \(0.1\), got 0.5"),
        (lambda: cyclic(0.1, 0.5, 0), "step_size must be >= 1, got 0"),
        (lambda: cyclic(0.1, 0.5, 5, mode="sine"), "mode must be one of 'triangular'"),
        (lambda: cyclic(0.1, 0.5, 5, gamma=0.0), r"gamma must be in \(0, 1\], got 0.0"),
        (lambda: cyclic(-0.1, 0.5, 5), "base_lr must be > 0"),
        (lambda: piecewise_constant([0.1, -0.01], [5]), "values must be > 0"),
        (lambda: constant(0.1, momentum=1.0), r"momentum must be in \[0, 1\), got 1.0"),
    ],
)
def test_invalid_arguments_name_parameter_value_and_what_is_allowed(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match=r"total_steps must be an integer, got 10\.0"):
        one_cycle(10.0, 0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_lr must be a number"):
        one_cycle(10, "0.1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"three_phase must be True or False, got 'yes' \(str\)"):
        one_cycle(10, 0.1, three_phase="yes")  # type: ignore[arg-type]
    # torch's OneCycleLR(max_lr=[...]) and fastai's slice are per-group: say where they go
    per_group = r"max_lr must be a number, the plan's peak, got .*; per-group peaks go to Hyper"
    for build in (one_cycle, fastai_one_cycle, smith_one_cycle):
        for max_lr in ([0.1, 0.01], (1e-4, 1e-2), slice(1e-3)):
            with pytest.raises(TypeError, match=per_group):
                build(10, max_lr)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=per_group):
        cyclic(1e-3, [0.1, 0.01], 5)  # type: ignore[arg-type]


def test_a_max_lr_of_none_points_at_the_range_test_that_gave_it():
    # a user's check: OneCycle(max_lr=result.max_lr) after a range test that found no LR said
    # only "max_lr must be a number, got None (NoneType)"
    from superconverge.keras import OneCycle

    for build in (lambda: one_cycle(100, None), lambda: OneCycle(100, max_lr=None)):
        with pytest.raises(TypeError, match=r"got None: a range test that found no LR returns "):
            build()


def test_values_of_no_steps_are_refused_naming_steps():
    # plot_plan(plan, 0) failed with "max() arg is an empty sequence"
    from superconverge.diagnostics.plots import plot_plan

    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        plot_plan(one_cycle(100, 0.1), 0)
    assert len(one_cycle(100, 0.1).values(3)[0]) == 3
