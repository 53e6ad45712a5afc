"""The ``superconverge`` command. It parses flags, calls one library function and reports.

Bad flags or values end with one line on stderr naming the flag, and exit status 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from superconverge._files import write_atomically, write_text_atomically

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
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="sgd")  # OPTIMIZERS
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


def model_options_for(
    name: str, input_shape: tuple[int, ...], num_classes: int, width: float | None
) -> dict[str, Any]:
    """The `build` options that size a reference model for the data, or a UsageError naming
    the mismatch."""
    import math

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
    return options


def make_model_for(
    name: str, input_shape: tuple[int, ...], num_classes: int, width: float | None
) -> Any:
    """A reference model sized for the data, or a UsageError naming the mismatch."""
    from superconverge.models import build

    return build(name, **model_options_for(name, input_shape, num_classes, width))


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
    from superconverge.pytorch.optimizers import build_optimizer

    optimizer = build_optimizer(args.optimizer, model.parameters())
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
    write_atomically(args.out / "lr_find.png", lambda f: figure.savefig(f, dpi=120, format="png"))
    write_text_atomically(args.out / "lr_find.json", result.to_json())
    print(f"wrote {args.out / 'lr_find.png'} and {args.out / 'lr_find.json'}")
    return 0


def _entry_point(spec: str, flag: str) -> Any:
    """``module:function`` → the function, or a UsageError naming the flag."""
    import importlib

    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise UsageError(f"{flag} must be a name or module:function, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"{flag} {spec}: cannot import {module_name} ({error})") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise UsageError(f"{flag} {spec}: {module_name} has no function {function_name}")
    return function


def _resolve_data(args: argparse.Namespace) -> Any:
    """DataSplits from a data set name, or from a user's ``module:function`` returning them."""
    from superconverge.data import DATASETS, DataSplits, load

    if ":" in args.data:
        splits = _entry_point(args.data, "--data")()
        if not isinstance(splits, DataSplits):
            raise UsageError(f"--data {args.data} must return superconverge.data.DataSplits")
        return splits
    if args.data not in DATASETS or args.data == "csv":
        names = ", ".join(d for d in DATASETS if d != "csv")
        raise UsageError(f"--data must be one of {names} or module:function, got {args.data!r}")
    return load(args.data, args.data_dir, seed=args.seed)


class _ModelFactory:
    """A picklable ``() -> nn.Module`` (worker processes rebuild the model by name)."""

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name, self.options = name, options

    def __call__(self) -> Any:
        from superconverge.models import build

        return build(self.name, **self.options)


def _model_factory(args: argparse.Namespace, splits: Any) -> tuple[Any, str, dict[str, Any]]:
    from superconverge.tuning.decisions import default_model_for

    if args.model and ":" in args.model:
        return _entry_point(args.model, "--model"), args.model, {}
    num_classes = splits.num_classes or 1
    if args.model:
        name = args.model
        options = model_options_for(name, splits.input_shape, num_classes, args.width)
    else:
        name, options = default_model_for(splits.name, splits.input_shape)
        options["num_classes"] = num_classes
    return _ModelFactory(name, options), name, options


def _claim_out_dir(folder: Path, force: bool) -> None:
    if folder.exists() and any(folder.iterdir()) and not force:
        raise UsageError(
            f"--out {folder} already exists and is not empty; pass --force to overwrite"
        )


def _tune_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "tune",
        help="the whole recipe: batch size, LR bounds, weight decay, momentum, 1cycle, diagnosis",
        description="Choose batch size, LR bounds, weight decay and momentum by short runs, train "
        "with 1cycle, diagnose the validation curve and write runs/NAME/ with report.html.",
    )
    p.add_argument(
        "--data", default="digits", help="digits, mnist, fashion-mnist, cifar10, or module:function"
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help="folder with the data files (default $SUPERCONVERGE_DATA/<data>)",
    )
    p.add_argument("--model", help="mlp, mnist-cnn, cifar-resnet, resnet56, resnet9, or module:function "
                   "(default: chosen for the data)")  # fmt: skip
    p.add_argument("--width", type=float, help="width option of cifar-resnet / resnet9")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", default="auto", help="auto or an integer")
    p.add_argument("--weight-decays", type=float, nargs="+", default=[1e-3, 1e-4, 1e-5, 0.0])
    p.add_argument("--compare-momentum", action="store_true", help="also try constant momenta")
    p.add_argument("--workers", type=int, default=1, help="processes for the candidate runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="output folder (default runs/<data>-<model>)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.set_defaults(handler=_run_tune, parser=p)


def _run_tune(args: argparse.Namespace) -> int:
    import time

    if args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    batch_size: Any = args.batch_size
    if batch_size != "auto":
        try:
            batch_size = int(batch_size)
        except ValueError:
            raise UsageError(
                f"--batch-size must be 'auto' or an integer, got {args.batch_size!r}"
            ) from None
        if batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    splits = _resolve_data(args)
    model_fn, model_name, options = _model_factory(args, splits)
    out = args.out or Path("runs") / f"{splits.name}-{model_name.replace(':', '.')}"
    _claim_out_dir(out, args.force)
    if splits.val is None:
        raise UsageError("--data gives no validation split; tune needs one to compare candidates")
    from superconverge.data import Augment
    from superconverge.diagnostics.report import save_run, write_report
    from superconverge.tuning import tune

    augment = Augment() if splits.name == "cifar10" else None
    print(f"tune: {splits.name} ({len(splits.train)} train / {len(splits.val)} val"
          f"{f' / {len(splits.test)} test' if splits.test is not None else ''}), model {model_name}, "
          f"{args.epochs} epochs")  # fmt: skip
    start = time.perf_counter()
    plan = tune(
        model_fn, splits.train, splits.val, epochs=args.epochs, test_data=splits.test,
        batch_size=batch_size, weight_decays=tuple(args.weight_decays),
        compare_momentum=args.compare_momentum, workers=args.workers, seed=args.seed,
        out_dir=out, augment=augment, overwrite=True,
    )  # fmt: skip
    plan.data, plan.model, plan.model_options = splits.name, model_name, options
    history = plan.history  # type: ignore[attr-defined]
    save_run(out, plan, history, plan.range_tests)  # type: ignore[attr-defined]
    write_report(out, plan, history, plan.range_tests, f"{splits.name}, {model_name}")  # type: ignore[attr-defined]
    seconds = time.perf_counter() - start
    for step in plan.evidence:
        print(f"  {step['step']:<13} {step['seconds']:6.1f} s  {_short(step['decision'])}")
    test = plan.results.get("test", {})
    verdict = plan.results["verdict"]
    print(f"chosen: batch {plan.batch_size}, max_lr {plan.max_lr:.3g}, min_lr {plan.min_lr:.3g}, "
          f"weight decay {plan.weight_decay:g}, momentum {_short(plan.momentum)}")  # fmt: skip
    if test:
        print(
            f"test accuracy {test.get('accuracy', float('nan')):.4f}, test loss {test['loss']:.4f}"
        )
    print(f"verdict: {verdict['kind']}: {verdict['explanation']}; next: {verdict['next_step']}")
    print(f"total {seconds:.1f} s; report: {out / 'report.html'}")
    return 0


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items()
        )
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(f"{v:g}" for v in value) + ")"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _fit_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("fit", help="re-run a saved plan (runs/NAME/plan.json)")
    p.add_argument("--plan", type=Path, required=True, help="a plan.json written by tune")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--out", type=Path, help="output folder (default: <plan folder>/refit)")
    p.add_argument("--force", action="store_true")
    p.set_defaults(handler=_run_fit, parser=p)


def _run_fit(args: argparse.Namespace) -> int:
    from superconverge.tuning import TunePlan

    if not args.plan.is_file():
        raise UsageError(f"--plan {args.plan} not found")
    try:
        plan = TunePlan.from_json(args.plan.read_text())
    except (ValueError, TypeError) as error:
        raise UsageError(f"--plan {args.plan} is not a tune plan ({error})") from None
    if plan.data is None or plan.model is None:
        raise UsageError(
            f"--plan {args.plan} names no data/model to rebuild (it came from the Python API)"
        )
    out = args.out or args.plan.parent / "refit"
    _claim_out_dir(out, args.force)
    from superconverge.data import Augment, load

    splits = load(plan.data, args.data_dir, seed=plan.seed)
    factory = (
        _ModelFactory(plan.model, plan.model_options)
        if ":" not in plan.model
        else _entry_point(plan.model, "--model")
    )
    augment = Augment() if plan.data == "cifar10" else None
    history = plan.run(factory, splits.train, splits.val, test_data=splits.test, out_dir=out,
                       augment=augment, overwrite=True)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "history.json").write_text(history.to_json())
    (out / "plan.json").write_text(plan.to_json())
    test = plan.results.get("test", {})
    print(f"{history.status}: {len(history.epochs)} epochs; verdict {plan.results['verdict']['kind']}"
          + (f"; test accuracy {test['accuracy']:.4f}" if "accuracy" in test else ""))  # fmt: skip
    print(f"wrote {out}")
    return 0


def _report_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("report", help="re-render report.html / report.md of a tune run")
    p.add_argument("folder", type=Path, help="a runs/NAME folder written by tune")
    p.set_defaults(handler=_run_report, parser=p)


def _run_report(args: argparse.Namespace) -> int:
    from superconverge.diagnostics.report import load_run, write_report

    try:
        plan, history, range_tests = load_run(args.folder)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    title = f"{plan.data}, {plan.model}" if plan.data else ""
    written = write_report(args.folder, plan, history, range_tests, title)
    print(f"wrote {written['report.html']} and {written['report.md']}")
    return 0


def _reproduce_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("reproduce", help="re-run a published comparison (see --list)")
    p.add_argument("name", nargs="?", help="the experiment (see --list)")
    p.add_argument("--list", action="store_true", help="list the experiments")
    p.add_argument(
        "--quick", action="store_true", help="a reduced version that runs in about a minute"
    )
    p.add_argument("--seeds", type=int, help="seeds per contender (default 3; 1 with --quick)")
    p.add_argument(
        "--data-dir",
        type=Path,
        help="the data set's folder (default $SUPERCONVERGE_DATA/<data set>)",
    )
    p.add_argument("--out", type=Path, help="output folder (default runs/reproduce-NAME)")
    p.add_argument("--force", action="store_true")
    p.set_defaults(handler=_run_reproduce, parser=p)


def _run_reproduce(args: argparse.Namespace) -> int:
    import dataclasses
    import importlib

    from superconverge.experiments import EXPERIMENTS, MODULES

    if args.list or args.name is None:
        for name, text in EXPERIMENTS.items():
            print(f"{name:25} {text}")
        return 0 if args.list else EXIT_USAGE
    if args.name not in EXPERIMENTS:
        raise UsageError(f"NAME must be one of {', '.join(EXPERIMENTS)}, got {args.name!r}")
    experiment = importlib.import_module(MODULES[args.name])
    settings = experiment.QUICK if args.quick else experiment.FULL
    if not args.quick and hasattr(experiment, "FULL_CUDA"):
        import torch

        if torch.cuda.is_available():  # the published network size where there is a GPU
            settings = experiment.FULL_CUDA
    if args.seeds is not None:
        if not hasattr(settings, "seeds"):
            raise UsageError(f"--seeds is not an option of {args.name}: it runs one seed")
        if args.seeds < 1:
            raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
        settings = dataclasses.replace(settings, seeds=args.seeds)
    out = args.out or Path("runs") / f"reproduce-{args.name}"
    _claim_out_dir(out, args.force)
    experiment.run(out, settings, args.data_dir)
    print((out / "results.md").read_text())
    print(f"wrote {out / 'results.md'}, {out / 'results.json'} and {out / 'accuracy.png'}")
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
    write_atomically(args.out, lambda f: figure.savefig(f, dpi=120, format=args.out.suffix[1:]))
    print(f"wrote {args.out}")
    return 0


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
    _tune_parser(subparsers)
    _fit_parser(subparsers)
    _report_parser(subparsers)
    _reproduce_parser(subparsers)
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
