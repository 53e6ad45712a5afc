"""The Keras LR range test: the PyTorch finder's result and analysis, nothing left changed."""

import itertools

import numpy as np
import pytest

import keras
from superconverge.finder.result import RangeTestResult
from superconverge.keras import CyclicSGD, OneCycle, lr_find
from tests.keras.conftest import assert_bitwise_equal, make_model, values


def _everything(model):
    return (
        values(model.variables)
        + values(model.optimizer.variables)
        + values(model.metrics_variables)
    )


@pytest.mark.parametrize("optimizer", ["adam", "sgd_momentum", "cyclic_sgd"])
def test_finds_an_lr_on_digits_and_restores_model_and_optimizer_bitwise(digits, optimizer):
    x, y = digits
    build = {
        "adam": lambda: keras.optimizers.Adam(0.001),
        "sgd_momentum": lambda: keras.optimizers.SGD(0.01, momentum=0.9),
        "cyclic_sgd": lambda: CyclicSGD((0.01, 0.1), (0.95, 0.8), steps=20),
    }[optimizer]
    model = make_model(build(), dropout=0.2)
    model.fit(x[:256], y[:256], batch_size=32, verbose=0)  # optimizer state that must survive
    before = _everything(model)
    result = lr_find(model, x, y, batch_size=32, num_steps=60, start_lr=1e-5, end_lr=10)
    assert isinstance(result, RangeTestResult)
    assert result.settings["framework"] == "keras"
    assert result.max_lr is not None and 1e-4 < result.max_lr < 1.0, result.summary()
    assert len(result.lrs) <= 60 and result.lrs[0] == pytest.approx(1e-5)
    assert_bitwise_equal(_everything(model), before)
    assert type(model.optimizer).__name__ == type(build()).__name__


def test_repeats_sweep_other_batches_from_the_same_weights_and_restore_everything(digits):
    # an auditor's check: every Keras range test said "confidence low", and the documented
    # remedy, repeats=, was the PyTorch side's alone (a TypeError here)
    x, y = digits
    model = make_model(keras.optimizers.SGD(0.01, momentum=0.9), dropout=0.2)
    model.fit(x[:256], y[:256], batch_size=32, verbose=0)
    before = _everything(model)
    kwargs = {"batch_size": 32, "num_steps": 40, "start_lr": 1e-5, "end_lr": 10}
    once = lr_find(model, x, y, **kwargs)
    three = lr_find(model, x, y, repeats=3, **kwargs)
    assert_bitwise_equal(_everything(model), before)
    assert three.settings["repeats"] == 3 and once.settings["repeats"] == 1
    assert three.lrs == once.lrs and three.losses == once.losses  # the first sweep: the same
    assert len(three.repeat_max_lrs) == 3
    assert len(set(three.repeat_max_lrs)) > 1  # other batches, other curves
    assert three.max_lr == pytest.approx(float(np.median(three.repeat_max_lrs)))


def test_training_after_the_test_is_bitwise_what_it_would_have_been_without_it(digits):
    """Covers every piece of state: weights, dropout seeds, optimizer slots, iterations."""
    x, y = digits
    twins = [make_model(keras.optimizers.SGD(0.05, momentum=0.9), dropout=0.3) for _ in range(2)]
    for model in twins:
        model.fit(x[:128], y[:128], batch_size=32, shuffle=False, verbose=0)
    lr_find(twins[0], x, y, num_steps=30)
    for model in twins:
        model.fit(x[:256], y[:256], batch_size=32, shuffle=False, verbose=0)
    assert_bitwise_equal(values(twins[0].variables), values(twins[1].variables))


class _UnseededNoise(keras.layers.Layer):
    """Noise from keras.random without a seed: Keras's global seed generator."""

    def call(self, inputs, training=False):
        noise = keras.random.normal(keras.ops.shape(inputs), stddev=0.1)
        return inputs + noise if training else inputs


def _train_after(x, y, sweep_data):
    """Weights after a short fit, with a range test on `sweep_data` first (None: without)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((64,)), keras.layers.Dense(32, activation="relu"), _UnseededNoise(),
        keras.layers.Dropout(0.3),  # no seed: on the torch backend, torch's global RNG
        keras.layers.Dense(10),
    ])  # fmt: skip
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x[:64], y[:64], batch_size=32, verbose=0)
    if sweep_data is not None:
        lr_find(model, *sweep_data, num_steps=10, validation_data=(x[:64], y[:64]))
    model.fit(x[:256], y[:256], batch_size=32, verbose=0)  # shuffled: numpy's or torch's RNG
    return values(model.variables)


@pytest.mark.parametrize("data", ["arrays", "dataloader"])
def test_the_global_rngs_are_put_back_so_training_after_the_test_is_unchanged(digits, data):
    """An unseeded Dropout and keras.random draw from global RNGs, and iter() of a shuffling
    DataLoader draws its seed from torch's: the sweep put none of them back, so training after
    it was not what it would have been without it."""
    torch = pytest.importorskip("torch")
    x, y = digits
    sweep_data = {
        "arrays": (x, y),
        "dataloader": (
            torch.utils.data.DataLoader(
                torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                batch_size=32,
                shuffle=True,
            ),
        ),
    }[data]
    assert_bitwise_equal(_train_after(x, y, sweep_data), _train_after(x, y, None))


def test_validation_points_and_iterable_batches(digits):
    x, y = digits
    model = make_model(keras.optimizers.SGD(0.01, momentum=0.9))
    batches = [(x[i : i + 64], y[i : i + 64]) for i in range(0, 640, 64)]  # cycled: 10 batches
    result = lr_find(model, batches, num_steps=40, validation_data=(x[1500:], y[1500:]),
                     val_every=10)  # fmt: skip
    assert result.settings["val_every"] == 10
    assert result.superconvergence is not None


def test_a_generator_shorter_than_the_sweep_is_named_not_a_bare_stop_iteration(digits):
    # a user's check: "cycled if shorter" held for lists, not for a one-pass generator
    x, y = digits
    model = make_model(keras.optimizers.SGD(0.01, momentum=0.9))
    model.fit(x[:64], y[:64], verbose=0)  # built optimizer state that must survive
    before = _everything(model)

    def batches():
        for i in range(10):
            yield x[i * 64 : (i + 1) * 64], y[i * 64 : (i + 1) * 64]

    with pytest.raises(ValueError, match=r"one-pass iterable \(a generator\) that gave 10 "
                       r"batches.* num_steps <= 10"):  # fmt: skip
        lr_find(model, batches(), num_steps=30)
    assert_bitwise_equal(_everything(model), before)
    # fewer batches than any sweep: num_steps <= 8 was advised, then refused (>= 10)
    with pytest.raises(ValueError, match=r"gave 8 batches.* or one that yields at least 10 "):
        lr_find(model, (b for i, b in enumerate(batches()) if i < 8), num_steps=30)
    # with repeats the sweeps read the generator one after another (a reviewer's check: it
    # advised num_steps <= 25 for num_steps=20 and repeats=2)
    with pytest.raises(ValueError, match=r"gave 25 batches.* num_steps \* repeats \(2\) <= 25"):
        lr_find(model, itertools.islice(itertools.chain(batches(), batches(), batches()), 25),
                num_steps=20, repeats=2)  # fmt: skip
    assert_bitwise_equal(_everything(model), before)


def test_numpy_numbers_are_taken_as_the_pytorch_range_test_takes_them(digits):
    # a user's check: "batch_size must be an integer >= 1, got np.int64(32)"
    x, y = digits
    model = make_model(keras.optimizers.SGD(0.01))
    result = lr_find(model, x, y, batch_size=np.int64(32), num_steps=np.int64(20),
                     start_lr=np.float32(1e-6))  # fmt: skip
    assert len(result.lrs) == 20


def test_exception_mid_sweep_still_restores_everything(digits):
    x, y = digits
    model = make_model(keras.optimizers.Adam(0.001))
    model.fit(x[:64], y[:64], verbose=0)
    before = _everything(model)

    def batches():
        for i in range(5):
            yield x[i * 32 : (i + 1) * 32], y[i * 32 : (i + 1) * 32]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lr_find(model, batches(), num_steps=20)
    assert_bitwise_equal(_everything(model), before)
    assert isinstance(model.optimizer, keras.optimizers.Adam)


def test_non_finite_first_loss_is_one_clear_error(digits):
    x, y = digits
    model = make_model(keras.optimizers.SGD(0.01))
    bad = x[:64].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="the loss is not finite at the first step"):
        lr_find(model, bad, y[:64], batch_size=64, num_steps=10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start_lr": 1.0, "end_lr": 0.1}, r"start_lr must be < end_lr"),
        ({"num_steps": 5}, "num_steps must be an integer >= 10"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"rule": "best"}, "rule must be one of minimum, valley, steepest"),
        ({"smoothing": 1.0}, r"smoothing must be in \[0, 1\)"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),  # was numpy's own message
        ({"repeats": 0}, "repeats must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments_name_the_parameter(digits, kwargs, message):
    x, y = digits
    model = make_model(keras.optimizers.SGD(0.01))
    with pytest.raises(ValueError, match=message):
        lr_find(model, x, y, **kwargs)


def test_uncompiled_model_and_missing_targets_are_refused(digits):
    x, y = digits
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    with pytest.raises(ValueError, match=r"model must be compiled first: model.compile"):
        lr_find(model, x, y)
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="y is None"):
        lr_find(model, x)
    with pytest.raises(ValueError, match="x has 1797 samples but y has 10"):
        lr_find(model, x, y[:10])


class _Net(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(16, activation="relu")
        self.out = keras.layers.Dense(10)

    def call(self, inputs):
        return self.out(self.hidden(inputs))


def test_an_unbuilt_subclassed_model_is_left_with_its_initial_weights(digits):
    x, y = digits
    models = []
    for _ in range(2):
        keras.utils.set_random_seed(3)
        model = _Net()
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
        models.append(model)
    lr_find(models[0], x, y, num_steps=20)
    models[1](x[:32])  # built, never trained
    assert_bitwise_equal(values(models[0].weights), values(models[1].weights))


def _two_input_model():
    keras.utils.set_random_seed(0)
    left, right = keras.Input((32,), name="left"), keras.Input((32,), name="right")
    joined = keras.layers.Concatenate()([left, right])
    model = keras.Model([left, right], keras.layers.Dense(10)(joined))
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def test_a_multi_input_model_takes_a_list_tuple_or_dict_of_arrays(digits):
    # a user's check: each of these was "x has 2 samples but y has 1797"
    x, y = digits
    left, right = x[:, :32], x[:, 32:]
    curves = [
        lr_find(_two_input_model(), inputs, y, num_steps=10, validation_data=(inputs, y)).losses
        for inputs in ([left, right], (left, right), {"right": right, "left": left})
    ]
    assert curves[0] == curves[1] == curves[2]  # the same batches, whatever the container
    with pytest.raises(ValueError, match=r"x\['left'\] has 1797 samples but x\['right'\] has 9"):
        lr_find(_two_input_model(), {"left": left, "right": right[:9]}, y, num_steps=10)


def test_python_lists_are_taken_as_arrays(digits):
    x, y = digits
    x, y = x[:256], y[:256]
    arrays = lr_find(make_model(keras.optimizers.SGD(0.01)), x, y, num_steps=10)
    lists = lr_find(
        make_model(keras.optimizers.SGD(0.01)),
        x.tolist(),
        y.tolist(),
        num_steps=10,
        validation_data=(x.tolist(), y.tolist()),
    )
    assert lists.losses == arrays.losses  # was numpy's "only integer scalar arrays ..."
    ragged = r"x must be an array, or a list of samples of one shape, got a ragged list"
    with pytest.raises(ValueError, match=ragged):
        lr_find(make_model(keras.optimizers.SGD(0.01)), [[0.0] * 64, [0.0]], [0, 1])


@pytest.mark.parametrize(
    ("validation_data", "message"),
    [
        (
            "x",
            r"validation_data must be an \(x_val, y_val\) pair of arrays, .*got ndarray of shape "
            r"\(1797, 64\)",
        ),  # was "too many values to unpack (expected 2)"
        ("xyww", r"pair of arrays, or \(x_val, y_val, sample_weight_val\), got a tuple of 4 items"),
        ("short_y", r"validation_data\[0\] has 1797 samples but validation_data\[1\] has 10"),
    ],
)
def test_validation_data_that_is_no_pair_is_refused_before_the_sweep(
    digits, validation_data, message
):
    x, y = digits
    validation_data = {"x": x, "xyww": (x, y, y, y), "short_y": (x, y[:10])}[validation_data]
    model = make_model(keras.optimizers.SGD(0.01, momentum=0.9))
    model.fit(x[:64], y[:64], verbose=0)
    before = _everything(model)
    with pytest.raises(ValueError, match=message):
        lr_find(model, x, y, num_steps=10, validation_data=validation_data)
    assert_bitwise_equal(_everything(model), before)


def test_an_optimizer_with_a_schedule_is_refused_with_the_fix(digits):
    x, y = digits
    model = make_model(keras.optimizers.SGD(0.01))
    schedule_sgd = keras.optimizers.SGD(OneCycle(100, 0.1))
    with pytest.raises(
        TypeError,
        match=r"optimizer must have a float learning_rate.* got SGD "
        r"with a OneCycle learning_rate.*leave optimizer=None",
    ):
        lr_find(model, x, y, num_steps=10, optimizer=schedule_sgd)  # was keras's "not settable"
    # compiled with a schedule, it is swept as a copy with a float LR, and keeps its schedule
    compiled = make_model(keras.optimizers.SGD(OneCycle(100, 0.1), momentum=0.9))
    assert lr_find(compiled, x, y, num_steps=10).settings["optimizer"] == "SGD"
    assert isinstance(compiled.optimizer.get_config()["learning_rate"], dict)


class _Batches(keras.utils.PyDataset):
    """(inputs, targets) batches, or (inputs, targets, sample_weight) with `weight` given."""

    def __init__(self, x, y, weight=None):
        super().__init__()
        self.x, self.y, self.weight = x, y, weight

    def __len__(self):
        return len(self.x) // 32

    def __getitem__(self, index):
        batch = slice(index * 32, (index + 1) * 32)
        if self.weight is None:
            return self.x[batch], self.y[batch]
        return self.x[batch], self.y[batch], np.full(32, self.weight, dtype="float32")


def test_sample_weights_are_used_as_fit_uses_them(digits):
    """Weights of 2 double the first loss (measured before the first update). A PyDataset's
    (x, y, w) batches lost their weights without a word; arrays and validation_data had no way
    to pass them (validation_data=(x, y, w) was refused, as fit takes it)."""
    x, y = digits
    x, y = x[:256], y[:256]

    def first_losses(*data, **kwargs):
        model = make_model(keras.optimizers.SGD(0.01))
        result = lr_find(model, *data, num_steps=10, val_every=10, **kwargs)
        return result.losses[0], result.val_losses[0]

    runs = {  # the same batches without weights, and with weights of 2
        "PyDataset": (
            first_losses(_Batches(x, y), validation_data=(x, y)),
            first_losses(_Batches(x, y, weight=2.0), validation_data=(x, y, np.full(256, 2.0))),
        ),
        "arrays": (
            first_losses(x, y, validation_data=(x, y)),
            first_losses(
                x, y, sample_weight=np.full(256, 2.0), validation_data=(x, y, [2.0] * 256)
            ),
        ),
    }
    for plain, weighted in runs.values():
        assert weighted == pytest.approx((2 * plain[0], 2 * plain[1]), rel=1e-5)


def test_bad_sample_weights_and_batches_name_the_parameter(digits):
    x, y = digits
    model = make_model(keras.optimizers.SGD(0.01))
    with pytest.raises(
        ValueError, match=r"sample_weight must hold one weight per sample \(1797\), got 10"
    ):
        lr_find(model, x, y, sample_weight=np.ones(10))
    with pytest.raises(ValueError, match=r"sample_weight goes with arrays x and y.*third item"):
        lr_find(model, _Batches(x, y), sample_weight=np.ones(1797))
    with pytest.raises(ValueError, match=r"validation_data\[2\] must hold one weight per sample"):
        lr_find(model, x, y, validation_data=(x, y, np.ones(3)))
    four = [(x[:32], y[:32], np.ones(32), np.ones(32))]
    with pytest.raises(
        TypeError, match=r"\(inputs, targets, sample_weight\) batches, got a tuple of 4"
    ):
        lr_find(model, four, num_steps=10)


@pytest.mark.parametrize("optimizer", ["adam", "cyclic_sgd"])
def test_under_mixed_float16_the_loss_scale_optimizer_is_swept_and_restored(
    digits, mixed_float16, optimizer
):
    """compile wraps the optimizer in a LossScaleOptimizer: the sweep's copy of it failed with
    Keras's "LossScaleOptimizer does not support arguments: `learning_rate`"."""
    x, y = digits
    build = {
        "adam": lambda: keras.optimizers.Adam(0.001),
        "cyclic_sgd": lambda: CyclicSGD((0.01, 0.1), (0.95, 0.8), steps=20),
    }[optimizer]
    model = make_model(build())
    model.fit(x[:64], y[:64], batch_size=32, verbose=0)
    before = _everything(model)
    compiled = model.optimizer
    result = lr_find(model, x, y, num_steps=10)
    assert result.settings["optimizer"] == "LossScaleOptimizer"
    assert model.optimizer is compiled
    assert_bitwise_equal(_everything(model), before)


def test_cyclic_sgd_is_swept_as_sgd_with_its_weight_decay_and_clipping(digits):
    """The sweep's SGD for a CyclicSGD kept only its momentum and nesterov: weight_decay and
    clipnorm were dropped, so the curve was that of another optimizer."""
    x, y = digits
    settings = {"weight_decay": 0.05, "clipnorm": 0.1, "nesterov": True}
    cyclic = make_model(CyclicSGD((0.01, 0.1), (0.95, 0.85), steps=20, **settings))
    sgd = make_model(keras.optimizers.SGD(0.01, momentum=0.95, **settings))
    curves = [lr_find(model, x, y, num_steps=20, end_lr=1.0).losses for model in (cyclic, sgd)]
    assert curves[0] == curves[1]


@pytest.mark.parametrize("metric", ["accuracy", "acc", "sparse_categorical_accuracy"])
def test_validation_accuracy_is_recorded_whatever_the_metric_is_called(digits, metric):
    """metrics=["acc"] (the Keras 2 habit, a name Keras 3 keeps) gave no accuracies at all."""
    x, y = digits
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[metric],
    )
    result = lr_find(model, x, y, num_steps=10, val_every=5, validation_data=(x, y))
    assert len(result.val_accuracies) == 3
    assert all(0.0 <= accuracy <= 1.0 for accuracy in result.val_accuracies)
