"""``superconverge schedule``: print the start, peak and end of a schedule and plot it."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from superconverge._files import write_atomically
from superconverge.cli._common import UsageError, check_output_file

PLOT_FORMATS = (".png", ".svg", ".pdf")
# the table and the plot evaluate every step: 1e6 steps take ~100 MB and a few seconds
MAX_STEPS = 1_000_000


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
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
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.set_defaults(handler=run, parser=p)
    return p


def _require(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        if getattr(args, name) is None:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} is required for the {args.policy} policy")


# the policies each flag changes (a flag given to another policy would change nothing)
ONE_CYCLES = ("one-cycle", "smith", "fastai")
APPLIES = {
    "max_lr": (*ONE_CYCLES, "cyclic"),
    "min_lr": ONE_CYCLES,
    "final_lr": ONE_CYCLES,
    "warmup_fraction": ("one-cycle", "fastai"),
    "shape": ("one-cycle",),
    "three_phase": ("one-cycle",),
    "annihilation_fraction": ("smith",),
    "momentum": (*ONE_CYCLES, "cyclic"),
    "no_momentum": (*ONE_CYCLES, "cyclic"),
    "base_lr": ("cyclic",),
    "step_size": ("cyclic",),
    "mode": ("cyclic",),
    "gamma": ("cyclic",),
    "values": ("piecewise",),
    "boundaries": ("piecewise",),
}


def _check_flags(args: argparse.Namespace) -> None:
    """Flags that would change nothing are refused, not ignored: a flag of another policy,
    --gamma of a triangular mode, --momentum with --no-momentum, a piecewise boundary at or past
    the last step."""
    parser = args.parser
    given = [name for name in APPLIES if getattr(args, name) != parser.get_default(name)]
    for name in given:
        if args.policy not in APPLIES[name]:
            flag = "--" + name.replace("_", "-")
            raise UsageError(
                f"{flag} applies to the {', '.join(APPLIES[name])} "
                f"polic{'ies' if len(APPLIES[name]) > 1 else 'y'}, not {args.policy}: leave it out"
            )
    if "gamma" in given and args.mode != "exp_range":  # triangular modes have no decay
        raise UsageError(f"--gamma applies to --mode exp_range, not {args.mode}: leave it out")
    if args.no_momentum and "momentum" in given:
        raise UsageError("--momentum has no effect with --no-momentum: give one of them")
    late = [b for b in args.boundaries if b >= args.total_steps]
    if args.policy == "piecewise" and late:
        raise UsageError(
            f"--boundaries {' '.join(map(str, late))} at or past --total-steps "
            f"{args.total_steps}: those pieces would never be reached"
        )


def build_plan(args: argparse.Namespace) -> Any:
    """The `Plan` the ``schedule`` flags describe."""
    from superconverge import schedules

    _check_flags(args)
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


def run(args: argparse.Namespace) -> int:
    if args.out.suffix.lower() not in PLOT_FORMATS:
        raise UsageError(
            f"--out must end in one of {', '.join(PLOT_FORMATS)}, got {str(args.out)!r}"
        )
    if args.total_steps > MAX_STEPS:
        raise UsageError(
            f"--total-steps must be <= {MAX_STEPS} (every step is evaluated and drawn), "
            f"got {args.total_steps}"
        )
    plan = build_plan(args)
    check_output_file(args.out, args.force)
    lrs, moms = plan.values(args.total_steps)
    rows = _summary_rows("lr", lrs, "peak")
    if moms is not None:
        rows += _summary_rows("momentum", moms, "low")
    from superconverge.diagnostics.plots import plot_plan

    # the file first: a reader of the table that stops early (`| head -1`) stopped the command
    # before it wrote the plot, and the line then said "the files written are complete"
    figure = plot_plan(plan, args.total_steps)
    write_atomically(args.out, lambda f: figure.savefig(f, dpi=120, format=args.out.suffix[1:]))
    print(f"{plan.policy} schedule, {args.total_steps} steps")
    print(f"{'':16}{'value':>12}{'step':>8}")
    for label, value, step in rows:
        print(f"{label:16}{value:>12.4g}{step:>8d}")
    print(f"wrote {args.out}")
    return 0
