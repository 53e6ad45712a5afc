"""``superconverge reproduce``: re-run a published comparison."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from pathlib import Path
from typing import Any

from superconverge.cli._common import UsageError, claim_out_dir


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "reproduce",
        help="re-run a published comparison (see --list)",
        description="Re-run a published comparison and write results.md, results.json and "
        "accuracy.png into --out.",
    )
    p.add_argument("name", nargs="?", help="the experiment (see --list)")
    p.add_argument("--list", action="store_true", help="list the experiments")
    p.add_argument(
        "--quick", action="store_true", help="a reduced version that runs in about a minute"
    )
    p.add_argument("--seeds", type=int, help="seeds per contender (default: 3; 1 with --quick)")
    p.add_argument(
        "--data-dir",
        type=Path,
        help="the data set's folder (default: $SUPERCONVERGE_DATA/<data set>)",
    )
    p.add_argument("--out", type=Path, help="output folder (default: runs/reproduce-NAME)")
    p.add_argument(
        "--force", action="store_true", help="replace what an earlier run wrote into --out"
    )
    p.set_defaults(handler=run, parser=p)
    return p


def run(args: argparse.Namespace) -> int:
    from superconverge.experiments import EXPERIMENTS, MODULES

    if args.list:
        for name, text in EXPERIMENTS.items():
            print(f"{name:25} {text}")
        return 0
    if args.name is None:
        raise UsageError(
            f"NAME is missing: name the experiment, one of {', '.join(EXPERIMENTS)} (--list "
            "says what each runs)"
        )
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
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise UsageError(f"--data-dir {args.data_dir} is not a folder")
    out = args.out or Path("runs") / f"reproduce-{args.name}"
    claim_out_dir(out, args.force)
    try:
        experiment.run(out, settings, args.data_dir)
    except FileNotFoundError as error:
        if error.errno is not None:  # an OS error (a file that went away mid-run): a failure
            raise
        # the loader's message (no errno) for a data file that is not where it looked, before
        # anything ran: the folder is the fix, as tune, lr-find and fit say it
        raise UsageError(f"--data-dir: {error}") from None
    print((out / "results.md").read_text())
    print(f"wrote {out / 'results.md'}, {out / 'results.json'} and {out / 'accuracy.png'}")
    return 0
