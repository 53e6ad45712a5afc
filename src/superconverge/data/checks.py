"""Cheap checks of the data before any training time is spent on it, naming the bad sample.

Two mistakes otherwise surface far from their cause: a class label past the model's outputs
(torch's ``IndexError: Target 15 is out of bounds`` deep inside a training step) and NaN or inf
in the inputs (a NaN loss blamed on the learning rate). For in-memory data (`ArrayData`) the
whole tensors are scanned, vectorised and in chunks (a few ms for CIFAR-10's 50,000 images); for
any other data only the batch the caller already holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from superconverge.batches import DataError
from superconverge.data.datasets import ArrayData
from superconverge.data.pipelines import STEPS_ARGUMENTS

IGNORE_INDEX = -100  # cross_entropy's default ignore_index: a label that is skipped, not wrong
CHUNK_ELEMENTS = 1 << 24  # elements scanned at once: bounds the scan's temporary memory (16 MiB)
EXAMPLES = 5  # bad samples named in a message


def class_count(outputs: Any, targets: Any) -> int | None:
    """The number of classes the model predicts when `targets` are class indices for
    `outputs` (``(N, C, ...)`` scores, ``(N, ...)`` integer labels), else None.

    Example:
        >>> class_count(torch.zeros(4, 10), torch.zeros(4, dtype=torch.long))
        10
        >>> class_count(torch.zeros(4, 1), torch.zeros(4, 1)) is None  # regression targets
        True
    """
    if not isinstance(outputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        return None
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        return None
    if outputs.ndim < 2 or outputs.ndim != targets.ndim + 1:
        return None
    return int(outputs.shape[1])


def check_array_data(data: ArrayData, name: str, num_classes: int | None = None) -> None:
    """Scan the whole of `data`: finite inputs (and float targets), labels below `num_classes`.

    Raises:
        DataError: naming the first bad sample by its index in `data`.

    Example:
        >>> bad = ArrayData(torch.zeros(3, 2), torch.tensor([0, 1, 15]))
        >>> check_array_data(bad, "train_data", num_classes=10)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        superconverge.batches.DataError: train_data sample 2 has label 15, but the model has 10 outputs: ...
    """
    _check_finite(data.inputs, name, "inputs", offset=0, unit="sample")
    if data.targets.is_floating_point():
        _check_finite(data.targets, name, "targets", offset=0, unit="sample")
    elif num_classes is not None:
        check_labels(data.targets, num_classes, name)


def check_batch(
    inputs: Any, targets: Any, name: str, num_classes: int | None = None, *, batch: int = 0
) -> None:
    """The same checks on one batch of data that is not in memory (rows named within it)."""
    unit = f"batch {batch}, row"
    if isinstance(inputs, torch.Tensor):
        _check_finite(inputs, name, "inputs", offset=0, unit=unit)
    if isinstance(targets, torch.Tensor):
        if targets.is_floating_point():
            _check_finite(targets, name, "targets", offset=0, unit=unit)
        elif num_classes is not None:
            check_labels(targets, num_classes, name, unit=unit)


def check_labels(
    targets: torch.Tensor, num_classes: int, name: str, *, unit: str = "sample"
) -> None:
    """Class indices must lie in ``[0, num_classes)`` (or be cross_entropy's ignore_index).

    Raises:
        DataError: naming the first sample whose label is out of range.
    """
    flat = targets.reshape(len(targets), -1) if targets.ndim > 1 else targets.reshape(-1, 1)
    outside = ((flat < 0) & (flat != IGNORE_INDEX)) | (flat >= num_classes)
    bad_rows = outside.any(dim=1).nonzero().flatten()
    if len(bad_rows) == 0:
        return
    first = int(bad_rows[0])
    label = int(flat[first][outside[first]][0])
    values = flat[outside]
    largest, smallest = int(values.max()), int(values.min())
    found = f"label {largest}" if largest == smallest else f"labels from {smallest} to {largest}"
    if largest >= num_classes:
        fix = f"build the model with at least {largest + 1} outputs (num_classes) or fix the labels"
    else:
        fix = "labels are class indices from 0: fix the labels"
    raise DataError(
        f"{name} {unit} {first} has label {label}, but the model has {num_classes} outputs: "
        f"class labels must be in [0, {num_classes - 1}] ({found} found; "
        f"{_count(bad_rows, unit)}); {fix}"
    )


def _check_finite(tensor: torch.Tensor, name: str, what: str, *, offset: int, unit: str) -> None:
    if not tensor.is_floating_point() or len(tensor) == 0:
        return
    per_row = max(1, tensor[0].numel())
    chunk = max(1, CHUNK_ELEMENTS // per_row)
    bad: list[torch.Tensor] = []
    for start in range(0, len(tensor), chunk):
        rows = tensor[start : start + chunk].reshape(min(chunk, len(tensor) - start), -1)
        found = (~torch.isfinite(rows)).any(dim=1).nonzero().flatten()
        if len(found):
            bad.append(found + start)
    if not bad:
        return
    bad_rows = torch.cat(bad)
    first = int(bad_rows[0])
    row = tensor[first].reshape(-1)
    position = int((~torch.isfinite(row)).nonzero()[0])
    value = float(row[position])
    where = "" if tensor[first].numel() == 1 else f" (at {_position(tensor[first], position)})"
    raise DataError(
        f"{name} {unit} {first + offset} has {value} in its {what}{where}; NaN or inf in the "
        f"{what} makes the loss NaN whatever the learning rate: remove or impute such samples "
        f"({_count(bad_rows, unit)})"
    )


def _position(sample: torch.Tensor, flat_index: int) -> tuple[int, ...]:
    index = []
    for size in reversed(sample.shape):
        index.append(flat_index % size)
        flat_index //= size
    return tuple(reversed(index))


def _count(rows: torch.Tensor, unit: str) -> str:
    listed = ", ".join(str(int(r)) for r in rows[:EXAMPLES])
    more = ", ..." if len(rows) > EXAMPLES else ""
    plural = "s" if len(rows) > 1 else ""
    return f"{len(rows)} {unit.split(', ')[-1]}{plural} affected: {listed}{more}"


def check_rereadable(data: Any, name: str, steps: int | None) -> None:
    """Validation data is read after every epoch: a generator or other iterator, read to its
    end once, would be empty the second time, so without `steps` (an endless one, continued)
    it is refused before any training.

    Raises:
        ValueError: naming `name`, what it is, and what to pass instead.
    """
    if steps is None and isinstance(data, Iterator):
        raise ValueError(
            f"{name} is a {type(data).__name__}, which can be read once, and validation reads it "
            "after every epoch: pass an iterable that restarts (a list of batches, an "
            "IterableDataset, a DataLoader) or make_loader(batch_size) returning a fresh one, "
            f"or declare {STEPS_ARGUMENTS.get(name, 'steps')}= for an endless stream"
        )
