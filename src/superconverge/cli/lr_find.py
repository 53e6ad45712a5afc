"""``superconverge lr-find``: the LR range test on a data set and a reference model."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from superconverge._files import (
    FolderBusyError,
    FolderLock,
    write_atomically,
    write_text_atomically,
)
from superconverge._run_folder import TRAINING_FILES
from superconverge.cli._common import (
    MODEL_NAMES,
    UsageError,
    add_data_flags,
    check_outputs,
    check_seed,
    model_from_flag,
    refuse_busy_folder,
    refuse_torchrun,
    remove_if_only_the_lock,
    resolve_data,
)
from superconverge.cli._data_flags import (
    UserData,
    add_task_flags,
    data_options,
    loss_from_flag,
)

OUTPUTS = ("lr_find.json", "lr_find.png")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "lr-find",
        help="run the LR range test and suggest max_lr / min_lr",
        description="Run the LR range test on a data set and model, print the suggested bounds "
        "and why, and write lr_find.png and lr_find.json into --out.",
    )
    add_data_flags(p)
    p.add_argument(
        "--model", default="mlp", help=f"{', '.join(sorted(MODEL_NAMES))}, or module:function"
    )
    p.add_argument("--width", type=float, help="width option of cifar-resnet / resnet9")
    p.add_argument(
        "--batch-size",
        type=int,
        help="the batch size of data the range test batches (default 64); a loader your "
        "--data returns keeps its own",
    )
    p.add_argument("--start-lr", type=float, default=1e-7)
    p.add_argument("--end-lr", type=float, default=10.0)
    p.add_argument("--num-steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--rule", choices=("minimum", "valley", "steepest"), default="minimum")
    p.add_argument("--policy", choices=("one_cycle", "cyclic"), default="one_cycle")
    p.add_argument("--no-val", action="store_true", help="skip the validation-accuracy variant")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/lr_find"), help="output folder")
    p.add_argument("--force", action="store_true", help="overwrite lr_find.* already in --out")
    # no --metric: the range test reads the loss (and a classifier's validation accuracy)
    add_task_flags(p, precision=False, evaluation=False, metrics=False)
    p.set_defaults(handler=run, parser=p)
    return p


def run(args: argparse.Namespace) -> int:
    refuse_torchrun("superconverge lr-find")
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    check_seed(args.seed)
    _check_sweep_flags(args)  # before the data load and the header line
    splits = resolve_data(args.data, args.data_dir, args.seed)
    own_data = isinstance(splits, UserData)  # Datasets or loader factories
    if own_data and ":" not in args.model:
        raise UsageError(f"--model module:function is needed with --data {args.data}")
    own_batch = _own_batch(splits.train) if own_data else None
    if own_batch is not None:
        if args.batch_size is not None and args.batch_size != own_batch[0]:
            raise UsageError(
                f"--batch-size {args.batch_size}: --data {args.data} gives a training loader "
                f"with {own_batch[1]}, which --batch-size cannot change; leave --batch-size "
                "out, or return the Dataset (batched at --batch-size) instead"
            )
        own = own_batch[0]
        batch_text = f"your loader's own batch size ({own})" if own else "your loader's batches"
    else:
        args.batch_size = args.batch_size or DEFAULT_BATCH
        batch_text = f"batch {args.batch_size}"
    samples = _samples(splits.train) if own_batch is None else None
    if samples is not None and args.batch_size > samples:  # a user's Dataset or tensors too
        # (an auditor's --batch-size 5000 on 400 samples: the header said batch 5000, and
        # every batch was the whole 400)
        raise UsageError(
            f"--batch-size must be <= the {samples} training samples of {args.data}, "
            f"got {args.batch_size}"
        )
    if not own_data and args.steps_per_epoch is not None:  # batched here: it was ignored
        from superconverge.data.sources import as_source

        as_source(splits.train, "train_data", steps_per_epoch=args.steps_per_epoch)  # refuses
    if own_data and args.steps_per_epoch is not None:  # a user's check: the same sweep either way
        raise UsageError(
            f"--steps-per-epoch {args.steps_per_epoch} changes nothing in a range test, which "
            "reads --num-steps batches of one continuing stream whatever its epochs: leave it out"
        )
    factory, _, _ = model_from_flag(args.model, args.width, splits)
    _claim(args.out, args.force)  # refusals before the folder is made or locked
    created = not args.out.exists()
    try:
        # one writer from the check of the folder to the last file, as for tune and fit: two
        # lr-finds into one --out each wrote over the other's results, and a tune started into
        # the folder during the sweep was let in (an auditor's finding)
        with FolderLock(args.out):
            _claim(args.out, args.force)  # again under the lock: a run may have started
            result = _sweep(args, splits, own_data, batch_text, factory)
            figure = result.plot()
            # the files before the summary: a reader that stops early (`| head -1`) then
            # loses nothing (the summary came first, and the finished sweep was not saved)
            write_atomically(
                args.out / "lr_find.png", lambda f: figure.savefig(f, dpi=120, format="png")
            )
            write_text_atomically(args.out / "lr_find.json", result.to_json())
    except BaseException as error:
        if created and not isinstance(error, FolderBusyError):  # a refusal leaves no folder
            remove_if_only_the_lock(args.out)
        raise
    print(result.summary())
    print(f"stopped: {result.stop_reason}")
    print(f"wrote {args.out / 'lr_find.png'} and {args.out / 'lr_find.json'}")
    return 0


def _claim(out: Path, force: bool) -> None:
    """`out` checked for the range test's files: refused while another run writes there,
    when it holds a tune or fit run (with or without --force: its lr_find.png is that run's),
    and when it holds lr_find.* without --force."""
    refuse_busy_folder(out)  # before any advice about what it holds
    training = [name for name in TRAINING_FILES if (out / name).exists()]
    if training:  # an auditor's lr-find --force replaced a tune run's own lr_find.png
        raise UsageError(
            f"--out {out} holds a tune or fit run ({', '.join(training)}), not a range test's "
            "results: --force replaces only an earlier lr-find's lr_find.png and lr_find.json; "
            "choose another --out"
        )
    check_outputs(out, OUTPUTS, force)


def _sweep(
    args: argparse.Namespace, splits: Any, own_data: bool, batch_text: str, factory: Any
) -> Any:
    """The header line, then the range test of a fresh model on the data (its result)."""
    import torch

    from superconverge.data import ArrayLoader
    from superconverge.pytorch.optimizers import build_optimizer

    torch.manual_seed(args.seed)
    model = factory()
    if args.device != "auto":
        model = model.to(args.device)
    optimizer = build_optimizer(args.optimizer, model.parameters())
    reading = data_options(args)
    train: Any = splits.train
    if not own_data:
        train = ArrayLoader(splits.train, args.batch_size, seed=args.seed)
    val = None
    if splits.val is not None and not args.no_val:
        val = (
            splits.val
            if own_data
            else ArrayLoader(splits.val, max(args.batch_size, 256), shuffle=False)
        )
    size = "" if own_data else f" ({len(splits.train)} training samples)"
    print(
        f"LR range test: {args.data}{size}, {args.model}, "
        f"{args.optimizer}, {batch_text}, {args.num_steps} steps "
        f"from {args.start_lr:g} to {args.end_lr:g}"
    )
    runner_log = logging.getLogger("superconverge.finder.runner")
    runner_log.addFilter(_printed_below)  # the summary is printed in full below: not twice
    try:
        return _run(args, model, train, val, optimizer, reading)
    finally:
        runner_log.removeFilter(_printed_below)


DEFAULT_BATCH = 64  # --batch-size for data the range test batches


def _own_batch(train: Any) -> tuple[int | None, str] | None:
    """A training loader the user's --data built: its batch size (None: unknown) and how to
    say it; None for data the range test batches (a Dataset, a loader factory)."""
    from superconverge.finder.runner import is_batches, loader_batch_size

    if not is_batches(train):
        return None
    size = loader_batch_size(train)
    return size, (f"batch size {size}" if size is not None else "batches of its own")


def _samples(train: Any) -> int | None:
    """The training samples of data the range test batches whose size is known (tensors, a
    map-style Dataset); None for the rest (a loader factory, a stream), and for data the
    library refuses, in its own words, when the sweep starts."""
    from superconverge.data.sources import as_source

    try:
        source = as_source(train, "train_data")
    except (TypeError, ValueError):
        return None
    return source.num_samples if source.kind in ("arrays", "dataset") else None


def _check_sweep_flags(args: argparse.Namespace) -> None:
    """The sweep's flags, named as flags (UsageError), before anything is loaded or printed."""
    from superconverge.finder.sweep import check_sweep_arguments

    try:
        check_sweep_arguments(
            args.start_lr, args.end_lr, args.num_steps, "exp", 0.98, 4.0, args.rule,
            args.policy, None,
        )  # fmt: skip
    except ValueError as error:
        text = str(error)
        for name in ("start_lr", "end_lr", "num_steps"):
            text = text.replace(name, "--" + name.replace("_", "-"))
        raise UsageError(text) from None
    if args.repeats < 1:
        raise UsageError(f"--repeats must be >= 1, got {args.repeats}")


def _printed_below(record: logging.LogRecord) -> bool:
    """The range test's one-line summary ("lr_find (SGD): ..."): the CLI prints it in full."""
    return not record.getMessage().startswith(("lr_find: ", "lr_find ("))


def _run(
    args: argparse.Namespace, model: Any, train: Any, val: Any, optimizer: Any, reading: Any
) -> Any:
    from superconverge import lr_find

    return lr_find(
        model,
        loss_from_flag(args.loss),
        train,
        batch_size=args.batch_size,
        device=None if args.device == "auto" else args.device,
        **reading,
        optimizer=optimizer,
        start_lr=args.start_lr,
        end_lr=args.end_lr,
        num_steps=args.num_steps,
        repeats=args.repeats,
        rule=args.rule,
        policy=args.policy,
        val_data=val,
        progress="auto",  # a bar in a terminal, else a line every 30 s; nothing under -q
    )
