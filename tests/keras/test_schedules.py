"""The Keras schedules give the PyTorch side's values at every step (torch's own schedulers are
the independent reference), serialise, and work on symbolic steps."""

import numpy as np
import pytest
import torch

import keras
from superconverge.keras import Cyclic, OneCycle, PlanSchedule, SmithOneCycle
from superconverge.keras.schedules import concrete_step
from superconverge.schedules import cyclic, one_cycle, smith_one_cycle


def _torch_values(make_scheduler, steps, momentum_key="momentum"):
    """LR and momentum that torch's scheduler sets before each of `steps` updates."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    scheduler = make_scheduler(optimizer)
    lrs, moms = [], []
    for _ in range(steps):
        group = optimizer.param_groups[0]
        lrs.append(group["lr"])
        moms.append(group[momentum_key])
        optimizer.step()
        scheduler.step()
    return lrs, moms


@pytest.mark.parametrize("total_steps", [10, 257])
@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("shape", ["cosine", "linear"])
def test_one_cycle_equals_torch_one_cycle_lr_at_every_step(total_steps, three_phase, shape):
    schedule = OneCycle(total_steps, 0.4, warmup_fraction=0.3, three_phase=three_phase, shape=shape)
    lrs, moms = _torch_values(
        lambda opt: torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=0.4, total_steps=total_steps, pct_start=0.3, three_phase=three_phase,
            anneal_strategy="cos" if shape == "cosine" else "linear",
        ),
        total_steps,
    )  # fmt: skip
    for step in range(total_steps):
        assert schedule(step) == pytest.approx(lrs[step], rel=1e-9, abs=1e-15)
        assert schedule.momentum(step) == pytest.approx(moms[step], rel=1e-9)
    # and it is the PyTorch side's plan itself, bit for bit
    plan = one_cycle(total_steps, 0.4, three_phase=three_phase, shape=shape)
    assert [schedule(k) for k in range(total_steps)] == plan.values()[0]


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclic_equals_torch_cyclic_lr_over_three_cycles(mode):
    schedule = Cyclic(0.001, 0.006, 7, mode=mode, gamma=0.99, momentum=(0.95, 0.8))
    lrs, moms = _torch_values(
        lambda opt: torch.optim.lr_scheduler.CyclicLR(
            opt, 0.001, 0.006, step_size_up=7, mode=mode, gamma=0.99,
            base_momentum=0.8, max_momentum=0.95,
        ),
        42,
    )  # fmt: skip
    for step in range(42):
        assert schedule(step) == pytest.approx(lrs[step], rel=1e-12)
        assert schedule.momentum(step) == pytest.approx(moms[step], rel=1e-12)


def test_smith_one_cycle_is_the_plan_of_the_pytorch_side():
    schedule = SmithOneCycle(100, 1.0)
    plan = smith_one_cycle(100, 1.0)
    lrs, moms = plan.values()
    assert [schedule(k) for k in range(100)] == lrs
    assert [schedule.momentum(k) for k in range(100)] == moms
    assert schedule(0) == pytest.approx(0.1) and schedule(99) == pytest.approx(0.001)


def test_steps_may_be_keras_variables_or_tensors():
    schedule = OneCycle(50, 0.2)
    step = keras.Variable(17, dtype="int64", trainable=False)
    assert concrete_step(step) == 17
    assert schedule(step) == schedule(17)
    assert schedule(torch.tensor(17)) == schedule(17)
    assert schedule(np.int64(17)) == schedule(17)


@pytest.mark.parametrize(
    "schedule",
    [
        OneCycle(300, 0.5, three_phase=True),
        SmithOneCycle(300, 0.5),
        Cyclic(0.01, 0.05, 20, mode="triangular"),
        Cyclic(0.01, 0.05, 20, mode="triangular2"),
        Cyclic(0.01, 0.05, 20, mode="exp_range", gamma=0.995),
    ],
    ids=lambda s: type(s).__name__ + s.get_config().get("mode", ""),
)
def test_symbolic_steps_give_the_same_values_in_float32(schedule):
    """The path a compiled step (tf.function, jax.jit) takes: keras.ops, no Python floats."""
    steps = np.arange(0, 320)
    symbolic = keras.ops.convert_to_numpy(schedule._lr.symbolic(keras.ops.convert_to_tensor(steps)))
    expected = np.array([schedule(int(k)) for k in steps])
    # float32 arithmetic on the step: a few units in the 6th digit
    np.testing.assert_allclose(symbolic, expected, rtol=1e-5, atol=1e-9)
    moms = keras.ops.convert_to_numpy(
        schedule._momentum.symbolic(keras.ops.convert_to_tensor(steps))
    )
    np.testing.assert_allclose(moms, [schedule.momentum(int(k)) for k in steps], rtol=1e-5)


@pytest.mark.parametrize(
    "schedule",
    [OneCycle(40, 0.1), Cyclic(0.01, 0.05, 4, mode="triangular2")],
    ids=lambda s: type(s).__name__,
)
def test_inside_torch_compile_the_step_stays_a_tensor(schedule):
    """jit_compile=True on the torch backend: int(step) broke the graph and traced each step's
    float in as a constant, so dynamo compiled the train step again at every step until its
    recompile limit sent it back to eager, with a warning. One graph now serves every step."""

    @torch.compile(backend="eager", fullgraph=True)  # fullgraph: a graph break raises
    def values(step):
        return schedule(step), schedule.momentum(step)

    for step in (0, 7, 39, 55):  # 55: past the end of OneCycle's table, which holds its last value
        lr, momentum = values(torch.tensor(step))
        assert float(lr) == pytest.approx(schedule.plan.lr(step), rel=1e-6)
        assert float(momentum) == pytest.approx(schedule.plan.momentum(step), rel=1e-6)


@pytest.mark.parametrize(
    "schedule",
    [
        OneCycle(100, 0.3, min_lr=0.01, momentum=None),
        SmithOneCycle(80, 0.2, annihilation_fraction=0.2, momentum=(0.9, 0.8)),
        Cyclic(0.001, 0.01, 5, mode="exp_range", gamma=0.9),
        PlanSchedule(cyclic(0.1, 0.2, 3, total_steps=12)),
    ],
    ids=lambda s: type(s).__name__,
)
def test_config_round_trip_and_keras_serialisation(schedule):
    again = type(schedule).from_config(schedule.get_config())
    assert again.plan == schedule.plan
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert type(restored) is type(schedule)
    assert [restored(k) for k in range(12)] == [schedule(k) for k in range(12)]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: OneCycle(1, 0.1), "total_steps must be >= 2"),
        (lambda: OneCycle(100, -0.1), "max_lr must be > 0"),
        (lambda: OneCycle(100, 0.1, momentum=(0.85, 0.95)), r"momentum must be \(high, low\)"),
        (
            lambda: SmithOneCycle(100, 0.1, momentum=(1.0, 0.9)),
            r"momentum values must be in \[0, 1\)",
        ),
        (lambda: Cyclic(0.1, 0.01, 10), "base_lr must be <= max_lr"),
        (lambda: Cyclic(0.01, 0.1, 0), "step_size must be >= 1"),
        (lambda: Cyclic(0.01, 0.1, 4, mode="cosine"), "mode must be one of"),
        (lambda: PlanSchedule("one_cycle"), "plan must be a superconverge Plan"),
    ],
)
def test_bad_input_names_the_parameter_as_on_the_pytorch_side(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()


def test_numpy_numbers_give_a_config_plain_json_can_write():
    import json

    for schedule in (
        OneCycle(np.int64(10), np.float32(0.1), momentum=(np.float64(0.95), 0.85)),
        SmithOneCycle(np.int64(10), np.float32(0.1)),
        Cyclic(np.float32(0.01), 0.1, np.int64(4)),
    ):
        config = json.loads(json.dumps(schedule.get_config()))  # np.float32 is not JSON
        assert type(schedule).from_config(config)(3) == pytest.approx(float(schedule(3)))
