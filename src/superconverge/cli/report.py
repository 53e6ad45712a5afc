"""``superconverge report``: re-render report.html / report.md of a tune run.

The report and its plots are derived from plan.json, history.json and range_tests.json, which
this command only reads; re-rendering them is what it is for, so it needs no --force.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from superconverge.cli._common import UsageError, read_json, refuse_busy_folder, unfinished_tune

REQUIRED_FILES = ("plan.json", "history.json")  # a fit --plan folder has no range_tests.json
RUN_FILES = (*REQUIRED_FILES, "range_tests.json")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="re-render report.html / report.md of a tune run",
        description="Re-render report.html, report.md and the plots of a tune run from its "
        "plan.json, history.json and range_tests.json (which it does not change).",
    )
    p.add_argument("folder", type=Path, help="a runs/NAME folder written by tune")
    p.add_argument(
        "--static",
        action="store_true",
        help="PNG plots only, also where plotly is installed (a report.html of a few hundred kB "
        "instead of about 5 MB with the interactive plots)",
    )
    p.set_defaults(handler=run, parser=p)
    return p


def _unfinished_fit(folder: Path) -> str | None:
    """How far a `fit --plan` stopped before its end got, and how to go on; None where `folder`
    holds no such fit (it writes plan.json last, after its checkpoint and history)."""
    import json

    if (folder / "plan.json").is_file() or not (folder / "checkpoint.pt").is_file():
        return None
    try:
        done = len(json.loads((folder / "history.json").read_text())["epochs"])
    except (OSError, ValueError, KeyError, TypeError):
        done = None
    saved = "its checkpoint.pt" if done is None else f"{done} epoch{'s' * (done != 1)} saved"
    return (
        f"{saved}; continue it with superconverge fit --plan PLAN --out {folder} --resume, with "
        "the plan and flags it was started with, then render its report with superconverge "
        f"report {folder}"
    )


def run(args: argparse.Namespace) -> int:
    from superconverge.diagnostics.report import render_report

    folder: Path = args.folder
    if not folder.is_dir():
        raise UsageError(
            f"FOLDER {folder} is not a folder; name a runs/NAME folder written by tune"
        )
    # a running tune was called unfinished ("continue it with tune --resume"), a running fit
    # "not a run folder"
    refuse_busy_folder(  # a tune writes its report as it ends; a fit --plan writes none
        folder,
        "FOLDER",
        f"run superconverge report {folder} once it has ended, if no report is there",
    )
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    unfinished = unfinished_tune(folder) if missing else None
    if unfinished is not None:  # an interrupted tune: no report yet, and how to go on
        raise UsageError(f"FOLDER {folder} holds a tune that did not finish ({unfinished})")
    stopped = _unfinished_fit(folder) if missing else None
    if stopped is not None:  # was "not a tune or fit run folder: plan.json missing"
        raise UsageError(f"FOLDER {folder} holds a fit that did not finish ({stopped})")
    if missing:
        raise UsageError(
            f"FOLDER {folder} is not a tune or fit run folder: {', '.join(missing)} missing"
        )
    for name in RUN_FILES:  # names the file that is not JSON, which load_run would not
        if (folder / name).is_file():
            read_json(folder / name, "FOLDER")
    interactive = False if args.static else None  # None: interactive where plotly is installed
    try:
        written = render_report(folder, interactive=interactive)
    except ValueError as error:  # names the file and what is wrong in it
        raise UsageError(
            f"FOLDER {folder} holds a run that cannot be read ({error}); re-run tune or restore "
            "its files"
        ) from None
    print(f"wrote {written['report.html']} and {written['report.md']}")
    return 0
