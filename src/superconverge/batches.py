"""The one batch hook: how a batch becomes ``(inputs, targets)``, and how inputs reach the model.

The range test, the training loop and the recipe all read batches through `split_batch`, so a
data set that works in one works in all three. What a batch may be:

- an ``(inputs, targets)`` pair (tuple or list), as ``TensorDataset`` and most loaders yield;
- a dict (Hugging Face style): the targets are the value of the first key among `TARGET_KEYS`
  (``labels``, ``label``, ``targets``, ``target``, ``y``) and the inputs the dict of the other
  keys, which reaches the model as keyword arguments (``model(**inputs)``);
- anything else, through ``batch_fn(batch) -> (inputs, targets)``, given once to `lr_find`,
  `Trainer` or `tune`.

A model output that is not a tensor but carries ``logits`` (Hugging Face's ``ModelOutput``, or
a dict with a ``"logits"`` key) is reduced to those logits before `loss_fn` and the metrics.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

TARGET_KEYS = ("labels", "label", "targets", "target", "y")
# the advice for batches the library cannot split (the CLI says it with its --batch-fn flag)
BATCH_FN_ADVICE = "batch_fn=lambda batch: (inputs, targets)"

BatchFn = Callable[[Any], tuple[Any, Any]]


class ModelCannotRunHere(TypeError):
    """A model (or a wrapper of one, as `tune_module`'s) that cannot run outside its own
    framework whatever its inputs: raised as it is, not blamed on the inputs' shape."""


def check_batch_fn(batch_fn: object) -> BatchFn | None:
    """None or a callable; raises naming ``batch_fn`` otherwise."""
    if batch_fn is not None and not callable(batch_fn):
        raise TypeError(
            f"batch_fn must be a callable batch -> (inputs, targets) or None, got {batch_fn!r}"
        )
    return batch_fn


def _describe(value: object) -> str:
    """A short description of a batch or a value in it, for error messages."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} ({value.dtype})"
    if isinstance(value, Mapping):
        return f"a dict with keys {sorted(map(str, value))}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of length {len(value)}"
    return f"a {type(value).__name__}"


def split_batch(
    batch: Any, batch_fn: BatchFn | None = None, name: str = "train_data"
) -> tuple[Any, Any]:
    """``(inputs, targets)`` of one batch (see the module's docstring for what a batch may be).

    Args:
        batch: what the data yielded.
        batch_fn: the user's hook, or None for pairs and dicts.
        name: the argument the batch came from, for the message.

    Raises:
        TypeError: a batch that is neither a pair nor a dict with a target key, or a `batch_fn`
            that returns no pair; the message names `name` (or ``batch_fn``) and what was found.

    Example:
        >>> split_batch({"input_ids": 1, "attention_mask": 2, "labels": 3})
        ({'input_ids': 1, 'attention_mask': 2}, 3)
        >>> split_batch((1, 2))
        (1, 2)
    """
    if batch_fn is not None:
        try:
            pair = batch_fn(batch)
        except Exception as error:
            raise TypeError(
                f"batch_fn raised {type(error).__name__} on a batch of {name} "
                f"({_describe(batch)}): {error}"
            ) from error
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(
                f"batch_fn must return an (inputs, targets) pair, got {_describe(pair)} "
                f"for a batch of {name} ({_describe(batch)})"
            )
        return pair[0], pair[1]
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    if isinstance(batch, Mapping):
        for key in TARGET_KEYS:
            if key in batch:
                return {k: v for k, v in batch.items() if k != key}, batch[key]
        raise TypeError(
            f"{name} yields dict batches with keys {sorted(map(str, batch))} and none of the "
            f"target keys {list(TARGET_KEYS)}; rename the targets' key or pass {BATCH_FN_ADVICE}"
        )
    raise TypeError(
        f"{name} must yield (inputs, targets) pairs, got {_describe(batch)}; dict batches need "
        f"a 'labels' key, anything else {BATCH_FN_ADVICE}"
    )


def forward(model: nn.Module, inputs: Any) -> Any:
    """``model(**inputs)`` for dict inputs, else ``model(inputs)``; logits out of model outputs."""
    if isinstance(inputs, torch.Tensor):  # first: a Mapping check costs ~1 µs per batch
        outputs = model(inputs)
    else:
        outputs = model(**inputs) if isinstance(inputs, Mapping) else model(inputs)
    return outputs if isinstance(outputs, torch.Tensor) else logits_of(outputs)


def logits_of(outputs: Any) -> Any:
    """The tensor to score: `outputs` itself, or its ``logits`` (Hugging Face ``ModelOutput``)."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, Mapping) and "logits" in outputs:
        return outputs["logits"]
    logits = getattr(outputs, "logits", None)
    return outputs if logits is None else logits


def count(targets: Any) -> int:
    """Samples in a batch: the length of its targets (the first tensor of a pair or dict)."""
    if isinstance(targets, torch.Tensor):
        return int(targets.shape[0]) if targets.ndim else 1
    if isinstance(targets, Mapping):
        return count(next(iter(targets.values())))
    if isinstance(targets, (tuple, list)) and targets and not isinstance(targets[0], (int, float)):
        return count(targets[0])
    return len(targets)


def shape_of(value: Any) -> str:
    """The shape of a tensor (of each tensor in a dict, the type of anything else), for
    messages: ``(2, 5)``, ``{input_ids: (2, 7)}``."""
    if isinstance(value, torch.Tensor):
        return str(tuple(value.shape))
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {shape_of(v)}" for k, v in value.items()) + "}"
    return _describe(value)


def dtype_of(value: Any) -> str:
    """`` (torch.float32)`` after a tensor's shape in messages; nothing for anything else."""
    return f" ({value.dtype})" if isinstance(value, torch.Tensor) else ""


class DataError(ValueError):
    """The data cannot be trained on as given; the message names the sample and what to do.
    (Imported by users from ``superconverge.data.checks``, where it was defined first.)"""


def _label_outside(outputs: Any, targets: Any) -> int | None:
    """The first class-index target outside ``[0, classes)`` of (batch, classes) outputs."""
    if not (isinstance(outputs, torch.Tensor) and isinstance(targets, torch.Tensor)):
        return None
    if outputs.dim() != 2 or targets.dim() != 1 or targets.dtype not in (torch.int64, torch.int32):
        return None
    outside = ((targets < 0) & (targets != -100)) | (targets >= outputs.shape[1])  # -100: ignored
    return int(targets[outside][0]) if bool(outside.any()) else None


def fitted_loss(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    inputs: Any,
    targets: Any,
    name: str = "train_data",
) -> tuple[Any, torch.Tensor]:
    """``(outputs, loss)`` of one batch, where a model whose outputs do not fit the targets gets
    one message with the shapes instead of torch's: the first step of the range test and the
    first-batch check of the trainer both go through it.

    Raises:
        ValueError: the model cannot take the inputs, the loss cannot take outputs and targets
            (torch's broadcasting warning for MSE-style losses counts), or the loss is not a
            scalar; the message names `name` and shows the shapes.
    """
    try:
        outputs = forward(model, inputs)
    except ModelCannotRunHere:
        raise  # not the inputs' fault: its own message says why
    except Exception as error:
        roles = {"train_data": "training", "val_data": "validation", "test_data": "test"}
        role = roles.get(name, name)
        raise DataError(  # a ValueError: the data the caller gave does not fit the model
            f"the model cannot take the {role} inputs of shape {shape_of(inputs)}"
            f"{dtype_of(inputs)} ({name}): {error}"
        ) from error
    try:
        with warnings.catch_warnings():
            # torch only warns when MSE-style losses broadcast mismatched shapes
            warnings.filterwarnings("error", message=".*(size|shape).*", category=UserWarning)
            loss = loss_fn(outputs, targets)
    except Exception as error:
        label = _label_outside(outputs, targets)
        if label is not None:  # torch says "Target 6 is out of bounds": say what to change
            classes = outputs.shape[1]
            raise DataError(
                f"{name} has label {label}, but the model has {classes} outputs: class labels "
                f"must be in [0, {classes - 1}]; build the model with at least "
                f"{int(targets.max()) + 1} outputs (num_classes) or fix the labels"
            ) from error
        # "loss_fn raised", not "do not fit": a user's loss raising its own error on the usual
        # shapes was blamed on them (an auditor's finding); torch's own say what does not fit
        raise DataError(
            f"loss_fn raised {type(error).__name__} on model outputs of shape "
            f"{shape_of(outputs)} and targets of shape {shape_of(targets)}{dtype_of(targets)} "
            f"({name}): {error}{_shape_hint(loss_fn, outputs, targets)}"
        ) from error
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError(
            f"loss_fn must return a scalar tensor, got {shape_of(loss)} for outputs "
            f"{shape_of(outputs)} and targets {shape_of(targets)}"
        )
    _check_not_one_class(loss_fn, outputs, name)
    return outputs, loss


def check_first_batch(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    inputs: Any,
    targets: Any,
    *,
    name: str = "train_data",
    autocast: contextlib.AbstractContextManager[Any] | None = None,
) -> Any:
    """`fitted_loss` in eval mode without gradients, so that a model whose outputs do not fit
    the targets fails before any training time is spent; returns the outputs (logits), e.g. for
    checking the metrics on the same batch."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), autocast or contextlib.nullcontext():
            outputs, loss = fitted_loss(model, loss_fn, inputs, targets, name)
    finally:
        model.train(was_training)
    value = 0.0 if loss.device.type == "meta" else float(loss.detach().float())  # meta: shapes
    if not math.isfinite(value):  # it went through every LR halving, then "try a lower max_lr"
        raise ValueError(
            f"loss_fn gave {value} on the first batch of {name}, before any update: no learning "
            f"rate causes that; check loss_fn, the model's outputs ({shape_of(outputs)}) and "
            "the batch's values"
        )
    return outputs


def _is_cross_entropy(loss_fn: Callable[..., torch.Tensor]) -> bool:
    return loss_fn is nn.functional.cross_entropy or isinstance(loss_fn, nn.CrossEntropyLoss)


def _shape_hint(loss_fn: Callable[..., torch.Tensor], outputs: Any, targets: Any) -> str:
    """The usual fix for outputs and targets that a loss cannot pair, where it is recognisable
    (classes on the last dimension, as Hugging Face models give them; one output per sample
    against targets without that dimension); "" otherwise."""
    if not (isinstance(outputs, torch.Tensor) and isinstance(targets, torch.Tensor)):
        return ""
    if (
        _is_cross_entropy(loss_fn)
        and outputs.dim() >= 3
        and outputs.shape[:-1] == targets.shape
        and not targets.dtype.is_floating_point
    ):
        return (
            "; the classes are on the last dimension (Hugging Face's layout) and cross_entropy "
            "wants them on dimension 1: loss_fn=lambda outputs, targets: "
            "F.cross_entropy(outputs.movedim(-1, 1), targets)"
        )
    if outputs.numel() != targets.numel() or outputs.shape == targets.shape:
        return ""
    if outputs.dim() == targets.dim() + 1 and outputs.shape[-1] == 1:
        how = "targets[:, None] in your data, or outputs.squeeze(-1) in loss_fn"
    elif targets.dim() == outputs.dim() + 1 and targets.shape[-1] == 1:
        how = "targets.squeeze(-1) in your data, or outputs[..., None] in loss_fn"
    else:  # the same sizes in another order (a transpose?): a reshape would scramble them
        return ""
    return (
        f"; one output per sample against targets with{'out' if outputs.dim() > targets.dim() else ''}"
        f" that unit dimension: give the targets the outputs' shape {shape_of(outputs)} ({how})"
    )


def _check_not_one_class(loss_fn: Callable[..., torch.Tensor], outputs: Any, name: str) -> None:
    """Cross-entropy over one output is a softmax over one class: 1, so the loss is 0 for every
    sample and its gradient 0; training "runs" and learns nothing (a regression model given
    the default loss)."""
    cross_entropy = _is_cross_entropy(loss_fn)
    one_class = isinstance(outputs, torch.Tensor) and outputs.dim() >= 2 and outputs.shape[1] == 1
    if cross_entropy and one_class:
        raise ValueError(
            f"loss_fn is cross-entropy, but the model has 1 output (outputs of shape "
            f"{shape_of(outputs)} on {name}): a softmax over one class is 1, so the loss "
            "is 0 for every sample and nothing is learned; for a regression use mse "
            "(loss_fn=torch.nn.functional.mse_loss, --loss mse), for two classes give the "
            "model 2 outputs or use bce_with_logits"
        )
