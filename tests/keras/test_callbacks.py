"""CyclicMomentum: Keras's own optimizers get the plan's momentum before every batch."""

import warnings

import pytest

import keras
from superconverge.keras import Cyclic, CyclicMomentum, CyclicSGD, OneCycle, PlanSchedule
from superconverge.schedules import constant, one_cycle
from tests.keras.conftest import assert_bitwise_equal, make_model, values


def test_sgd_gets_the_plans_momentum_and_history_records_each_batch(digits):
    x, y = digits
    x, y = x[:320], y[:320]  # 10 batches an epoch
    schedule = OneCycle(30, 0.1)
    model = make_model(keras.optimizers.SGD(schedule, momentum=0.9))
    callback = CyclicMomentum(schedule)
    history = model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[callback])
    lrs, moms = one_cycle(30, 0.1).values()
    assert history.batch_lr == pytest.approx(lrs, rel=1e-12)
    assert history.batch_momentum == moms
    assert model.optimizer.momentum == moms[-1]
    # history.history keeps one value per epoch: pd.DataFrame(history.history) works (it
    # failed with "All arrays must be of the same length" when the batches' lists were there)
    assert {len(values) for values in history.history.values()} == {3}
    # each epoch's last LR and momentum, as Keras's LearningRateScheduler logs learning_rate
    assert history.history["learning_rate"] == [lrs[9], lrs[19], lrs[29]]
    assert history.history["momentum"] == [moms[9], moms[19], moms[29]]


def test_adam_beta_1_follows_the_schedule_and_a_second_fit_continues(digits):
    x, y = digits
    x, y = x[:320], y[:320]
    schedule = Cyclic(0.001, 0.004, 5, momentum=(0.95, 0.85))
    model = make_model(keras.optimizers.Adam(schedule))
    callback = CyclicMomentum(schedule)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[callback])
    second = model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[callback])
    expected = [schedule.momentum(k) for k in range(20)]
    assert callback.momenta == expected
    assert second.batch_momentum == expected[10:]  # steps 10..19, not 0..9
    assert model.optimizer.beta_1 == expected[-1]
    assert second.history["beta_1"] == [expected[-1]]  # the Adam family's name, in the logs
    assert "momentum" not in second.history


def test_a_plain_plan_works_too(digits):
    x, y = digits
    plan = one_cycle(10, 0.05)
    callback = CyclicMomentum(plan)
    model = make_model(keras.optimizers.RMSprop(PlanSchedule(plan), momentum=0.5))
    model.fit(x[:320], y[:320], batch_size=32, verbose=0, callbacks=[callback])
    assert callback.momenta[0] == 0.95 and model.optimizer.momentum == pytest.approx(0.95)


def test_sgd_built_without_momentum_is_refused_with_the_fix(digits):
    x, y = digits
    model = make_model(keras.optimizers.SGD(0.01))  # momentum=0: Keras keeps no velocity
    model.fit(x[:32], y[:32], verbose=0)
    with pytest.raises(ValueError, match=r"built with momentum=0.*SGD\(momentum=0.9, ...\)"):
        model.fit(x[:32], y[:32], verbose=0, callbacks=[CyclicMomentum(OneCycle(10, 0.1))])
    # the fix names the optimizer used (it told an RMSprop user to compile with SGD)
    rmsprop = make_model(keras.optimizers.RMSprop(0.01))
    rmsprop.fit(x[:32], y[:32], verbose=0)
    with pytest.raises(ValueError, match=r"compile with RMSprop\(momentum=0.9, ...\)"):
        rmsprop.fit(x[:32], y[:32], verbose=0, callbacks=[CyclicMomentum(OneCycle(10, 0.1))])


def test_optimizer_without_momentum_is_refused(digits):
    x, y = digits
    model = make_model(keras.optimizers.Adagrad(0.01))
    with pytest.raises(ValueError, match=r"neither a float `momentum`.*nor a float `beta_1`"):
        model.fit(x[:32], y[:32], verbose=0, callbacks=[CyclicMomentum(OneCycle(10, 0.1))])


def test_bad_schedules_are_refused():
    with pytest.raises(ValueError, match="no momentum schedule"):
        CyclicMomentum(OneCycle(10, 0.1, momentum=None))
    with pytest.raises(ValueError, match="no momentum schedule"):
        CyclicMomentum(PlanSchedule(constant(0.1)))
    with pytest.raises(TypeError, match=r"schedule must be a superconverge.keras schedule"):
        CyclicMomentum(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9))
    # optimizer.learning_rate reads as the current value: "got float" alone left users guessing
    optimizer = keras.optimizers.SGD(OneCycle(10, 0.1), momentum=0.9)
    with pytest.raises(TypeError, match=r"got float 0.004.*pass the schedule object itself"):
        CyclicMomentum(optimizer.learning_rate)


def test_a_compiled_train_step_is_refused_because_it_would_freeze_momentum(digits):
    x, y = digits
    model = make_model(keras.optimizers.SGD(0.01, momentum=0.9))
    model.compile(optimizer=model.optimizer, loss=model.loss, jit_compile=True)
    with pytest.raises(ValueError, match=r"run_eagerly=True.*or use CyclicSGD"):
        model.fit(x[:32], y[:32], verbose=0, callbacks=[CyclicMomentum(OneCycle(10, 0.1))])


def _warnings_saying(text, fit):
    """The messages of the warnings `fit()` gave that contain `text`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit()
    return [str(w.message) for w in caught if text in str(w.message)]


def _past_end_warnings(fit):  # the callback's
    return _warnings_saying("training reached step", fit)


def _schedule_warnings(fit):  # the schedule's own
    return _warnings_saying("was asked for step", fit)


def test_training_past_total_steps_warns_once_with_the_fix(digits):
    # a user's check: total_steps=epochs for 10-batch epochs held lr ~0 for 90% of the fit, silently
    x, y = digits
    x, y = x[:320], y[:320]  # 10 batches an epoch
    schedule = OneCycle(30, 0.1)
    model = make_model(keras.optimizers.SGD(schedule, momentum=0.9))
    callback = CyclicMomentum(schedule)

    def fit(epochs):
        model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=[callback])

    assert _past_end_warnings(lambda: fit(3)) == []  # exactly total_steps: steps 0..29
    messages = _past_end_warnings(lambda: fit(2))  # steps 30..49, all past the plan
    assert messages == [
        "CyclicMomentum: the plan has 30 steps (total_steps) and training reached step 30; "
        "holding the final values (lr 4e-07, momentum 0.95) for the rest of training: build the "
        "schedule with total_steps = epochs * steps_per_epoch (this fit's 10 steps per epoch: "
        "total_steps=50 reaches its end)"
    ]  # once, not at each of the 20 batches past the end
    assert callback.momenta[30:] == [0.95] * 20
    # once a fit: the next fit (or another model given the same callback, an auditor's check:
    # it trained at the final LR without a word) is said again
    (again,) = _past_end_warnings(lambda: fit(1))
    assert "training reached step 50" in again


def test_the_suggested_total_steps_counts_only_the_epochs_a_resumed_fit_runs(digits):
    # fit(epochs=4, initial_epoch=2) runs 2 epochs: the fix must not count the 2 it skips
    x, y = digits
    x, y = x[:320], y[:320]  # 10 batches an epoch
    schedule = OneCycle(15, 0.1)
    model = make_model(keras.optimizers.SGD(schedule, momentum=0.9))
    callback = CyclicMomentum(schedule)

    def fit():
        model.fit(x, y, batch_size=32, epochs=4, initial_epoch=2, verbose=0, callbacks=[callback])

    (message,) = _past_end_warnings(fit)
    assert message.endswith("(this fit's 10 steps per epoch: total_steps=20 reaches its end)")


def test_a_schedule_used_without_the_callback_warns_once_past_its_end(digits):
    # total_steps=epochs (a common slip) held the LR at ~0 for the rest of training, silently
    x, y = digits
    x, y = x[:320], y[:320]  # 10 batches an epoch
    schedule = OneCycle(30, 0.1)
    model = make_model(keras.optimizers.SGD(schedule, momentum=0.9))

    def fit(epochs):
        model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)

    assert _schedule_warnings(lambda: fit(3)) == []  # steps 0..29: exactly the plan
    # reading the LR after an exact fit (Keras's TensorBoard callback, a notebook) asks for
    # step 30, where nothing was trained past the plan
    assert _schedule_warnings(lambda: float(model.optimizer.learning_rate)) == []
    assert _schedule_warnings(lambda: fit(1)) == [
        "OneCycle: the plan has 30 steps (total_steps) and was asked for step 31; the LR "
        "holds its final value (4e-07) for the rest of training: build the schedule with "
        "total_steps = epochs * steps_per_epoch"
    ]
    assert _schedule_warnings(lambda: fit(1)) == []  # once


def test_with_the_callback_only_its_warning_is_shown(digits):
    x, y = digits
    x, y = x[:320], y[:320]
    schedule = OneCycle(15, 0.1)
    model = make_model(keras.optimizers.SGD(schedule, momentum=0.9))
    messages = _warnings_saying(
        "step",
        lambda: model.fit(
            x, y, batch_size=32, epochs=2, verbose=0, callbacks=[CyclicMomentum(schedule)]
        ),
    )
    assert len(messages) == 1 and messages[0].startswith("CyclicMomentum: the plan has 15 steps")


def test_under_mixed_float16_the_inner_optimizer_gets_the_momentum(digits, mixed_float16):
    """compile wraps the optimizer in a LossScaleOptimizer, which has no momentum of its own:
    the callback refused it ("has neither a float `momentum` ... nor a float `beta_1`")."""
    x, y = digits
    schedule = OneCycle(10, 0.1)
    model = make_model(keras.optimizers.SGD(schedule, momentum=0.9))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    callback = CyclicMomentum(schedule)
    model.fit(x[:320], y[:320], batch_size=32, verbose=0, callbacks=[callback])
    assert callback.momenta == one_cycle(10, 0.1).values()[1]
    assert model.optimizer.inner_optimizer.momentum == callback.momenta[-1]


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_backup_and_restore_resumes_the_cycle_exactly_and_the_fix_counts_the_whole_fit(
    digits, tmp_path
):
    """A fit interrupted after epoch 2 of 5 and run again with BackupAndRestore continues with
    the LR, momentum and weights of an uninterrupted run. Its warning past the plan's end
    suggested total_steps=12 for a fit of 20 steps: the callback read the optimizer's step
    before BackupAndRestore (later in the list) had restored it."""
    x, y = digits
    x, y = x[:128], y[:128]  # 4 batches an epoch
    schedule = OneCycle(12, 0.1)  # too short for 5 epochs: the resumed fit warns

    def fit(*extra):
        callback = CyclicMomentum(schedule)
        callbacks = [callback, *extra]
        model.fit(x, y, batch_size=32, epochs=5, shuffle=False, verbose=0, callbacks=callbacks)
        return callback

    model = make_model(keras.optimizers.SGD(schedule, momentum=0.9))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = fit()
    expected = values(model.variables)

    model = make_model(keras.optimizers.SGD(schedule, momentum=0.9))
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(KeyboardInterrupt):
        fit(backup, _Interrupt(epoch=1))
    model = make_model(keras.optimizers.SGD(schedule, momentum=0.9))
    resumed: list[CyclicMomentum] = []
    (message,) = _past_end_warnings(lambda: resumed.append(fit(backup)))
    assert message.endswith("(this fit's 4 steps per epoch: total_steps=20 reaches its end)")
    assert resumed[0].momenta == whole.momenta[8:]  # steps 8..19, where it stopped
    assert resumed[0].lrs == whole.lrs[8:]
    assert_bitwise_equal(values(model.variables), expected)


def test_cyclic_sgd_which_cycles_its_own_momentum_is_refused(digits):
    """CyclicSGD ignores the momentum the callback sets; the callback recorded it all the same,
    so history["batch_momentum"] showed values the training never used."""
    x, y = digits
    model = make_model(CyclicSGD((0.01, 0.1), (0.95, 0.85), steps=5))
    with pytest.raises(
        ValueError, match=r"CyclicSGD cycles its own momentum.*leave CyclicMomentum"
    ):
        model.fit(x[:64], y[:64], verbose=0, callbacks=[CyclicMomentum(OneCycle(10, 0.1))])


def test_with_gradient_accumulation_momentum_keeps_step_with_the_lr(digits):
    """Keras gives the LR schedule the count of batches, while `iterations` counts updates:
    the momentum, read at `iterations`, ran at half the LR's pace with 2 accumulation steps."""
    x, y = digits
    schedule = OneCycle(10, 0.1)
    model = make_model(keras.optimizers.SGD(schedule, momentum=0.9, gradient_accumulation_steps=2))
    callback = CyclicMomentum(schedule)
    model.fit(x[:320], y[:320], batch_size=32, verbose=0, callbacks=[callback])  # 10 batches
    lrs, moms = one_cycle(10, 0.1).values()
    assert callback.lrs == pytest.approx(lrs, rel=1e-6)  # float32: Keras casts the LR
    assert callback.momenta == moms  # at the LR's steps, not [moms[0], moms[0], moms[1], ...]


def test_an_optimizer_whose_lr_follows_another_plan_is_refused(digits):
    # an auditor's check: SGD(0.01) trained at a constant LR while the momentum cycled, and a
    # callback built with other arguments than a loaded model's schedule cycled another plan
    x, y = digits
    constant_lr = make_model(keras.optimizers.SGD(0.01, momentum=0.9))
    with pytest.raises(ValueError, match=r"SGD's learning_rate follows a constant 0.01: compile"):
        constant_lr.fit(x[:32], y[:32], verbose=0, callbacks=[CyclicMomentum(OneCycle(10, 0.1))])
    other = make_model(keras.optimizers.SGD(OneCycle(80, 0.1), momentum=0.9))
    with pytest.raises(ValueError, match=r"follows another plan \(one_cycle, total_steps 80, max_lr 0.1\)"):
        other.fit(x[:32], y[:32], verbose=0, callbacks=[CyclicMomentum(OneCycle(200, 0.5))])
    decay = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    keras_own = make_model(keras.optimizers.SGD(decay, momentum=0.9))
    with pytest.raises(ValueError, match=r"follows a ExponentialDecay, not this plan"):
        keras_own.fit(x[:32], y[:32], verbose=0, callbacks=[CyclicMomentum(OneCycle(10, 0.1))])
    assert other.optimizer.iterations == 0  # refused before the first batch


def test_a_refused_bare_plan_is_told_to_wrap_it_as_keras_needs(digits):
    # a reviewer's check: "compile SGD(learning_rate=schedule, ...)" with a Plan's long repr;
    # SGD(learning_rate=plan) then failed in Keras
    x, y = digits
    model = make_model(keras.optimizers.SGD(0.05, momentum=0.9))
    with pytest.raises(ValueError, match=r"compile SGD\(learning_rate=PlanSchedule\(plan\), \.\.\.\) "
                                         r"with the plan given to the callback \(one_cycle, "
                                         r"total_steps 16, max_lr 0.05\)"):  # fmt: skip
        model.fit(x[:32], y[:32], verbose=0, callbacks=[CyclicMomentum(one_cycle(16, 0.05))])


def test_without_a_schedule_the_callback_takes_the_loaded_optimizers_own(digits, tmp_path):
    # an auditor's check: after load_model the callback had to be rebuilt by hand with the
    # schedule's first arguments, although the loaded optimizer holds the schedule
    x, y = digits
    x, y = x[:320], y[:320]  # 10 batches an epoch

    def fit(model, callback, epochs, initial_epoch=0):
        model.fit(x, y, batch_size=32, epochs=epochs, initial_epoch=initial_epoch,
                  shuffle=False, verbose=0, callbacks=[callback])  # fmt: skip

    schedule = OneCycle(40, 0.1)
    whole = make_model(keras.optimizers.Adam(schedule))
    fit(whole, uninterrupted := CyclicMomentum(schedule), 4)

    first = make_model(keras.optimizers.Adam(OneCycle(40, 0.1)))
    fit(first, CyclicMomentum(), 2)
    first.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    fit(loaded, resumed := CyclicMomentum(), 4, initial_epoch=2)
    assert resumed.momenta == uninterrupted.momenta[20:]
    assert resumed.lrs == uninterrupted.lrs[20:]
    assert_bitwise_equal(values(loaded.variables), values(whole.variables))


def test_without_a_schedule_an_optimizer_at_a_constant_lr_is_refused_with_the_fix(digits):
    x, y = digits
    model = make_model(keras.optimizers.SGD(0.01, momentum=0.9))
    with pytest.raises(ValueError, match=(
        r"CyclicMomentum\(\) cycles the momentum of the optimizer's own plan, but SGD's "
        r"learning_rate is a constant: compile SGD\(learning_rate=OneCycle\(...\), ...\)"
    )):  # fmt: skip
        model.fit(x[:64], y[:64], batch_size=32, verbose=0, callbacks=[CyclicMomentum()])
    model = make_model(keras.optimizers.SGD(OneCycle(10, 0.1, momentum=None), momentum=0.9))
    with pytest.raises(ValueError, match="has no momentum schedule"):
        model.fit(x[:64], y[:64], batch_size=32, verbose=0, callbacks=[CyclicMomentum()])
