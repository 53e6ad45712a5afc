"""Validation metrics: any callable ``fn(outputs, targets) -> number``, plus built-ins.

Built-ins (`BUILTINS`): ``accuracy`` and ``top5`` (class-index targets only), ``mse`` and
``mae`` (targets of the outputs' shape), ``binary_accuracy`` (0/1 targets of the outputs' shape:
binary and multi-label classification). A built-in is reported only where it applies to the
task, decided on the first batch: a regression gets no accuracy, a classifier no MSE.
``"auto"`` means every built-in that applies but ``top5``; with a binary cross-entropy loss
(`is_binary_loss`) it means ``binary_accuracy`` alone (an MSE of logits against 0/1 targets
measures nothing a user reads), and with a cross-entropy loss (`is_cross_entropy_loss`)
``accuracy`` alone, which then also reads cross_entropy's other targets, class probabilities of
the outputs' shape (mixup, soft labels, distillation): the arg-max of the outputs against the
arg-max of the targets, where an MSE of logits against probabilities would be reported.

``binary_accuracy`` needs to know logits from probabilities, and only the loss tells: the
outputs are logits (right when above 0) unless the loss is ``binary_cross_entropy`` /
``nn.BCELoss``, which take probabilities (right when above 0.5). Each output counts once, so
on a multi-label task it is the share of labels predicted right (Keras' ``binary_accuracy``).

Every metric is a per-batch mean, weighted by the batch's sample count (its first dimension),
so the epoch value is the mean over samples. Sequence outputs follow ``cross_entropy``'s
layout, logits ``(N, C, d1, ...)`` with targets ``(N, d1, ...)``, or Hugging Face's,
``(N, d1, ..., C)``; target positions of -100 (``ignore_index``) are not counted.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from superconverge._warnings import warn
from superconverge.batches import dtype_of, shape_of

IGNORE_INDEX = -100  # cross_entropy's and Hugging Face's label for "no target here"

MetricFn = Callable[[Any, Any], Any]


def _is_class_index(targets: Any) -> bool:
    return isinstance(targets, torch.Tensor) and not (
        targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool
    )


def _class_dim(outputs: Any, targets: Any) -> int | None:
    """The class dimension of `outputs` for class-index `targets`, or None if they do not fit."""
    if not isinstance(outputs, torch.Tensor) or not _is_class_index(targets):
        return None
    if outputs.ndim != targets.ndim + 1 or outputs.shape[0] != targets.shape[0]:
        return None
    if outputs.shape[2:] == targets.shape[1:]:  # cross_entropy's (N, C, d1, ...)
        return 1
    if outputs.shape[:-1] == targets.shape:  # Hugging Face's (N, d1, ..., C)
        return outputs.ndim - 1
    return None


def _same_shape(outputs: Any, targets: Any) -> bool:
    return (
        isinstance(outputs, torch.Tensor)
        and isinstance(targets, torch.Tensor)
        and targets.dtype.is_floating_point
        and outputs.numel() == targets.numel()
        and min(outputs.ndim, targets.ndim) >= 1  # a 0-dim pair has no batch dimension
        and outputs.shape[0] == targets.shape[0]
    )


def _top_k(outputs: torch.Tensor, targets: torch.Tensor, k: int) -> torch.Tensor:
    dim = _class_dim(outputs, targets)
    assert dim is not None  # applies() was checked on the first batch
    keep = targets != IGNORE_INDEX
    if k == 1:
        hits = outputs.argmax(dim) == targets
    else:
        top = outputs.topk(min(k, outputs.shape[dim]), dim=dim).indices
        hits = (top == targets.unsqueeze(dim)).any(dim)
    return (hits & keep).sum() / keep.sum().clamp_min(1)


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Share of predictions whose arg-max is the target class.

    Example:
        >>> float(accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1])))
        0.5
    """
    return _top_k(outputs, targets, 1)


def top5(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Share of targets among the five highest outputs (all of them with fewer classes)."""
    return _top_k(outputs, targets, 5)


def mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error, outputs reshaped to the targets' shape ((N, 1) against (N,)).

    Example:
        >>> float(mse(torch.tensor([[1.0], [3.0]]), torch.tensor([0.0, 1.0])))
        2.5
    """
    return (outputs.reshape(targets.shape).float() - targets.float()).square().mean()


def mae(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean absolute error, outputs reshaped to the targets' shape."""
    return (outputs.reshape(targets.shape).float() - targets.float()).abs().mean()


def _binary_hits(outputs: torch.Tensor, targets: torch.Tensor, threshold: float) -> torch.Tensor:
    predicted = outputs.reshape(targets.shape) > threshold
    return (predicted == (targets.float() >= 0.5)).float().mean()


def binary_accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Share of logits on the target's side of 0 (a target of 0.5 or more counts as 1), over
    every output: on a multi-label task, the share of labels predicted right.

    Example:
        >>> logits, labels = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]]), torch.ones(4)
        >>> float(binary_accuracy(logits, labels))
        0.5
    """
    return _binary_hits(outputs, targets, 0.0)


def binary_accuracy_of_probabilities(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """`binary_accuracy` for outputs that are probabilities (threshold 0.5): what a model
    trained with ``binary_cross_entropy`` / ``nn.BCELoss`` outputs."""
    return _binary_hits(outputs, targets, 0.5)


@dataclass(frozen=True)
class Metric:
    """A named metric: ``fn(outputs, targets)`` gives the batch mean; `applies` says whether it
    is reported for this task (None: always)."""

    name: str
    fn: MetricFn
    applies: Callable[[Any, Any], bool] | None = None
    asked: bool = True  # named by the user (not "auto"): a warning when it does not apply

    def is_reported(self, outputs: Any, targets: Any) -> bool:
        return self.applies is None or bool(self.applies(outputs, targets))


def _classes(outputs: Any, targets: Any) -> bool:
    return _class_dim(outputs, targets) is not None


def _class_probabilities(outputs: Any, targets: Any) -> bool:
    """Targets that are class probabilities of the outputs' shape, classes on dimension 1 (the
    other targets ``cross_entropy`` takes)."""
    return (
        isinstance(outputs, torch.Tensor)
        and isinstance(targets, torch.Tensor)
        and targets.dtype.is_floating_point
        and outputs.ndim >= 2
        and outputs.shape == targets.shape
    )


def _classes_or_probabilities(outputs: Any, targets: Any) -> bool:
    return _classes(outputs, targets) or _class_probabilities(outputs, targets)


def accuracy_of_cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """`accuracy` for a cross-entropy loss: class-index targets as `accuracy` reads them, class
    probabilities by their arg-max (a mixup or soft-label target counts for its largest class).

    Example:
        >>> outputs = torch.tensor([[0.1, 0.9], [0.8, 0.2]])
        >>> float(accuracy_of_cross_entropy(outputs, torch.tensor([[0.3, 0.7], [0.4, 0.6]])))
        0.5
    """
    if not _class_probabilities(outputs, targets):
        return accuracy(outputs, targets)
    return (outputs.argmax(1) == targets.argmax(1)).float().mean()


def _binary(outputs: Any, targets: Any) -> bool:
    """Targets of the outputs' size, every one in [0, 1] (0/1 labels, or soft ones)."""
    if not isinstance(outputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        return False
    if targets.dtype.is_complex or outputs.numel() != targets.numel() or targets.numel() == 0:
        return False
    if min(outputs.ndim, targets.ndim) < 1:  # a 0-dim pair has no batch dimension
        return False
    if outputs.shape[0] != targets.shape[0] or not outputs.dtype.is_floating_point:
        return False
    values = targets.float()
    return bool(((values >= 0) & (values <= 1)).all())


def _labels(targets: torch.Tensor) -> bool:
    """Targets that are all 0 or 1 (labels, not soft targets), both present."""
    values = targets.float()
    return bool(((values == 0) | (values == 1)).all()) and 0 < int(values.sum()) < values.numel()


BUILTINS: dict[str, Metric] = {
    "accuracy": Metric("accuracy", accuracy, _classes),
    "top5": Metric("top5", top5, _classes),
    "mse": Metric("mse", mse, _same_shape),
    "mae": Metric("mae", mae, _same_shape),
    "binary_accuracy": Metric("binary_accuracy", binary_accuracy, _binary),
}
AUTO = ("accuracy", "mse", "mae")
BINARY_AUTO = ("binary_accuracy",)
CROSS_ENTROPY_AUTO = ("accuracy",)


def _unwrapped(loss_fn: Any) -> Any:
    """The function under ``functools.partial`` (``partial(F.cross_entropy,
    label_smoothing=0.1)``, ``partial(F.binary_cross_entropy_with_logits, pos_weight=w)``)."""
    while isinstance(loss_fn, functools.partial):
        loss_fn = loss_fn.func
    return loss_fn


def _takes_probabilities(loss_fn: Any) -> bool:
    loss_fn = _unwrapped(loss_fn)
    return loss_fn is torch.nn.functional.binary_cross_entropy or isinstance(
        loss_fn, torch.nn.BCELoss
    )


def is_binary_loss(loss_fn: Any) -> bool:
    """Whether `loss_fn` is a binary cross-entropy (on logits or on probabilities): the
    losses whose "auto" metric is ``binary_accuracy``."""
    loss_fn = _unwrapped(loss_fn)
    with_logits = loss_fn is torch.nn.functional.binary_cross_entropy_with_logits or isinstance(
        loss_fn, torch.nn.BCEWithLogitsLoss
    )
    return with_logits or _takes_probabilities(loss_fn)


def is_cross_entropy_loss(loss_fn: Any) -> bool:
    """Whether `loss_fn` is ``cross_entropy`` / ``nn.CrossEntropyLoss``: the losses whose
    "auto" metric is ``accuracy`` alone, also on class-probability targets."""
    loss_fn = _unwrapped(loss_fn)
    return loss_fn is torch.nn.functional.cross_entropy or isinstance(
        loss_fn, torch.nn.CrossEntropyLoss
    )


def _for_loss(metric: Metric, loss_fn: Any) -> Metric:
    """`metric` with `binary_accuracy` read at 0.5 where the loss takes probabilities, and
    `accuracy` reading class probabilities too where the loss is a cross-entropy."""
    if metric.fn is binary_accuracy and _takes_probabilities(loss_fn):
        return replace(metric, fn=binary_accuracy_of_probabilities)
    if metric.fn is accuracy and is_cross_entropy_loss(loss_fn):
        return replace(metric, fn=accuracy_of_cross_entropy, applies=_classes_or_probabilities)
    return metric


MetricsSpec = str | Iterable[str | MetricFn] | Mapping[str, str | MetricFn] | None


def resolve_metrics(metrics: MetricsSpec, loss_fn: Any = None) -> tuple[Metric, ...]:
    """Metrics from what users write: ``"auto"``, a name, a list of names and callables, or a
    dict ``{"name": fn_or_builtin_name}``; None or ``()`` means none. `loss_fn` (when known)
    picks "auto"'s built-ins and `binary_accuracy`'s threshold (module docstring).

    Raises:
        ValueError: an unknown built-in name or a repeated name. TypeError: anything else.

    Example:
        >>> [m.name for m in resolve_metrics(["accuracy", "mae"])]
        ['accuracy', 'mae']
        >>> [m.name for m in resolve_metrics({"error": lambda o, t: 0.0})]
        ['error']
    """
    if metrics is None:
        return ()
    if isinstance(metrics, str):
        if metrics == "auto":
            auto = (
                BINARY_AUTO
                if is_binary_loss(loss_fn)
                else CROSS_ENTROPY_AUTO
                if is_cross_entropy_loss(loss_fn)
                else AUTO
            )
            return tuple(_for_loss(replace(BUILTINS[name], asked=False), loss_fn) for name in auto)
        names: list[tuple[str, str | MetricFn]] = [(metrics, metrics)]
    elif isinstance(metrics, Mapping):
        names = [(str(k), v) for k, v in metrics.items()]
    elif isinstance(metrics, Iterable):
        names = []
        for item in metrics:
            if isinstance(item, str):
                names.append((item, item))
            elif callable(item):
                names.append((getattr(item, "__name__", "metric"), item))
            else:
                raise TypeError(f"metrics must hold names or callables, got {item!r}")
    else:
        raise TypeError(
            f"metrics must be 'auto', a name, a list of names/callables or a dict of "
            f"name -> callable, got {metrics!r}"
        )
    resolved: list[Metric] = []
    for name, spec in names:
        if isinstance(spec, str):
            if spec not in BUILTINS:
                raise ValueError(
                    f"metrics: unknown built-in {spec!r}; the built-ins are "
                    f"{', '.join(BUILTINS)} (or give a callable fn(outputs, targets))"
                )
            builtin = BUILTINS[spec]
            resolved.append(_for_loss(Metric(name, builtin.fn, builtin.applies), loss_fn))
        elif callable(spec):
            resolved.append(Metric(name, spec))
        else:
            raise TypeError(
                f"metrics[{name!r}] must be a built-in name or a callable, got {spec!r}"
            )
    seen = [m.name for m in resolved]
    repeated = sorted({n for n in seen if seen.count(n) > 1})
    if repeated:
        raise ValueError(f"metrics: each name may appear once, got {repeated} more than once")
    if "loss" in seen:
        raise ValueError(
            "metrics: 'loss' is the validation loss itself; give the metric another name"
        )
    return tuple(resolved)


class MetricError(ValueError):
    """A metric function raised: the user's code failed, possibly mid-run (the CLI's exit 1,
    with what was kept; it said "usage error" after epochs had run: an auditor's finding)."""


def _value(metric: Metric, outputs: Any, targets: Any) -> torch.Tensor:
    try:
        value = metric.fn(outputs, targets)
    except Exception as error:
        shapes = [
            f"{tuple(x.shape)} ({x.dtype})" if isinstance(x, torch.Tensor) else type(x).__name__
            for x in (outputs, targets)
        ]
        raise MetricError(
            f"metrics[{metric.name!r}] raised {type(error).__name__} on outputs {shapes[0]} and "
            f"targets {shapes[1]}: {error}"
        ) from error
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"metrics[{metric.name!r}] must return a number, got a tensor of shape "
                f"{tuple(value.shape)}"
            )
        return value.detach().reshape(()).double()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"metrics[{metric.name!r}] must return a number, got {value!r}")
    return torch.tensor(float(value), dtype=torch.float64)


class MetricTotals:
    """Sums of sample-weighted batch means over one evaluation; the reported metrics are fixed
    by the first batch added.

    Example:
        >>> totals = MetricTotals(resolve_metrics("auto"))
        >>> totals.add(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]), 2)
        >>> totals.add(torch.tensor([[0.0, 1.0]]), torch.tensor([1]), 1)
        >>> totals.names, [round(v, 4) for v in totals.values()]
        (['accuracy'], [0.6667])
    """

    def __init__(self, metrics: Iterable[Metric], device: torch.device | str = "cpu") -> None:
        self.metrics = tuple(metrics)
        self.device = torch.device(device)
        self.reported: tuple[Metric, ...] | None = None  # fixed by the first batch
        self.sums = torch.zeros(0, dtype=torch.float64, device=self.device)
        self.samples = 0

    @property
    def names(self) -> list[str]:
        return [m.name for m in (self.reported or ())]

    def add(self, outputs: Any, targets: Any, samples: int) -> None:
        if self.reported is None:
            self.reported = tuple(m for m in self.metrics if m.is_reported(outputs, targets))
            self.sums = torch.zeros(len(self.reported), dtype=torch.float64, device=self.device)
        if self.reported:
            values = torch.stack(
                [_value(m, outputs, targets).to(self.device) for m in self.reported]
            )
            self.sums += values * samples
        self.samples += samples

    def adopt(self, names: Iterable[str]) -> None:
        """Report `names` (another rank's `names`) though no batch was added here: a rank of a
        torchrun given no sample adds zeros to the others' sums, in their layout."""
        wanted = set(names)
        self.reported = tuple(m for m in self.metrics if m.name in wanted)
        self.sums = torch.zeros(len(self.reported), dtype=torch.float64, device=self.device)

    def as_tensor(self) -> torch.Tensor:
        """The sums and the sample count in one tensor (to all-reduce across ranks)."""
        count = torch.tensor([float(self.samples)], dtype=torch.float64, device=self.device)
        return torch.cat([self.sums, count])

    def values(self, reduced: torch.Tensor | None = None) -> list[float]:
        """Sample means (of `reduced`, an all-reduced `as_tensor()`, when given)."""
        totals = self.as_tensor() if reduced is None else reduced
        sums, samples = totals[:-1].tolist(), float(totals[-1])
        return [s / samples if samples else math.nan for s in sums]

    def result(self, reduced: torch.Tensor | None = None) -> dict[str, float]:
        return dict(zip(self.names, self.values(reduced), strict=True))


def _builtins_that_apply(outputs: Any, targets: Any) -> list[str]:
    """The built-ins worth naming for these outputs and targets (a hint: it never raises):
    accuracy also on rows of class probabilities (soft labels, which it reads under a
    cross-entropy loss), top5 where there are more than five classes."""
    named = []
    for name, metric in BUILTINS.items():
        try:
            applies = metric.is_reported(outputs, targets)
            if name == "accuracy" and not applies and _class_probabilities(outputs, targets):
                rows = targets.float().sum(1)  # soft labels: rows of probabilities
                applies = bool((targets >= 0).all()) and bool(
                    torch.allclose(rows, torch.ones_like(rows))
                )
            if name == "top5":
                applies = applies and outputs.shape[1] > 5
        except Exception:  # an odd shape (a 0-dim tensor) is no place for a hint to fail
            applies = False
        if applies:
            named.append(name)
    return named


def check_metrics(metrics: Iterable[Metric], outputs: Any, targets: Any) -> list[str]:
    """Run every metric that applies on one batch (the first-batch check) and return the names
    reported; a metric that raises or returns no number fails here, before any training. A
    built-in you named that does not apply (accuracy on a regression's float targets) is
    not reported, with a warning saying so."""
    metrics = list(metrics)
    for metric in metrics:
        if metric.asked and not metric.is_reported(outputs, targets):
            instead = ""
            if metric.fn is accuracy and _binary(outputs, targets):
                instead = " (targets in [0, 1] of the outputs' shape: binary_accuracy reads them)"
            elif fitting := _builtins_that_apply(outputs, targets):
                instead = f"; the built-ins that apply: {', '.join(fitting)}"
            warn(
                f"metrics: {metric.name!r} does not apply to these outputs and targets "
                f"(outputs {shape_of(outputs)}{dtype_of(outputs)}, targets {shape_of(targets)}"
                f"{dtype_of(targets)}): not reported{instead}",
                stacklevel=2,
                key=("metric does not apply", metric.name),  # whatever the batch's shape
            )
        few = metric.fn is top5 and isinstance(outputs, torch.Tensor) and outputs.ndim >= 2
        if metric.asked and few and outputs.shape[1] <= 5:  # a user's check: 1.0, unsaid
            warn(
                f"metrics: 'top5' of a model with {outputs.shape[1]} outputs is 1.0 whatever it "
                "predicts (every class is among its top five)",
                stacklevel=2,
                key=("metric always 1", metric.name),
            )
    auto = {m.name for m in metrics if not m.asked}
    if {"mse", "mae"} <= auto and _binary(outputs, targets) and _labels(targets):
        # an auditor's check: a multi-label task under a loss of the user's own reported "test
        # mse 17.6" (logits against 0/1 labels), which reads as a failed model
        warn(
            "metrics: the targets hold only 0 and 1 in the outputs' shape (binary or "
            "multi-label classification?), and 'auto' reports mse and mae for a loss it does "
            "not know; name the metric: binary_accuracy (outputs that are logits; where they "
            "are probabilities, pass the loss binary_cross_entropy, or your own metric)",
            stacklevel=2,
            key="binary targets under an unknown loss",
        )
    totals = MetricTotals(metrics)
    try:
        totals.add(outputs, targets, 1)
    except MetricError as error:  # before any training: a bad argument (the CLI's exit 2)
        raise ValueError(str(error)) from error.__cause__
    class_metrics = (accuracy, accuracy_of_cross_entropy, top5)
    if any(m.fn in class_metrics for m in totals.reported or ()) and _both_layouts(
        outputs, targets
    ):
        warn(
            f"metrics: outputs {shape_of(outputs)} against targets {shape_of(targets)} fit both "
            "class layouts (classes on dimension 1, cross_entropy's, or last, Hugging Face's); "
            "accuracy reads dimension 1: if your model puts the classes last, give a metric "
            "of your own",
            stacklevel=2,
            key=("ambiguous class dimension",),
        )
    return totals.names


def _both_layouts(outputs: Any, targets: Any) -> bool:
    """Sequence outputs whose class dimension could be 1 or the last (length == classes)."""
    return (
        isinstance(outputs, torch.Tensor)
        and isinstance(targets, torch.Tensor)
        and outputs.ndim >= 3
        and outputs.ndim == targets.ndim + 1
        and outputs.shape[2:] == targets.shape[1:]
        and outputs.shape[:-1] == targets.shape
    )
