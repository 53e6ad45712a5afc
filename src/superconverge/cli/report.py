"""``superconverge report``: re-render report.html / report.md of a tune run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from superconverge.cli._common import UsageError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "report", help="re-render report.html / report.md of a tune run"
    )
    p.add_argument("folder", type=Path, help="a runs/NAME folder written by tune")
    p.set_defaults(handler=run, parser=p)
    return p


def run(args: argparse.Namespace) -> int:
    from superconverge.diagnostics.report import load_run, write_report

    try:
        plan, history, range_tests = load_run(args.folder)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    title = f"{plan.data}, {plan.model}" if plan.data else ""
    written = write_report(args.folder, plan, history, range_tests, title)
    print(f"wrote {written['report.html']} and {written['report.md']}")
    return 0
