"""What the Trainer checks before it trains: its arguments and those of a fit, its data (turned
into loaders), and that the first batch fits the model, the loss and the metrics."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from superconverge._checks import (
    check_choice,
    check_count,
    check_non_negative,
    check_number,
    check_optional_count,
    check_positive,
    check_seed,
)
from superconverge.batches import BatchFn, check_first_batch, forward, logits_of
from superconverge.data.checks import (
    check_array_data,
    check_batch,
    check_labels,
    check_rereadable,
    class_count,
)
from superconverge.data.datasets import ArrayData
from superconverge.data.loader import ArrayLoader, Augment
from superconverge.data.pipelines import (
    ENDLESS_EVAL_MIN_BATCHES,
    EvaluationLoader,
    warn_if_unsharded,
)
from superconverge.data.sources import (
    LoaderOptions,
    as_source,
    first_batch,
    has_position,
)
from superconverge.losses import check_loss_fn
from superconverge.metrics import Metric, MetricsSpec, check_metrics, resolve_metrics
from superconverge.pytorch.optimizers import check_optimizer_spec
from superconverge.schedules import Plan
from superconverge.training.callbacks import Callback
from superconverge.training.plans import POLICIES

DEFAULT_BATCH_SIZE = 64
EVAL_BATCH_SIZE = 256  # no gradients to keep: larger batches evaluate faster


def check_trainer_arguments(
    *,
    model: object,
    loss_fn: object,
    optimizer: object,
    weight_decay: object,
    metrics: MetricsSpec,
    batch_size: object,
    callbacks: Sequence[object],
    accumulation_steps: object,
    max_grad_norm: object,
    diverge_factor: object,
    sync_every: object,
    seed: object = 0,
) -> None:
    """The Trainer's argument checks: TypeError for a wrong type, ValueError for a bad value."""
    check_model(model)
    check_seed(seed)
    check_loss_fn(loss_fn)
    check_optimizer_spec(optimizer)
    if weight_decay is not None:
        check_non_negative("weight_decay", weight_decay)
    resolve_metrics(metrics)
    check_optional_count("batch_size", batch_size)
    check_count("accumulation_steps", accumulation_steps)
    if max_grad_norm is not None:
        check_positive("max_grad_norm", max_grad_norm)
    if check_number("diverge_factor", diverge_factor) <= 1:
        raise ValueError(f"diverge_factor must be > 1, got {diverge_factor!r}")
    check_optional_count("sync_every", sync_every)
    check_callbacks(callbacks)


def check_callbacks(callbacks: object) -> list[Callback]:
    """`callbacks` as a list: `Callback` objects, or one (as fastai's ``cbs=`` takes it); a
    class given for an instance is named with the call to make."""
    if isinstance(callbacks, Callback):
        return [callbacks]
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Iterable):
        raise TypeError(f"callbacks must be a list of Callback objects, got {callbacks!r}")
    checked = []
    for callback in callbacks:
        if isinstance(callback, type) and issubclass(callback, Callback):
            name = callback.__name__
            raise TypeError(f"callbacks must be Callback objects, got the class {name}: {name}()")
        if not isinstance(callback, Callback):
            raise TypeError(f"callbacks must be Callback objects, got {callback!r}")
        checked.append(callback)
    return checked


def check_model(model: object) -> None:
    """A ``torch.nn.Module`` instance; its class (``nn.Linear`` for ``nn.Linear(4, 2)``) is named
    with the call to make."""
    if isinstance(model, type) and issubclass(model, nn.Module):
        name = model.__name__
        raise TypeError(f"model must be a torch.nn.Module, got the class {name}: {name}(...)")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def check_trainable(param_groups: Sequence[Sequence[nn.Parameter]]) -> None:
    """The splitter's groups hold at least one parameter that requires a gradient."""
    if not param_groups or not any(p.requires_grad for g in param_groups for p in g):
        raise ValueError("model has no trainable parameters")


def check_one_cycle_arguments(epochs: object, policy: object) -> None:
    """`Trainer.fit_one_cycle`'s checks: epochs >= 1 and a known policy."""
    check_count("epochs", epochs)
    check_choice("policy", policy, tuple(POLICIES))


def check_fit_arguments(
    epochs: object, plan: object, weight_decay: object, backoff: object = 0
) -> None:
    """`Trainer.fit`'s checks: epochs >= 1, a `Plan`, a weight decay >= 0 (or None), a
    back-off count >= 0."""
    check_count("epochs", epochs)
    check_count("backoff", backoff, minimum=0)
    if not isinstance(plan, Plan):
        hint = ""
        if isinstance(plan, (int, float)) and not isinstance(plan, bool):  # fastai's fit(n, lr)
            hint = (
                f"; for a constant LR: fit(epochs, superconverge.constant({plan!r})), for 1cycle: "
                f"fit_one_cycle(epochs, {plan!r})"
            )
        elif callable(plan):  # a plan builder or a schedule, not called or not wrapped
            hint = "; build one, e.g. superconverge.one_cycle(total_steps, max_lr)"
        raise TypeError(f"plan must be a superconverge Plan, got {plan!r}{hint}")
    if weight_decay is not None:
        check_non_negative("weight_decay", weight_decay)


def trainer_loaders(
    train_data: Any,
    val_data: Any,
    batch_size: int | None,
    *,
    augment: Augment | None,
    steps_per_epoch: int | None,
    options: LoaderOptions,
    seed: int,
    device: torch.device,
    rank: int,
    world: int,
    batch_fn: BatchFn | None,
    val_steps: int | None = None,
) -> tuple[Callable[..., Any], Any, Any]:
    """(`make_loader` for other data of the same trainer, the training loader, the validation
    loader or None); validation batches are at least `EVAL_BATCH_SIZE`, `val_steps` of them
    per evaluation where given (a stream), else all."""
    loader = functools.partial(
        make_loader,
        seed=seed,
        device=device,
        rank=rank,
        world=world,
        batch_fn=batch_fn,
        options=options,
    )
    train = loader(
        train_data, "train_data", batch_size, augment=augment, steps_per_epoch=steps_per_epoch
    )
    val = None
    if val_data is not None:
        check_rereadable(val_data, "val_data", val_steps)  # read after every epoch
        val_batch = max(batch_size or DEFAULT_BATCH_SIZE, EVAL_BATCH_SIZE)
        val = evaluation_loader(loader, val_data, "val_data", val_batch, val_steps, train)
    elif val_steps is not None:
        raise ValueError(f"val_steps needs val_data, got val_steps={val_steps!r} and no val_data")
    return loader, train, val


def evaluation_loader(
    make: Callable[..., Any],
    data: Any,
    name: str,
    batch_size: int,
    steps: int | None,
    train_loader: Any,
) -> Any:
    """The loader of validation or test `data` (`make`: a trainer's `make_loader`): a stream is
    read to its end, or `steps` batches. One that reads more than 10 training epochs' batches
    (at least `ENDLESS_EVAL_MIN_BATCHES`) without `steps` stops with an error: endless."""
    loader = make(data, name, batch_size, shuffle=False, steps_per_epoch=steps, evaluation=True)
    if isinstance(loader, EvaluationLoader):
        loader.max_batches = max(ENDLESS_EVAL_MIN_BATCHES, 10 * len(train_loader))
    return loader


def make_loader(
    data: Any,
    name: str,
    batch_size: int | None,
    *,
    shuffle: bool = True,
    augment: Augment | None = None,
    seed: int,
    device: torch.device,
    rank: int,
    world: int,
    steps_per_epoch: int | None = None,
    batch_fn: BatchFn | None = None,
    options: LoaderOptions | None = None,
    evaluation: bool = False,
) -> Any:
    """What the loop iterates, whatever the user brought (`superconverge.data.as_source`): an
    `ArrayLoader` for in-memory data (`batch_size` default 64), a ``DataLoader`` built here for a
    ``Dataset``, the user's loader factory asked for `batch_size`, a stream of
    `steps_per_epoch` batches, or the user's own sized iterable as it is. With `evaluation`
    (validation, test), streams are read to their end or `steps_per_epoch` batches."""
    if not evaluation and name == "train_data":
        warn_if_unsharded(data, name, rank, world)
    if has_position(data):  # an ArrayLoader (or a loader built here) is used as it is
        if batch_size is not None and name == "train_data":
            data.batch_size = batch_size
        return data
    source = as_source(
        data,
        name,
        steps_per_epoch=steps_per_epoch,
        batch_fn=batch_fn,
        options=options,
        evaluation=evaluation,
    )
    own = source.fixed_batch_size
    if not evaluation and own is not None and batch_size is not None and batch_size != own:
        raise ValueError(own_batch_message(batch_size, own, name))
    return source.loader(
        batch_size or DEFAULT_BATCH_SIZE,
        shuffle=shuffle,
        seed=seed,
        device=device,
        augment=augment,
        rank=rank,
        world_size=world,
    )


def own_batch_message(batch_size: int, own: int | None, name: str) -> str:
    """Why `batch_size` cannot apply to `name`, a loader with its own batches (a DataLoader the
    user built: it was ignored, and the run reported a batch size it never trained at)."""
    size = f"its own batch size ({own})" if own is not None else "batches of its own"
    return (
        f"batch_size {batch_size}: {name} is a loader with {size}, which batch_size cannot "
        f"change; leave batch_size unset, or pass its Dataset (the library builds the loader "
        f"at the batch size asked for) or make_loader(batch_size)"
    )


def check_batch_data(
    module: nn.Module,
    inputs: Any,
    targets: Any,
    autocast: contextlib.AbstractContextManager[Any],
) -> int | None:
    """The batch's labels against the model's outputs and its inputs for NaN/inf, naming the row,
    before a loss turns them into an IndexError or a NaN blamed on the LR.

    Returns:
        The number of classes the model predicts, when `targets` are class indices, else None
        (also when the model cannot take `inputs`: the first-batch check says why).

    Raises:
        DataError: a label outside the model's outputs, or a NaN/inf input.
    """
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), autocast:
            try:
                outputs = logits_of(forward(module, inputs))
            except Exception:
                return None
    finally:
        module.train(was_training)
    if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        return None
    classes = class_count(outputs, targets)
    check_batch(inputs, targets, "train_data", classes)
    return classes


def check_fit_data(
    train_loader: Any,
    val_loader: Any,
    batch_fn: BatchFn | None,
    check: Callable[[Any, Any], int | None],
) -> None:
    """The first batch the loop will use, checked with `check` (`Trainer.check_batch`) before
    the fit without consuming it (an `ArrayLoader`'s first samples; other loaders keep the batch
    they peeked at). In-memory data is scanned whole (cheap, vectorised) for NaN/inf inputs and
    labels outside the model's outputs, naming the sample."""
    if isinstance(train_loader, ArrayLoader):
        check_array_data(ArrayData(train_loader.inputs, train_loader.targets), "train_data")
    classes = check(*first_batch(train_loader, batch_fn, "train_data"))
    if isinstance(train_loader, ArrayLoader) and classes is not None:
        check_labels(train_loader.targets, classes, "train_data")
    if isinstance(val_loader, ArrayLoader):  # any task: a NaN target made val_loss nan unsaid
        check_array_data(ArrayData(val_loader.inputs, val_loader.targets), "val_data", classes)


def check_model_on_batch(
    module: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    metrics: Sequence[Metric],
    autocast: contextlib.AbstractContextManager[Any],
    inputs: Any,
    targets: Any,
) -> int | None:
    """One forward pass in eval mode, so that a bad label or NaN input (named), a model whose
    outputs do not fit the targets or the loss, or a metric that raises, fails before any
    step; returns the model's number of classes, if any."""
    classes = check_batch_data(module, inputs, targets, autocast)
    outputs = check_first_batch(module, loss_fn, inputs, targets, autocast=autocast)
    check_metrics(metrics, outputs, targets)
    return classes
