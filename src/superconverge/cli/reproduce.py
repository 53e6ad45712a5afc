"""``superconverge reproduce``: re-run a published comparison."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

from superconverge._files import FolderBusyError, FolderLock
from superconverge._run_folder import (
    TRAINING_FILES,
    discard,
    move_aside,
    move_back,
    note_replaced,
    replaced_run,
    run_files,
)
from superconverge.cli._common import (
    UsageError,
    claim_out_dir,
    refuse_busy_folder,
    remove_if_only_the_lock,
)


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
        "--quick", action="store_true", help="a reduced version: a minute or two on 2 CPU cores"
    )
    p.add_argument(
        "--seeds",
        type=int,
        help="seeds per contender, for mnist-clr and cifar10-data-size (default: 3; with --quick "
        "1 for mnist-clr, 2 for cifar10-data-size)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help="the data set's folder (default: $SUPERCONVERGE_DATA/<data set>)",
    )
    p.add_argument("--out", type=Path, help="output folder (default: runs/reproduce-NAME)")
    p.add_argument(
        "--force",
        action="store_true",
        help="start over: an earlier reproduction's results in --out are moved into "
        "--out/previous-<time>/ first and deleted once the new run (or the --resume of it) has "
        "finished; a folder holding a tune or fit run is refused",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run in --out: the runs its results.json records under "
        "the same settings (--quick, --seeds) are kept, the rest run",
    )
    p.set_defaults(handler=run, parser=p)
    return p


RESULTS = "results.json"


def _claim(out: Path, args: argparse.Namespace, experiment: Any, settings: Any) -> int | None:
    """`out` checked for the run: refused when it holds an earlier run and neither --force
    nor --resume is given; with --resume checked to hold runs of these settings (how many it
    holds, returned)."""
    if args.force and args.resume:
        raise UsageError("--force and --resume exclude each other: start over, or continue")
    if args.resume:
        if not (out / RESULTS).is_file():
            raise UsageError(f"--resume: {out} holds no {RESULTS} to continue; leave --resume out")
        damage = _damage(out / RESULTS)
        if damage is None:
            try:
                kept = experiment.recorded_runs(out, settings)
            except (TypeError, ValueError, AttributeError, KeyError, IndexError) as error:
                damage = f"{type(error).__name__}: {error}"
        if damage is not None:  # an auditor's damaged file: a bare JSONDecodeError, exit 1
            raise UsageError(
                f"--resume: {out / RESULTS} cannot be read as a reproduction's results "
                f"({damage}); --force moves it aside and starts over"
            )
        if kept == 0:  # settings changed: resuming would start over, replacing what is there
            raise UsageError(
                f"--resume: {out / RESULTS} records no run of {args.name} with these settings "
                "(--quick and --seeds as before?); pass those, or --force to start over"
            )
        claim_out_dir(out, False, resume=True)
        return int(kept)
    training = [p.name for p in run_files(out) if p.name in TRAINING_FILES]
    if training and not (out / RESULTS).is_file():  # with or without --force (a reviewer's
        # check: without it, "pass --force", then with it this refusal)
        # an auditor's reproduce --force over a tune run deleted its model and checkpoints
        # without a word: --force replaces an earlier reproduction, not another kind of run
        raise UsageError(
            f"--out {out} holds a tune or fit run ({', '.join(training)}), not a reproduction: "
            "--force replaces only an earlier reproduction's results; choose another --out"
        )
    if not args.force and (out / RESULTS).is_file():
        refuse_busy_folder(out, "--out")
        raise UsageError(
            f"--out {out} holds a reproduction ({RESULTS}); pass --resume to continue it, "
            "--force to start over, or choose another --out"
        )
    claim_out_dir(out, args.force)
    return None


def _damage(path: Path) -> str | None:
    """What keeps `path` from being a reproduction's results.json (JSON, an object of
    ``settings`` and ``results``, numbers where runs record them), or None."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"not JSON: {error}"
    if not isinstance(saved, dict) or not all(
        isinstance(saved.get(key), dict) for key in ("settings", "results")
    ):
        return "not an object of settings and results"
    wrong = [
        f"{key} {value!r}" for key, value in _leaves(saved["results"])
        if key in NUMBERS and value is not None  # null: none found (mnist-clr's max_lr)
        and (isinstance(value, bool) or not isinstance(value, (int, float)))
    ]  # fmt: skip
    return f"a run records {wrong[0]}, not a number" if wrong else None


# what a run of any experiment records as a number
NUMBERS = ("accuracy", "seconds", "max_lr", "final_val_loss", "test_accuracy")


def _leaves(value: Any) -> list[tuple[str, Any]]:
    """Every (key, value) pair of the objects nested in `value`."""
    if isinstance(value, dict):
        found = list(value.items())
        for item in value.values():
            found += _leaves(item)
        return found
    if isinstance(value, list):
        return [pair for item in value for pair in _leaves(item)]
    return []


def run(args: argparse.Namespace) -> int:
    from superconverge.experiments import EXPERIMENTS, MODULES

    if args.list:
        if args.name is not None:  # it was ignored, and the experiment not run, without a word
            raise UsageError(
                f"--list lists the experiments and runs none: leave out {args.name!r}, or "
                "--list to run it"
            )
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
    _claim(out, args, experiment, settings)  # refusals before the folder is made or locked
    created = not out.exists()
    try:
        # one writer, as for tune and fit: two reproductions into one --out each wrote
        # results.json over the other's; checked again under the lock (one may have started)
        with FolderLock(out):
            kept = _claim(out, args, experiment, settings)
            if kept is not None:
                print(
                    f"resuming: {kept} run{'s' * (kept != 1)} recorded in {out / RESULTS} are kept"
                )
            # an interrupted --force's earlier results stay in previous-*/ until a --resume
            # finishes (they were kept for good, and the interrupt line did not name them)
            aside = move_aside(out) if args.force else replaced_run(out) if args.resume else None
            if args.force:
                note_replaced(out, aside)
                if aside is not None:
                    print(
                        f"reproduce: moved the previous results to {aside}; they are deleted "
                        "once this run finishes"
                    )
            try:
                _run(args, experiment, settings, out, aside)
            except BaseException:
                if aside is not None and not (out / RESULTS).is_file():  # nothing ran: the
                    # reproduction it was to replace comes back (it stayed in previous-*/)
                    move_back(out, aside)
                    note_replaced(out, None)
                    print(f"reproduce: put the previous results back from {aside}")
                raise
    except BaseException as error:
        if created and not isinstance(error, FolderBusyError):  # a refusal leaves no folder
            remove_if_only_the_lock(out)
        raise
    if aside is not None:
        discard(aside)  # the new run has finished: the one it replaced goes
        note_replaced(out, None)
        print(f"reproduce: deleted the previous results {aside}, replaced by this finished run")
    print((out / "results.md").read_text())
    print(f"wrote {out / 'results.md'}, {out / 'results.json'} and {out / 'accuracy.png'}")
    return 0


def _run(
    args: argparse.Namespace, experiment: Any, settings: Any, out: Path, aside: Path | None
) -> None:
    """The experiment, its interrupt and a missing data file said in the CLI's words; `aside`:
    where the results it replaces wait (a --force's)."""
    try:
        experiment.run(out, settings, args.data_dir)
    except KeyboardInterrupt:  # what ran is in results.json: say how to go on from it
        if not (out / RESULTS).is_file():
            raise
        earlier = (
            f"; the previous results stay in {aside} until it finishes" if aside is not None else ""
        )
        raise KeyboardInterrupt(
            f"interrupted: the runs that finished are in {out / RESULTS}; continue with "
            f"`superconverge reproduce {args.name} --resume --out {out}` and the same flags"
            f"{earlier}"
        ) from None
    except FileNotFoundError as error:
        if error.errno is not None:  # an OS error (a file that went away mid-run): a failure
            raise
        # the loader's message (no errno) for a data file that is not where it looked, before
        # anything ran: the folder is the fix, as tune, lr-find and fit say it
        raise UsageError(f"--data-dir: {error}") from None
