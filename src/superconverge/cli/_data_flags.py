"""The flags that say what the user trains: data from ``module:function`` (tensors, Datasets or
loader factories), the loss, the metrics, the optimizer, the device, the precision and how the
data are loaded. Shared by ``tune``, ``lr-find`` and ``fit --plan``."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from superconverge.cli._common import UsageError, import_named

OPTIMIZER_NAMES = ("sgd", "adamw", "nadamw", "adam")  # superconverge.pytorch.optimizers
# `superconverge.losses.LOSSES`' names, for the help without importing torch (test_main.py)
LOSS_NAMES = ("cross_entropy", "mse", "l1", "smooth_l1", "bce_with_logits", "nll")
PRECISION_NAMES = ("auto", "32", "bf16", "fp16")  # superconverge.training.device


def device_flag(value: str) -> str:
    """--device checked as it is parsed (a name torch knows, CUDA only where it is available),
    so that a bad one stops the command before it loads data or makes a folder."""
    if value == "auto":  # the default: always valid, and a usage error need not import torch
        return value
    from superconverge.data.loader import resolve_device

    try:
        resolve_device(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("device ")) from None
    return value


def add_task_flags(
    parser: argparse.ArgumentParser,
    *,
    optimizer_default: str = "sgd",
    precision: bool = True,
    evaluation: bool = True,
    metrics: bool = True,
) -> None:
    """--loss, --metric (with `metrics`), --optimizer, --device, --precision, --num-workers,
    --steps-per-epoch, --val-steps and --test-steps (with `evaluation`), --batch-fn,
    --collate-fn."""
    parser.add_argument(
        "--loss",
        default="cross_entropy",
        help=f"{', '.join(LOSS_NAMES)}, or module:function loss_fn(outputs, targets)",
    )
    if metrics:
        parser.add_argument(
            "--metric",
            action="append",
            dest="metrics",
            metavar="METRIC",
            help="accuracy, top5, mse, mae, binary_accuracy, or module:function "
            "fn(outputs, targets); repeat for several (default: auto, the built-ins that apply "
            "to the task and the loss)",
        )
    choices = (
        OPTIMIZER_NAMES if optimizer_default in OPTIMIZER_NAMES else ("auto", *OPTIMIZER_NAMES)
    )
    parser.add_argument(
        "--optimizer",
        choices=choices,
        default=optimizer_default,
        help="auto (tune): AdamW, or SGD against AdamW where the LR is searched by short runs"
        if "auto" in choices
        else None,
    )
    parser.add_argument(
        "--device", default="auto", type=device_flag, help="auto, cpu, cuda or cuda:N"
    )
    if precision:
        parser.add_argument("--precision", choices=PRECISION_NAMES, default="auto")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=0,
        help="DataLoader worker processes for a Dataset given by --data module:function",
    )
    parser.add_argument(
        "--steps-per-epoch", type=int, help="batches per epoch of a stream (IterableDataset)"
    )
    if evaluation:
        for split in ("val", "test"):
            parser.add_argument(
                f"--{split}-steps",
                type=int,
                help=f"batches per evaluation of an endless {split} stream (a finite one is read "
                "to its end without it)",
            )
    parser.add_argument(
        "--batch-fn", help="module:function batch -> (inputs, targets), for other batches"
    )
    parser.add_argument("--collate-fn", help="module:function, the DataLoader's collate_fn")


def import_object(spec: str, flag: str) -> Any:
    """The object ``module:name`` names, or a UsageError naming the flag."""
    module, name = import_named(spec, flag)
    try:
        return getattr(module, name)
    except AttributeError:
        module_name = spec.partition(":")[0]
        raise UsageError(f"{flag} {spec}: {module_name} has no {name!r}") from None


def callable_from_flag(spec: str | None, flag: str) -> Any:
    if spec is None:
        return None
    value = import_object(spec, flag)
    if not callable(value):
        raise UsageError(f"{flag} {spec} must name a callable, got {type(value).__name__}")
    return value


def loss_from_flag(spec: str) -> Any:
    from superconverge.losses import LOSSES

    if spec in LOSSES:
        return LOSSES[spec]
    if ":" not in spec:
        raise UsageError(
            f"--loss must be one of {', '.join(LOSSES)} or module:function, got {spec!r}"
        )
    return callable_from_flag(spec, "--loss")


def metrics_from_flags(specs: list[str] | None) -> Any:
    """``"auto"`` without --metric; else ``{name: built-in or callable}``."""
    from superconverge.metrics import BUILTINS

    if not specs:
        return "auto"
    metrics: dict[str, Any] = {}
    for spec in specs:
        if spec in BUILTINS:
            metrics[spec] = spec
        elif ":" in spec:
            metrics[spec.partition(":")[2]] = callable_from_flag(spec, "--metric")
        else:
            raise UsageError(
                f"--metric must be one of {', '.join(BUILTINS)} or module:function, got {spec!r}"
            )
    return metrics


def data_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments `tune`, `Trainer`, `lr_find` and `TunePlan.run` take for reading
    the data, from the flags."""
    if args.num_workers < 0:
        raise UsageError(f"--num-workers must be >= 0, got {args.num_workers}")
    steps_per_epoch = steps_flag(args.steps_per_epoch, "--steps-per-epoch")
    return {
        "batch_fn": callable_from_flag(args.batch_fn, "--batch-fn"),
        "collate_fn": callable_from_flag(args.collate_fn, "--collate-fn"),
        "num_workers": args.num_workers,
        "steps_per_epoch": steps_per_epoch,
    }


def evaluation_options(args: argparse.Namespace) -> dict[str, Any]:
    """``val_steps`` and ``test_steps`` for `tune` and `TunePlan.run`, from the flags."""
    return {
        "val_steps": steps_flag(args.val_steps, "--val-steps"),
        "test_steps": steps_flag(args.test_steps, "--test-steps"),
    }


def steps_flag(value: int | None, flag: str) -> int | None:
    """A count of batches from `flag` (None: not given), at least 1."""
    if value is not None and value < 1:
        raise UsageError(f"{flag} must be >= 1, got {value}")
    return value


def saved_flags(args: argparse.Namespace) -> dict[str, Any]:
    """What ``fit --plan`` needs to serve the data the same way again (names, not objects)."""
    return {
        "loss": args.loss,
        "metrics": args.metrics,
        "num_workers": args.num_workers,
        "steps_per_epoch": args.steps_per_epoch,
        "val_steps": getattr(args, "val_steps", None),
        "test_steps": getattr(args, "test_steps", None),
        "batch_fn": args.batch_fn,
        "collate_fn": args.collate_fn,
        "device": args.device,
        "precision": getattr(args, "precision", "auto"),
    }


@dataclass(frozen=True)
class UserData:
    """What ``--data module:function`` returned when it is not a `DataSplits`: the training,
    validation and (optional) test data, each any kind `superconverge.data.as_source` takes."""

    name: str
    train: Any
    val: Any
    test: Any = None
    num_classes: int | None = None


def user_data(spec: str, value: Any) -> UserData:
    """``(train, val)``, ``(train, val, test)`` or a dict with those keys, as `UserData`."""
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"train", "val", "test"})
        if "train" not in value or unknown:
            raise UsageError(
                f"--data {spec} must return a dict with the key train, and optionally val and "
                f"test, got the keys {sorted(value)}"
            )
        return UserData(spec, value["train"], value.get("val"), value.get("test"))
    if isinstance(value, tuple) and len(value) in (2, 3):
        return UserData(spec, *value)
    raise UsageError(
        f"--data {spec} must return superconverge.data.DataSplits, (train, val), "
        f"(train, val, test) or a dict of them (tensors, Datasets or loader factories), got "
        + (f"a tuple of {len(value)}" if isinstance(value, tuple) else type(value).__name__)
    )
