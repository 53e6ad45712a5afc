"""``superconverge fit``: re-run a plan saved by ``tune`` (runs/NAME/plan.json)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from superconverge._files import write_text_atomically
from superconverge.cli._common import UsageError, claim_out_dir, entry_point


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "fit", help="re-run a saved plan (runs/NAME/plan.json)"
    )
    p.add_argument("--plan", type=Path, required=True, help="a plan.json written by tune")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--out", type=Path, help="output folder (default: <plan folder>/refit)")
    p.add_argument("--force", action="store_true")
    p.set_defaults(handler=run, parser=p)
    return p


def run(args: argparse.Namespace) -> int:
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
    claim_out_dir(out, args.force)
    from superconverge.data import default_augment, load
    from superconverge.models import ModelFactory

    splits = load(plan.data, args.data_dir, seed=plan.seed)
    factory = (
        ModelFactory(plan.model, plan.model_options)
        if ":" not in plan.model
        else entry_point(plan.model, "--model")
    )
    history = plan.run(
        factory,
        splits.train,
        splits.val,
        test_data=splits.test,
        out_dir=out,
        augment=default_augment(plan.data),
        overwrite=True,
    )
    write_text_atomically(out / "history.json", history.to_json())
    write_text_atomically(out / "plan.json", plan.to_json())
    test = plan.results.get("test", {})
    accuracy = f"; test accuracy {test['accuracy']:.4f}" if "accuracy" in test else ""
    epochs = len(history.epochs)
    print(f"{history.status}: {epochs} epochs; verdict {plan.results['verdict']['kind']}{accuracy}")
    print(f"wrote {out}")
    return 0
