"""The LR range test for a compiled Keras 3 model: the same sweep, analysis and result as
`superconverge.lr_find`, with the model and its optimizer left exactly as they were."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

import keras
from superconverge._checks import plain_arguments
from superconverge.finder.analysis import MIN_POINTS
from superconverge.finder.result import RangeTestResult, build_result
from superconverge.finder.sweep import (
    SweepRecord,
    check_sweep_arguments,
    sweep_plan,
    sweep_settings,
)
from superconverge.keras.optimizers import CyclicSGD
from superconverge.pytorch.snapshot import GlobalRngs
from superconverge.training.progress import tell

logger = logging.getLogger(__name__)

DEFAULT_VAL_BATCHES = 4
_KERAS_GLOBAL_SEED_GENERATOR = "global_seed_generator"  # keras.src.random.seed_generator's key


def _arrays(name: str, data: Any) -> Any:
    """`data` as Keras takes a model's inputs or targets: one array (a numpy array or a tensor,
    kept; a Python list of numbers, made a numpy array), or a list, tuple or dict of them for a
    model with several inputs or outputs (a list holding arrays, as Keras reads one)."""
    if isinstance(data, dict):
        return {key: _array(f"{name}[{key!r}]", value) for key, value in data.items()}
    if isinstance(data, (list, tuple)) and any(hasattr(item, "shape") for item in data):
        arrays = [_array(f"{name}[{i}]", item) for i, item in enumerate(data)]
        return arrays if isinstance(data, list) else tuple(arrays)
    return _array(name, data)


def _array(name: str, data: Any) -> Any:
    if hasattr(data, "shape") and hasattr(data, "__getitem__"):
        return data  # numpy arrays and tensors are sliced as they are
    try:
        array = np.asarray(data)
    except ValueError:  # numpy refuses ragged nested lists
        raise ValueError(
            f"{name} must be an array, or a list of samples of one shape, got a ragged "
            f"{type(data).__name__}"
        ) from None
    if array.ndim == 0 or array.dtype == object:
        raise TypeError(
            f"{name} must be an array, a tensor or a list of numbers (or a list, tuple or dict "
            f"of them, one per model input), got {type(data).__name__}"
        )
    return array


def _named(name: str, data: Any) -> list[tuple[str, Any]]:
    """The arrays in `data` (an `_arrays` result), each with the name a message gives it."""
    if isinstance(data, dict):
        return [(f"{name}[{key!r}]", value) for key, value in data.items()]
    if isinstance(data, (list, tuple)):
        return [(f"{name}[{i}]", value) for i, value in enumerate(data)]
    return [(name, data)]


def _count_samples(x_name: str, x: Any, y_name: str, y: Any) -> int:
    """The number of samples every array of `x` and `y` holds; raises if they differ or are 0."""
    arrays = _named(x_name, x) + _named(y_name, y)
    first, size = arrays[0][0], len(arrays[0][1])
    for name, array in arrays[1:]:
        if len(array) != size:
            raise ValueError(f"{first} has {size} samples but {name} has {len(array)}")
    if size == 0:
        raise ValueError(f"{x_name} is empty")
    return size


def _take(data: Any, index: Any) -> Any:
    """The samples at `index` of each array in `data` (an `_arrays` result)."""
    if isinstance(data, dict):
        return {key: value[index] for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(value[index] for value in data)
    return data[index]


def _describe(value: Any) -> str:
    if hasattr(value, "shape"):
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} item{'s' if len(value) != 1 else ''}"
    return type(value).__name__


# (inputs, targets, sample weights or None): what train_on_batch and evaluate take
Batch = tuple[Any, Any, Any]


def _weights(name: str, weights: Any, count: int) -> Any:
    """`weights` (None, or one weight per sample: `count` of them) as an array."""
    if weights is None:
        return None
    array = _array(name, weights)
    if len(array) != count:
        raise ValueError(f"{name} must hold one weight per sample ({count}), got {len(array)}")
    return array


def _validation(validation_data: Any, count: int) -> Batch | None:
    """The first `count` samples of ``validation_data = (x_val, y_val[, sample_weight_val])``
    (as Keras's ``fit`` takes it), or None."""
    if validation_data is None:
        return None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError(
            "validation_data must be an (x_val, y_val) pair of arrays, or (x_val, y_val, "
            f"sample_weight_val), got {_describe(validation_data)}"
        )
    x = _arrays("validation_data[0]", validation_data[0])
    y = _arrays("validation_data[1]", validation_data[1])
    size = _count_samples("validation_data[0]", x, "validation_data[1]", y)
    weights = None
    if len(validation_data) == 3:
        weights = _weights("validation_data[2]", validation_data[2], size)
    first = slice(0, count)
    return _take(x, first), _take(y, first), None if weights is None else weights[first]


class _Batches:
    """Endless batches: shuffled slices of arrays (own RNG), or a cycled iterable of
    ``(inputs, targets)`` or ``(inputs, targets, sample_weight)`` batches."""

    def __init__(
        self, x: Any, y: Any, sample_weight: Any, batch_size: int, seed: int, repeats: int = 1
    ) -> None:
        self.repeats = repeats  # sweeps that read these batches one after another
        self.iterable = (
            y is None and not isinstance(x, (np.ndarray, dict)) and isinstance(x, Iterable)
        )
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        if self.iterable:
            if sample_weight is not None:
                raise ValueError(
                    "sample_weight goes with arrays x and y; x is an iterable of batches: give "
                    "each batch its weights as a third item, (inputs, targets, sample_weight)"
                )
            self.x = x
            self.iterator: Iterator[Any] = iter(x)
            self.served = 0
        else:
            if y is None:
                raise ValueError("y is None: pass targets, or x as an iterable of (x, y) batches")
            self.x, self.y = _arrays("x", x), _arrays("y", y)
            size = _count_samples("x", self.x, "y", self.y)
            self.weights = _weights("sample_weight", sample_weight, size)
            self.order = self.rng.permutation(size)
            self.position = 0

    def __next__(self) -> Batch:
        if self.iterable:
            return self._from_iterable()
        if self.position >= len(self.order):
            self.order, self.position = self.rng.permutation(len(self.order)), 0
        index = np.sort(self.order[self.position : self.position + self.batch_size])
        self.position += self.batch_size
        weights = None if self.weights is None else self.weights[index]
        return _take(self.x, index), _take(self.y, index), weights

    def _from_iterable(self) -> Batch:
        try:
            batch = next(self.iterator)
        except StopIteration:
            if self.served == 0:
                raise ValueError("x yielded no batches: it is empty") from None
            self.iterator = iter(self.x)
            try:
                batch = next(self.iterator)
            except StopIteration:  # a one-pass generator: iter() gives it back, spent
                # fewer batches than any sweep needs: num_steps <= served would be refused
                steps = (
                    "num_steps" if self.repeats == 1 else f"num_steps * repeats ({self.repeats})"
                )
                fewer = (
                    f"{steps} <= {self.served}"
                    if self.served >= MIN_POINTS * self.repeats
                    else (
                        f"one that yields at least {MIN_POINTS} batches (a sweep needs {MIN_POINTS})"
                    )
                )
                raise ValueError(
                    f"x is a one-pass iterable (a generator) that gave {self.served} batches, "
                    "fewer than the sweep's steps, and cannot be read again: pass a "
                    f"keras.utils.PyDataset, a list of batches or arrays, or {fewer}"
                ) from None
        self.served += 1
        if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
            raise TypeError(
                "x must yield (inputs, targets) or (inputs, targets, sample_weight) batches, "
                f"got {_describe(batch)}"
            )
        if isinstance(batch[0], (int, float)):  # x a list of samples, y forgotten
            raise TypeError(
                "x must yield (inputs, targets) batches, got a list of numbers: with y=None, x "
                "is an iterable of batches; for a list of samples, pass the targets as y"
            )
        return batch[0], batch[1], batch[2] if len(batch) == 3 else None


# what CyclicSGD's config adds to SGD's (and its own name)
_CYCLE_SETTINGS = ("name", "bounds", "momentum_bounds", "steps", "mode", "gamma")


def _sweep_optimizer(compiled: Any, start_lr: float) -> keras.optimizers.Optimizer:
    """A fresh optimizer like the compiled one, with a plain float LR the sweep can set."""
    if isinstance(compiled, keras.optimizers.LossScaleOptimizer):  # mixed_float16 wraps in one
        return keras.optimizers.LossScaleOptimizer(
            _sweep_optimizer(compiled.inner_optimizer, start_lr),
            initial_scale=compiled.initial_scale,
            dynamic_growth_steps=compiled.dynamic_growth_steps,
        )
    if isinstance(compiled, CyclicSGD):  # Keras's SGD with its other settings (weight decay,
        # clipping, ...) at the cycle's high momentum
        config = {k: v for k, v in compiled.get_config().items() if k not in _CYCLE_SETTINGS}
        high = 0.0 if compiled.momentum_bounds is None else compiled.momentum_bounds[0]
        return keras.optimizers.SGD(**config, learning_rate=start_lr, momentum=high)
    config = compiled.get_config()
    config["learning_rate"] = start_lr
    config.pop("name", None)
    return type(compiled).from_config(config)


def _check_sweep_optimizer(optimizer: Any) -> None:
    """The sweep sets the LR of a given optimizer at every step: it needs a float LR."""
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(f"optimizer must be a keras optimizer or None, got {optimizer!r}")
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's holds it
    learning_rate = inner.get_config().get("learning_rate")  # a schedule: its config, a dict
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)):
        kind = learning_rate.get("class_name") if isinstance(learning_rate, dict) else None
        raise TypeError(
            "optimizer must have a float learning_rate, which the sweep sets at every step, got "
            f"{type(optimizer).__name__} with a {kind or 'schedule'} learning_rate; build it with "
            "a float (e.g. keras.optimizers.SGD(1e-3, momentum=0.9)), or leave optimizer=None "
            "to sweep with a copy of the compiled optimizer"
        )


def _accuracy_of(logs: dict[str, Any]) -> float | None:
    """The first accuracy among `logs`: ``accuracy``, ``sparse_categorical_accuracy``, ... or
    ``acc`` (Keras 3 keeps the name ``metrics=["acc"]`` was given)."""
    for key, value in logs.items():
        if ("accuracy" in key or key == "acc") and isinstance(value, (int, float)):
            return float(value)
    return None


@plain_arguments  # NumPy's numbers, as the PyTorch range test takes them
def lr_find(
    model: keras.Model,
    x: Any,
    y: Any = None,
    *,
    batch_size: int = 32,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    mode: str = "exp",
    sample_weight: Any = None,
    optimizer: keras.optimizers.Optimizer | None = None,
    validation_data: tuple[Any, ...] | None = None,
    val_every: int | None = None,
    val_batches: int = DEFAULT_VAL_BATCHES,
    smoothing: float = 0.98,
    diverge_factor: float = 4.0,
    rule: str = "minimum",
    policy: str = "one_cycle",
    seed: int = 0,
    repeats: int = 1,
) -> RangeTestResult:
    """Run the LR range test on a compiled Keras model and return the curve and the bounds.

    Each point is one ``train_on_batch`` with the LR of step k at ``start_lr * (end_lr /
    start_lr) ** (k / (num_steps - 1))`` (``mode="exp"``) or linear; the sweep stops at a
    non-finite loss or when the smoothed loss exceeds `diverge_factor` x its minimum; the
    analysis (`rule`, `policy`, the honest failures) is the PyTorch finder's. The sweep trains a
    fresh copy of the compiled optimizer (same class and settings, a float LR; `CyclicSGD`
    becomes SGD at its high momentum, with its weight decay and clipping) unless `optimizer` is
    given. Afterwards every model variable (weights, BatchNorm statistics, dropout seeds), the
    compiled optimizer (its state and ``iterations``), the metrics and the global RNGs
    (Python's, NumPy's, torch's, Keras's seed generator) are bitwise what they were — also
    after an exception.

    Args:
        model: a compiled ``keras.Model`` (``model.compile(optimizer=..., loss=...)``).
        x, y: arrays (or tensors, or Python lists of numbers) of inputs and targets, drawn in
            shuffled batches of `batch_size` from a private RNG seeded by `seed`; for several
            inputs (or outputs) a list, tuple or dict of arrays, as Keras's ``fit`` takes; or
            `x` an iterable of ``(inputs, targets)`` or ``(inputs, targets, sample_weight)``
            batches with ``y=None`` (a ``keras.utils.PyDataset``, a ``torch.utils.data.
            DataLoader``, a generator function's output, a ``tf.data.Dataset``), cycled if
            shorter.
        sample_weight: one weight per sample of arrays `x` and `y`, as Keras's ``fit`` takes
            it (batches of an iterable `x` carry theirs as a third item).
        start_lr, end_lr, num_steps, mode, smoothing, diverge_factor, rule, policy: as in
            `superconverge.lr_find`.
        optimizer: the optimizer to sweep with; it must have a float learning rate (one with a
            ``LearningRateSchedule`` is refused: the sweep sets the LR itself).
        validation_data: ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight_val)``, arrays
            as `x` and `y`: Smith's variant, loss (and accuracy, if compiled with an accuracy
            metric) on its first `val_batches` batches every `val_every` steps.
        seed: seeds the batches' shuffling, an integer >= 0.
        repeats: sweeps from the same weights with other batch orders (arrays: another seed;
            an iterable: its next batches), as `superconverge.lr_find`'s: max_lr is their
            median and ``result.confidence`` says how far they spread. Each sweep after the
            first trains a fresh copy of the optimizer (of `optimizer` where given).

    Returns:
        A `RangeTestResult` (``settings["framework"] == "keras"``).

    Raises:
        ValueError: bad arguments, an uncompiled model, empty data, a non-finite first loss.
        TypeError: data that is not arrays or batches, an optimizer without a float LR.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ValueError(
            "model must be compiled first: model.compile(optimizer=..., loss=...) — the range "
            "test trains with its loss and a copy of its optimizer"
        )
    check_sweep_arguments(
        start_lr, end_lr, num_steps, mode, smoothing, diverge_factor, rule, policy, val_every
    )
    counts = (("batch_size", batch_size), ("val_batches", val_batches), ("repeats", repeats))
    for name, count in counts:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {count!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")  # as numpy takes it
    if optimizer is not None:
        _check_sweep_optimizer(optimizer)

    plan = sweep_plan(start_lr, end_lr, num_steps, mode)
    # the global RNGs are kept from before the data: iter() of a shuffling DataLoader draws
    with _global_rngs_kept():
        batches = _Batches(x, y, sample_weight, batch_size, seed, repeats)
        val = _validation(validation_data, val_batches * batch_size)
        every = val_every if val_every is not None else max(1, num_steps // 20)
        compiled = model.optimizer
        sweeper = optimizer if optimizer is not None else _sweep_optimizer(compiled, start_lr)
        first = next(batches)
        if not model.built:  # create the weights now, so that the snapshot holds them
            model(first[0])
        saved = [(v, np.array(keras.ops.convert_to_numpy(v), copy=True)) for v in _state(model)]
        curves = []
        try:
            for repeat in range(repeats):
                if repeat:  # the same weights, a fresh optimizer, other batches
                    for variable, value in saved:
                        variable.assign(value)
                    sweeper = _sweep_optimizer(
                        optimizer if optimizer is not None else compiled, start_lr
                    )
                    if not batches.iterable:
                        batches = _Batches(x, y, sample_weight, batch_size, seed + 7919 * repeat)
                    first = next(batches)
                record = SweepRecord(num_steps, smoothing, diverge_factor)
                _sweep(model, sweeper, plan, batches, first, val, every, batch_size, record)
                curves.append(record.curve())
        finally:
            model.optimizer = compiled
            model.make_train_function(force=True)
            model.reset_metrics()  # metrics the sweep built lazily start empty; the others are restored
            for variable, value in saved:
                variable.assign(value)
    settings = sweep_settings(
        start_lr,
        end_lr,
        num_steps,
        mode,
        smoothing,
        diverge_factor,
        framework="keras",
        batch_size=batch_size,
        repeats=repeats,
        val_every=every,
        optimizer=type(sweeper).__name__,
        world_size=1,
    )
    result = build_result(
        curves, diverge_factor=diverge_factor, rule=rule, policy=policy, settings=settings
    )
    tell("keras lr_find: " + result.summary().replace("\n", "; "), logger)
    return result


def _sweep(
    model: keras.Model,
    sweeper: Any,
    plan: Any,
    batches: _Batches,
    first: Batch,
    val: Batch | None,
    every: int,
    batch_size: int,
    record: SweepRecord,
) -> None:
    """One sweep of `plan`'s LRs into `record`, with `sweeper` as the model's optimizer."""
    sweeper.learning_rate = float(plan.lr(0))
    model.optimizer = sweeper
    model.make_train_function(force=True)
    for step in range(plan.total_steps):
        lr = plan.lr(step)
        sweeper.learning_rate = lr
        inputs, targets, weights = first if step == 0 else next(batches)
        logs = model.train_on_batch(inputs, targets, sample_weight=weights, return_dict=True)
        # train_on_batch has updated the weights already: a non-finite loss ends the sweep
        if not record.add(step, lr, float(logs["loss"])):
            break
        if val is not None and (step % every == 0 or step == plan.total_steps - 1):
            result = model.evaluate(
                val[0],
                val[1],
                sample_weight=val[2],
                batch_size=batch_size,
                verbose=0,
                return_dict=True,
            )
            record.add_validation(step, float(result["loss"]), _accuracy_of(result))
        if record.diverged():
            break


@contextmanager
def _global_rngs_kept() -> Iterator[None]:
    """Put back the process-wide RNGs a sweep draws from, also after an exception: Python's,
    NumPy's, torch's (an unseeded ``Dropout`` on the torch backend draws from it, and so does
    iterating a shuffling ``DataLoader``) and Keras's global seed generator (``keras.random``
    calls without a seed)."""
    rngs = GlobalRngs()  # torch is a dependency of superconverge, whatever keras's backend
    keras_seeds = _keras_global_seed_generator()
    keras_seed = None if keras_seeds is None else keras.ops.convert_to_numpy(keras_seeds.state)
    try:
        yield
    finally:
        rngs.restore()
        _put_back_keras_global_seed_generator(keras_seeds, keras_seed)


def _keras_global_seed_generator() -> Any:
    """Keras's global seed generator, or None while there is none (Keras makes it on first use,
    seeded from Python's RNG, and drops it in ``keras.utils.set_random_seed``)."""
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # pragma: no cover - a keras that moved it: nothing of it to put back
        return None
    return global_state.get_global_attribute(_KERAS_GLOBAL_SEED_GENERATOR)


def _put_back_keras_global_seed_generator(generator: Any, state: Any) -> None:
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # pragma: no cover
        return
    if generator is None:  # made during the sweep: drop it, to be made afresh as without it
        global_state.set_global_attribute(_KERAS_GLOBAL_SEED_GENERATOR, None)
    elif generator is global_state.get_global_attribute(_KERAS_GLOBAL_SEED_GENERATOR):
        generator.state.assign(state)


def _state(model: keras.Model) -> list[Any]:
    """Every variable the sweep may change: the model's, its metrics', the compiled optimizer's."""
    seen: set[int] = set()
    out = []
    groups = (model.variables, model.metrics_variables, model.optimizer.variables)
    for variable in (v for group in groups for v in group):
        if id(variable) not in seen:
            seen.add(id(variable))
            out.append(variable)
    return out


__all__ = ["lr_find"]
