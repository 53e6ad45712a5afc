"""The ``superconverge`` command. It parses flags, calls one library function and reports.

Bad flags or values end with one line on stderr naming the flag, and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

EXIT_USAGE = 2
PLOT_FORMATS = (".png", ".svg", ".pdf")


class UsageError(Exception):
    """A bad flag or value: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints the whole usage block by default)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _flag_message(error: Exception, parser: argparse.ArgumentParser) -> str:
    """Turn a library message that starts with a parameter name into one naming the flag."""
    text = str(error)
    match = re.match(r"([a-z][a-z0-9_]*)", text)
    if match:
        flag = "--" + match.group(1).replace("_", "-")
        if flag in parser._option_string_actions:  # noqa: SLF001 - argparse keeps flags here
            return flag + text[match.end() :]
    return text


def _schedule_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "schedule",
        help="print and plot an LR/momentum schedule",
        description="Print the start, peak and end of a schedule and plot LR and momentum.",
    )
    p.add_argument(
        "policy",
        choices=("one-cycle", "smith", "fastai", "cyclic", "piecewise"),
        help="one-cycle: torch OneCycleLR values; smith: the paper's 1cycle with annihilation; "
        "fastai: fit_one_cycle's curve; cyclic: CLR; piecewise: step decay",
    )
    p.add_argument("--total-steps", type=int, required=True, help="optimizer updates to show")
    p.add_argument("--max-lr", type=float, help="peak LR (all policies but piecewise)")
    p.add_argument("--min-lr", type=float, help="LR at the start of the cycle")
    p.add_argument("--final-lr", type=float, help="LR at the end (1cycle policies)")
    p.add_argument(
        "--warmup-fraction", type=float, help="share of steps rising (one-cycle, fastai)"
    )
    p.add_argument(
        "--shape", choices=("cosine", "linear"), default="cosine", help="one-cycle shape"
    )
    p.add_argument("--three-phase", action="store_true", help="torch's three-phase one-cycle")
    p.add_argument(
        "--annihilation-fraction", type=float, help="share of steps annihilating (smith)"
    )
    p.add_argument("--momentum", type=float, nargs=2, metavar=("HIGH", "LOW"), default=(0.95, 0.85))
    p.add_argument("--no-momentum", action="store_true", help="leave momentum alone")
    p.add_argument("--base-lr", type=float, help="lower LR bound (cyclic)")
    p.add_argument("--step-size", type=int, help="half a cycle in steps (cyclic)")
    p.add_argument(
        "--mode", choices=("triangular", "triangular2", "exp_range"), default="triangular"
    )
    p.add_argument("--gamma", type=float, default=1.0, help="exp_range decay per step (cyclic)")
    p.add_argument("--values", type=float, nargs="+", help="LRs of each piece (piecewise)")
    p.add_argument("--boundaries", type=int, nargs="*", default=[], help="steps where LR changes")
    p.add_argument(
        "--out", type=Path, default=Path("schedule.png"), help="plot file (.png/.svg/.pdf)"
    )
    p.set_defaults(handler=_run_schedule, parser=p)


IMAGE_MODELS = {"mnist-cnn": (1, 28, 28), "cifar-resnet": (3, 32, 32), "resnet56": (3, 32, 32),
                "resnet9": (3, 32, 32)}  # fmt: skip


def _lr_find_parser(subparsers: Any) -> None:
    from superconverge.data.datasets import DATASETS
    from superconverge.models.zoo import MODELS

    p = subparsers.add_parser(
        "lr-find",
        help="run the LR range test and suggest max_lr / min_lr",
        description="Run the LR range test on a data set and model, print the suggested bounds "
        "and why, and write lr_find.png and lr_find.json into --out.",
    )
    p.add_argument("--data", choices=[d for d in DATASETS if d != "csv"], default="digits")
    p.add_argument(
        "--data-dir",
        type=Path,
        help="folder with the data files (default $SUPERCONVERGE_DATA/<data>)",
    )
    p.add_argument("--model", choices=sorted(MODELS), default="mlp")
    p.add_argument("--width", type=float, help="width option of cifar-resnet / resnet9")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="sgd")
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
    p.set_defaults(handler=_run_lr_find, parser=p)


def make_model_for(
    name: str, input_shape: tuple[int, ...], num_classes: int, width: float | None
) -> Any:
    """A reference model sized for the data, or a UsageError naming the mismatch."""
    import math

    from superconverge.models import build

    needed = IMAGE_MODELS.get(name)
    if needed is not None and tuple(input_shape) != needed:
        shape = "x".join(map(str, input_shape))
        raise UsageError(
            f"--model {name} needs {'x'.join(map(str, needed))} inputs; the data has {shape} "
            "(use --model mlp, or data of that shape)"
        )
    options: dict[str, Any] = {"num_classes": num_classes}
    if name == "mlp":
        options["in_features"] = math.prod(input_shape)
    if width is not None:
        if name not in ("cifar-resnet", "resnet9"):
            raise UsageError(f"--width applies to cifar-resnet and resnet9, not {name}")
        options["width"] = width
    return build(name, **options)


def make_optimizer(name: str, parameters: Any) -> Any:
    import torch

    if name == "sgd":
        return torch.optim.SGD(parameters, lr=0.01, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(parameters, lr=1e-3)
    return torch.optim.AdamW(parameters, lr=1e-3)


def _check_outputs(folder: Path, names: Sequence[str], force: bool) -> None:
    existing = [name for name in names if (folder / name).exists()]
    if existing and not force:
        raise UsageError(
            f"--out {folder} already holds {', '.join(existing)}; pass --force to overwrite "
            "or choose another --out"
        )


def _run_lr_find(args: argparse.Namespace) -> int:
    _check_outputs(args.out, ("lr_find.json", "lr_find.png"), args.force)
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    import torch

    from superconverge import lr_find
    from superconverge.data import ArrayLoader, load

    splits = load(args.data, args.data_dir, seed=args.seed)
    torch.manual_seed(args.seed)
    model = make_model_for(args.model, splits.input_shape, splits.num_classes or 1, args.width)
    optimizer = make_optimizer(args.optimizer, model.parameters())
    train = ArrayLoader(splits.train, args.batch_size, seed=args.seed)
    val = None
    if splits.val is not None and not args.no_val:
        val = ArrayLoader(splits.val, max(args.batch_size, 256), shuffle=False)
    print(f"LR range test: {args.data} ({len(splits.train)} training samples), {args.model}, "
          f"{args.optimizer}, batch {args.batch_size}, {args.num_steps} steps "
          f"from {args.start_lr:g} to {args.end_lr:g}")  # fmt: skip
    result = lr_find(
        model, torch.nn.functional.cross_entropy, train, optimizer=optimizer,
        start_lr=args.start_lr, end_lr=args.end_lr, num_steps=args.num_steps,
        repeats=args.repeats, rule=args.rule, policy=args.policy, val_data=val,
    )  # fmt: skip
    print(result.summary())
    print(f"stopped: {result.stop_reason}")
    figure = result.plot()
    write_atomically(
        args.out / "lr_find.png", lambda path: figure.savefig(path, dpi=120, format="png")
    )
    write_atomically(args.out / "lr_find.json", lambda path: path.write_text(result.to_json()))
    print(f"wrote {args.out / 'lr_find.png'} and {args.out / 'lr_find.json'}")
    return 0


def _require(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        if getattr(args, name) is None:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} is required for the {args.policy} policy")


def build_plan(args: argparse.Namespace) -> Any:
    """The `Plan` the ``schedule`` flags describe."""
    from superconverge import schedules

    momentum = None if args.no_momentum else tuple(args.momentum)
    optional = {"min_lr": args.min_lr, "final_lr": args.final_lr}
    optional = {key: value for key, value in optional.items() if value is not None}
    if args.policy == "piecewise":
        _require(args, "values")
        return schedules.piecewise_constant(
            args.values, args.boundaries, total_steps=args.total_steps
        )
    _require(args, "max_lr")
    if args.policy == "cyclic":
        _require(args, "base_lr", "step_size")
        return schedules.cyclic(
            args.base_lr,
            args.max_lr,
            args.step_size,
            mode=args.mode,
            gamma=args.gamma,
            momentum=momentum,
            total_steps=args.total_steps,
        )
    if args.policy == "smith":
        if args.annihilation_fraction is not None:
            optional["annihilation_fraction"] = args.annihilation_fraction
        return schedules.smith_one_cycle(
            args.total_steps, args.max_lr, momentum=momentum, **optional
        )
    if args.warmup_fraction is not None:
        optional["warmup_fraction"] = args.warmup_fraction
    if args.policy == "fastai":
        return schedules.fastai_one_cycle(
            args.total_steps, args.max_lr, momentum=momentum, **optional
        )
    return schedules.one_cycle(
        args.total_steps,
        args.max_lr,
        shape=args.shape,
        three_phase=args.three_phase,
        momentum=momentum,
        **optional,
    )


def _summary_rows(name: str, values: Sequence[float], extreme: str) -> list[tuple[str, float, int]]:
    pick = max if extreme == "peak" else min
    where = pick(range(len(values)), key=values.__getitem__)
    return [
        (f"{name} start", values[0], 0),
        (f"{name} {extreme}", values[where], where),
        (f"{name} end", values[-1], len(values) - 1),
    ]


def _run_schedule(args: argparse.Namespace) -> int:
    if args.out.suffix.lower() not in PLOT_FORMATS:
        raise UsageError(
            f"--out must end in one of {', '.join(PLOT_FORMATS)}, got {str(args.out)!r}"
        )
    plan = build_plan(args)
    lrs, moms = plan.values(args.total_steps)
    rows = _summary_rows("lr", lrs, "peak")
    if moms is not None:
        rows += _summary_rows("momentum", moms, "low")
    print(f"{plan.policy} schedule, {args.total_steps} steps")
    print(f"{'':16}{'value':>12}{'step':>8}")
    for label, value, step in rows:
        print(f"{label:16}{value:>12.4g}{step:>8d}")

    from superconverge.diagnostics.plots import plot_plan

    figure = plot_plan(plan, args.total_steps)
    write_atomically(
        args.out, lambda path: figure.savefig(path, dpi=120, format=args.out.suffix[1:])
    )
    print(f"wrote {args.out}")
    return 0


def write_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    """Write through a temporary file in the same folder, then rename: never a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="superconverge",
        description="Leslie Smith's disciplined approach to hyper-parameters: LR range test, "
        "cyclical LRs, 1cycle.",
    )
    from superconverge import __version__

    parser.add_argument("--version", action="version", version=f"superconverge {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _schedule_parser(subparsers)
    _lr_find_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except UsageError as error:
        message = str(error)
    except (ValueError, FileNotFoundError) as error:  # library messages start with the name
        message = _flag_message(error, args.parser)
    print(f"{args.parser.prog}: error: {message}", file=sys.stderr)
    return EXIT_USAGE
