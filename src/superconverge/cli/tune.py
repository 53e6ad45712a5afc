"""``superconverge tune``: the whole recipe on a data set, written into runs/NAME/."""

from __future__ import annotations

import argparse
import math
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from superconverge._display import averaged_weights_line, decision, plural, without_passwords
from superconverge._files import NO_ROOM
from superconverge.cli._common import (
    EXIT_FAILURE,
    MODEL_NAMES,
    RunFailure,
    UsageError,
    _usable_folder,
    add_data_flags,
    check_seed,
    claim_out_dir,
    explain,
    flag_message,
    interrupts_ignored,
    make_room,
    model_from_flag,
    model_note,
    named_code,
    remove_if_only_the_lock,
    resolve_data,
    resume_command,
    scores_line,
    stdout_closed,
)
from superconverge.cli._data_flags import (
    UserData,
    data_options,
    evaluation_options,
    loss_from_flag,
    metrics_from_flags,
    saved_flags,
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "tune",
        help="the whole recipe: batch size, max_lr searched in the 1cycle run, diagnosis",
        description="Choose the batch size, train with 1cycle whose rise searches max_lr (the "
        "search's samples lengthen the run; --lr-search short-runs: LR bounds, weight decay and "
        "momentum by short runs first), keep the mean of its weights where validation says so, "
        "diagnose the validation curve and write runs/NAME/ with report.html.",
    )
    add_data_flags(p)
    p.add_argument(
        "--model",
        help=f"{', '.join(MODEL_NAMES)}, or module:function (default: chosen for the data)",
    )
    p.add_argument("--width", type=float, help="width option of cifar-resnet / resnet9")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", default="auto", help="auto or an integer")
    p.add_argument(
        "--weight-decays",
        type=_decay,
        nargs="+",
        help="candidates, the first the anchor the LR is chosen at, all compared (default: 1e-4 "
        "1e-3 1e-5 0 for sgd, 0.1 0.03 0.01 0 for adamw/nadamw, compared only where the short "
        "run may overfit)",
    )
    p.add_argument(
        "--budget",
        type=_budget,
        default=1.0,
        help="what the search may spend, in final runs' worth of training samples (default 1: "
        "the whole recipe costs at most twice the final run); with --lr-search in-run, "
        "whole epochs of it lengthen the final run",
    )
    p.add_argument("--compare-momentum", action="store_true", help="also try constant momenta")
    p.add_argument(
        "--lr-search",
        choices=["in-run", "short-runs"],
        default="in-run",
        help="in-run (default): the final run's rise is the LR range test, and the budget trains "
        "it longer; short-runs: range tests and short runs before it, SGD against AdamW (also "
        "what --weight-decays with several values and --compare-momentum run)",
    )
    p.add_argument(
        "--search-divisor",
        type=_finite("a number > 0", lambda number: number > 0),
        metavar="D",
        help="with --lr-search in-run: max_lr = the rise's lowest-loss LR / D where the loss "
        "turned up, / 2D where it went flat (default 3: / 6 on a plateau)",
    )
    p.add_argument(
        "--weight-average",
        type=_fraction_or_none,
        default=_DEFAULT,
        metavar="FRACTION",
        help="average the final run's weights over its last FRACTION of steps and keep the "
        "average where its validation loss is lower beyond the comparison's noise (default: "
        "RecipeSettings.weight_average, 1: every step after the LR search's edge); none: keep "
        "the last weights",
    )
    p.add_argument(
        "--exact-epochs",
        action="store_true",
        help="train the final run for exactly --epochs (by default it takes the budget's unspent "
        "samples as whole extra epochs: all of them with --lr-search in-run; with short-runs, "
        "the weight-decay runs' share when the short runs show no overfitting)",
    )
    p.add_argument("--workers", type=int, default=1, help="processes for the candidate runs")
    p.add_argument(
        "--study",
        metavar="URL",
        help="an Optuna storage URL (sqlite:///runs/x/study.db, postgresql://...): the short "
        "runs become trials there, taken by this process and by any started with --join URL",
    )
    p.add_argument(
        "--join",
        metavar="URL",
        help="work on the trials of the study at URL until its search is over (the other flags "
        "are the coordinator's, read from the study)",
    )
    p.add_argument("--study-name", default="superconverge-tune", help="the study's name in URL")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out", type=Path, help="output folder (default: runs/<data>-<model>, a ':' as '.')"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace the run in --out: it is moved "
        "into --out/previous-<time>/ first and deleted once the new run has finished",
    )
    p.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="continue the interrupted run in DIR, with the flags it was started with",
    )
    p.add_argument(
        "--trust-plan-code",
        action="store_true",
        help="with --resume or --join: run the module:function code DIR's journal or the "
        "study names (a run folder is data: its code runs only when you say so)",
    )
    from superconverge.cli._data_flags import add_task_flags

    add_task_flags(p, optimizer_default="auto")
    p.set_defaults(handler=run, parser=p)
    return p


def _batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        size = int(text)
    except ValueError:
        raise UsageError(f"--batch-size must be 'auto' or an integer, got {text!r}") from None
    if size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {size}")
    return size


def model_factory(args: argparse.Namespace, splits: Any) -> tuple[Any, str, dict[str, Any]]:
    """The model builder the flags name: (factory, name, build options); without --model, the
    library's default for the data."""
    from superconverge.models import ModelFactory, default_model_for, model_options_for

    if args.model is not None:
        return model_from_flag(args.model, args.width, splits)
    num_classes = splits.num_classes or 1
    name, options = default_model_for(splits.name, splits.input_shape)
    if args.width is not None:
        options.update(model_options_for(name, splits.input_shape, num_classes, args.width))
    options["num_classes"] = num_classes
    return ModelFactory(name, options), name, options


def _create(out: Path) -> None:
    """Make the folder `out` (parents too), or a UsageError naming --out when the system
    refuses (a read-only or virtual file system that the permission check let through)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"--out {out}: cannot create the folder ({error.strerror or error}); choose another "
            "--out"
        ) from None


def _finite(allowed: str, accepts: Callable[[float], bool]) -> Callable[[str], float]:
    """An argparse type: a finite number that `accepts`, else the error naming what is
    `allowed` (argparse names the flag), before any data load."""

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and accepts(number)):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {value!r}")
        return number

    return parse


_decay = _finite("finite numbers >= 0", lambda number: number >= 0)
_DEFAULT = object()  # a flag left out: the library's default (not a str: argparse parses those)


def _fraction_or_none(value: str) -> float | None:
    """--weight-average: 'none', or a number in (0, 1]."""
    if value.strip().lower() == "none":
        return None
    return _finite("a number in (0, 1] or none", lambda number: 0 < number <= 1)(value)


_budget = _finite("a number > 0 (final runs' worth of samples)", lambda number: number > 0)


def run(args: argparse.Namespace) -> int:
    from superconverge.pytorch.distributed import (
        TooManyRanks,
        launched_ranks,
        process_group,
        world,
    )

    if args.join is not None:
        return _join(args)
    if args.trust_plan_code and args.resume is None:  # a new run's code is what it names
        raise UsageError(
            "--trust-plan-code applies to --resume DIR and --join URL (code a run folder or a "
            "study names); a new run runs the code its own flags name"
        )
    if args.resume is not None:
        args = _resumed(args)  # refuses other flags first
        if _finished(args.resume):  # nothing to continue: its files are left as they are
            print(
                f"tune: {args.resume} holds a finished run: nothing to resume (its results: "
                f"{Path(args.resume) / 'plan.json'}; superconverge report {args.resume} writes "
                "its report again)"
            )
            return 0
    if launched_ranks() > 1:  # torchrun: rank 0 searches while the others wait (or take trials)
        from superconverge.data.loader import resolve_device

        try:
            with process_group(timeout_s=RANK_TIMEOUT_S, device=resolve_device(args.device)):
                return _follow(args) if world()[0] > 0 else _lead(args)
        except TooManyRanks as error:  # how torchrun was launched: a usage error (exit 2)
            raise UsageError(str(error)) from None
        except RuntimeError as error:  # the group's last barrier: another rank failed after
            if not _peer_gone(error):  # this one had finished (a reviewer's check)
                raise
            raise RunFailure(f"{PEER_STOPPED} after this one had finished its part") from error
    return _lead(args)


def _searches_by_short_runs(args: argparse.Namespace) -> bool:
    """Whether the flags ask for what only short runs do (`tuning.decisions.searches_in_run`)."""
    from superconverge.tuning.decisions import searches_in_run
    from superconverge.tuning.settings import RecipeSettings

    settings = RecipeSettings(lr_search=args.lr_search.replace("-", "_"))
    parallel = args.workers > 1 or args.study is not None
    return not searches_in_run(settings, args.weight_decays, args.compare_momentum, parallel)


def _refuse_flags_that_change_nothing(args: argparse.Namespace) -> None:
    """Flags that another flag overrides or that apply to nothing here, refused (a user's
    check: each was taken, exit 0, and did nothing or not what it said)."""
    if args.resume is not None:  # its flags were taken when it started (and may predate this)
        return
    given = _given_flags(args)

    def gave(flag: str) -> bool:
        return any(each == flag or each.startswith(f"{flag}=") for each in given)

    if gave("--study-name") and args.study is None:  # was taken and ignored (exit 0)
        raise UsageError(
            f"--study-name {args.study_name} names a study in --study URL or --join URL: give "
            "one, or drop --study-name"
        )
    short_runs = _searches_by_short_runs(args)
    if gave("--lr-search") and args.lr_search == "in-run" and short_runs:
        raise UsageError(
            "--lr-search in-run, but several --weight-decays, --compare-momentum, --workers "
            "above 1 or --study compare candidates by short runs: drop one or the other"
        )
    if gave("--budget") and args.exact_epochs and not short_runs:
        raise UsageError(
            "--budget lengthens the final run when the LR is searched inside it, which "
            "--exact-epochs keeps at --epochs: pass one or the other"
        )


def _lead(args: argparse.Namespace) -> int:
    """The run itself (rank 0 under torchrun): check the flags, search, train, report."""
    if args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    if not (args.budget > 0 and args.budget < float("inf")):
        raise UsageError(
            f"--budget must be a number > 0 (final runs' worth of samples), got {args.budget}"
        )
    if args.workers < 1:  # before the data load and the run's header line
        raise UsageError(f"--workers must be an integer >= 1, got {args.workers}")
    if args.study is not None and args.workers > 1:
        raise UsageError(
            f"--workers must be 1 with --study (got {args.workers}): more processes join the "
            "study with superconverge tune --join URL"
        )
    if args.search_divisor is not None and _searches_by_short_runs(args):
        raise UsageError(
            "--search-divisor sets the LR search inside the final run, but this run searches by "
            "short runs (--lr-search short-runs, several --weight-decays, --compare-momentum, "
            "--workers above 1 or --study): drop one or the other"
        )
    _refuse_flags_that_change_nothing(args)
    _study(args, args.study)  # a --study that is no URL, named before the data load
    batch_size = _batch_size(args.batch_size)
    check_seed(args.seed)
    if args.out is not None and args.resume is None:
        _usable_folder(args.out, "--out")  # before the data load: nothing to wait for
    loss_from_flag(args.loss)  # a bad --loss or --metric is named before the data load
    metrics_from_flags(args.metrics)
    reading = data_options(args)  # and a bad --batch-fn, --collate-fn or --num-workers
    splits = resolve_data(args.data, args.data_dir, args.seed)
    if splits.val is None:
        raise UsageError("--data gives no validation split; tune needs one to compare candidates")
    own_data = isinstance(splits, UserData)  # Datasets or loader factories: no shapes known
    if own_data and args.model is None:
        raise UsageError(f"--model module:function is needed with --data {args.data}")
    if not own_data and isinstance(batch_size, int) and batch_size > len(splits.train):
        raise UsageError(
            f"--batch-size must be <= the {len(splits.train)} training samples of "
            f"{splits.name}, got {batch_size}"
        )
    if not own_data and isinstance(batch_size, int):  # the library's check, before the header
        _check_final_updates(batch_size, args.epochs, len(splits.train))
    model_fn, model_name, options = model_factory(args, splits)
    out = _out_dir(args, splits.name, model_name)
    from superconverge._files import FolderBusyError, FolderLock
    from superconverge.data.sources import LoaderOptions, as_source, check_dataset_options

    # refusals that need the data, before the header line: a usage error prints one line. A
    # usable folder, refused untouched when it holds a run and neither --force nor --resume;
    # checked again under the lock, in case another run started in between
    resuming = args.resume is not None
    claim_out_dir(out, args.force, resume=resuming, flag="--resume" if resuming else "--out")
    steps = (args.steps_per_epoch, args.val_steps, args.test_steps)
    named = (("train_data", splits.train), ("val_data", splits.val), ("test_data", splits.test))
    try:
        loading = LoaderOptions(args.num_workers, collate_fn=reading["collate_fn"])
        check_dataset_options(loading, (splits.train, splits.val, splits.test), "tune")
        for (name, data), count in zip(named, steps, strict=True):
            if data is not None and count is not None and count >= 1:  # for data of known size
                as_source(data, name, steps_per_epoch=count, evaluation=name != "train_data")
    except ValueError as error:
        raise UsageError(flag_message(error, args.parser) or str(error)) from None
    if own_data:
        print(f"tune: {splits.name}, model {model_name}, {plural(args.epochs, 'epoch')}")
    else:
        test_part = f" / {len(splits.test)} test" if splits.test is not None else ""
        print(
            f"tune: {splits.name} ({len(splits.train)} train / {len(splits.val)} val{test_part}), "
            f"model {model_name}, {plural(args.epochs, 'epoch')}"
        )
    start = time.perf_counter()
    if args.resume is None:  # what --resume repeats: this command's flags, without --force
        flags = _given_flags(args)
        args.command = [flag for flag in flags if flag != "--force"]
        threads = getattr(args, "threads", None)
        if threads is not None and not any(f.split("=")[0] == "--threads" for f in flags):
            args.command += ["--threads", str(threads)]  # given before the subcommand
    created = not out.exists()
    try:
        # one writer from the check of the folder to the last report file: a second run fails
        _create(out)
        with FolderLock(out):
            if args.resume is None:
                claim_out_dir(out, args.force)
            return _tune_and_report(
                args, splits, model_fn, model_name, options, batch_size, out, start
            )
    except Exception as error:
        if stdout_closed(error):  # `tune | head`: nothing to fix or resume, the run is written
            raise
        # a run refused before it wrote anything leaves no folder behind; a folder another
        # process holds is that run's, even where this one made it first (both started at once)
        removed = (
            created and not isinstance(error, FolderBusyError) and remove_if_only_the_lock(out)
        )
        if isinstance(error, OSError) and error.errno in NO_ROOM:
            # not "choose another --out", which would start again: the journal keeps the search
            when = f"once you {make_room(error)}, "
            kept = f"nothing measured yet; {when}run the same command again" if removed else ""
            raise RunFailure(f"{error.strerror or error}; {kept or _kept(out, when)}") from error
        from superconverge.training.checkpoint import CHECKPOINT, CheckpointError

        if isinstance(error, CheckpointError) and error.path == out / CHECKPOINT:
            # the final run's: the journal's decisions do not need it (a user's check: the line
            # said to fix it and resume, and did not say how)
            command = resume_command(out, getattr(args, "command", None), _ranks_of(out))
            raise RunFailure(
                f"{error}; delete it and continue with: {command} (the final run starts again "
                "from the decisions the journal kept)"
            ) from error
        from superconverge.pytorch.distributed import launched_ranks
        from superconverge.tuning.journal import Journal, SettingsMismatch

        if isinstance(error, SettingsMismatch) and args.resume is not None:
            ranks = [d for d in error.differences if d.startswith("world_size ")]
            if ranks and len(ranks) == len(error.differences):  # trained on other ranks
                there = Journal.load(out).ranks
                raise UsageError(
                    f"--resume {out}: that run trained on {there} processes "
                    f"(torchrun), this one is {launched_ranks()}; continue "
                    f"it as it was launched: {resume_command(out, args.command, there)}"
                ) from None
            # the flags are the journal's own command: "resume it with the settings it was
            # started with" (exit 1, then "once that is fixed, continue with" the same command)
            # could not be followed
            raise UsageError(
                f"--resume {out}: its journal's settings differ from what its own command asks "
                f"now ({'; '.join(error.differences)}): the journal was edited, or this version's "
                "defaults differ from those of the version that started it; start a new run "
                "(--force moves this one aside)"
            ) from None
        status, message = explain(error, args.parser)
        if isinstance(error, MemoryError) and not removed:  # --resume keeps what ran out
            raise RunFailure(
                f"{message} in a new run: add --force (it moves {out} aside; --resume would "
                "keep the batch size and model that ran out of memory)"
            ) from error
        from superconverge.tuning.resumable import PUT_BACK

        put_back = any(note.startswith(PUT_BACK) for note in getattr(error, "__notes__", []))
        if put_back and status == EXIT_FAILURE:
            # the journal there now is the run it was to replace, put back: not this one's
            raise RunFailure(
                f"{message}; nothing was measured, and the run it was to replace is back in "
                f"{out}; once that is fixed, run the same command again"
            ) from error
        if launched_ranks() > 1 and _peer_gone(error):  # gloo's own words, with an emoji
            raise RunFailure(f"{PEER_STOPPED}, so this one cannot go on; {_kept(out)}") from error
        if status == EXIT_FAILURE and not isinstance(error, (RunFailure, FolderBusyError)):
            # a crash mid-run (a read error of the data, out of memory, a bug): the journal
            # keeps what was measured, which the line alone did not say
            kept = _kept(out, "once that is fixed, ")
            if not removed and not kept.startswith("nothing measured"):
                raise RunFailure(f"{message}; {kept}") from error
        raise


RANK_TIMEOUT_S = 7 * 24 * 3600.0  # ranks > 0 wait in a collective while rank 0 searches
# how gloo says that the other end of a collective is gone (a rank interrupted or crashed)
PEER_GONE = ("Connection closed by peer", "Connection reset by peer")
PEER_STOPPED = "another torchrun process stopped (interrupted or failed: its own output says which)"


def _ranks_of(out: Path) -> int:
    """The processes the run in `out` trained on (its journal's ``world_size``; 1 without)."""
    from superconverge.tuning.journal import Journal

    try:
        return Journal.load(out).ranks
    except (FileNotFoundError, ValueError):
        return 1


def _peer_gone(error: BaseException) -> bool:
    """Whether `error` is a collective's failure because another rank left."""
    return isinstance(error, RuntimeError) and any(text in str(error) for text in PEER_GONE)


def _check_final_updates(batch_size: int, epochs: int, samples: int) -> None:
    """A --batch-size that leaves the final run fewer updates than a 1cycle needs, named with
    the flags before the header line (tune() refuses it too, in the library's words)."""
    from superconverge.tuning.recipe import MIN_FINAL_STEPS

    updates = epochs * math.ceil(samples / batch_size)
    if updates < MIN_FINAL_STEPS:
        raise UsageError(
            f"--batch-size {batch_size} with --epochs {epochs} leaves the final run "
            f"{plural(updates, 'optimizer update')} over {samples} training samples; a 1cycle "
            f"needs at least {MIN_FINAL_STEPS}: lower --batch-size or raise --epochs"
        )


def _out_dir(args: argparse.Namespace, data_name: str, model_name: str) -> Path:
    """--out, else runs/DATA-MODEL with an entry point's ':' as '.' (a ':' in a folder name is
    refused on Windows and read as host:path by scp and rsync)."""
    name = f"{data_name}-{model_name}".replace(":", ".")
    return Path(args.out or Path("runs") / name)


def _study(args: argparse.Namespace, url: str | None) -> Any:
    from superconverge.tuning.trials import TrialStudy

    if url is None:
        return None
    try:
        return TrialStudy(url, args.study_name)
    except (ValueError, ImportError) as error:  # a bad URL; Optuna not installed
        raise UsageError(f"--{'join' if args.join else 'study'}: {error}") from None


def _join(args: argparse.Namespace) -> int:
    """A worker: the coordinator's flags, read from the study, then its trials."""
    others = _other_flags(_given_flags(args), ("--join", "--study-name", "--data-dir", "--threads"))
    _refuse_before_joining(args)  # the wait below is for the coordinator: up to 10 minutes
    study = _study(args, args.join)
    from superconverge.tuning.trials import JOIN_WAIT_S

    attrs = study.open(wait=JOIN_WAIT_S)
    command = attrs.get("command")
    if not command:
        raise UsageError(
            f"--join {args.join}: study {args.study_name!r} was started from Python; join it "
            "from Python with superconverge.tune(..., study=URL, join=True) and the same arguments"
        )
    # the study's code runs where this command names it too, or is trusted: a study is data,
    # as a plan and a journal are (a reviewer's check: a worker imported what the study named)
    unnamed = [spec for spec in named_code(command) if spec not in named_code(others)]
    if unnamed and not args.trust_plan_code:
        listed = " ".join(unnamed)
        raise UsageError(
            f"--join {args.join}: the study's command names code to run ({listed}); name it "
            f"again ({listed}) once you have checked that code, or add --trust-plan-code"
        )
    flags: argparse.Namespace = args.parser.parse_args(command)
    # the coordinator's command repeated with --join is fine; a flag that would change a run
    # is refused, not ignored
    differ = _flags_that_differ(args.parser, others, flags)
    if differ:
        raise UsageError(
            f"--join {args.join} runs the coordinator's trials with the coordinator's flags "
            f"({shlex.join(command)}); these differ: {'; '.join(differ)}. A worker takes only "
            "--study-name, --data-dir (where the data are on this machine), --threads, "
            "--quiet/--verbose/--debug, and flags equal to the coordinator's"
        )
    flags.join, flags.study_name, flags.command = args.join, args.study_name, None
    if args.data_dir is not None:  # the same data in another folder on this machine
        flags.data_dir = args.data_dir
    splits = resolve_data(flags.data, flags.data_dir, flags.seed)
    model_fn, model_name, _ = model_factory(flags, splits)
    print(f"worker of study {args.study_name!r} at {args.join}: {splits.name}, model {model_name}")
    plan = _tune(flags, splits, model_fn, _batch_size(flags.batch_size), None, study)
    print(f"the search is over; the coordinator chose: {plan!r}")
    return 0


def _refuse_before_joining(args: argparse.Namespace) -> None:
    """The flags no coordinator's command can hold (it records neither --force nor --resume,
    and refuses --workers above 1 with --study), another study, and a --data-dir that is no
    folder: refused before the worker waits for the coordinator, not after (a worker started
    before its coordinator waited up to JOIN_WAIT_S to be told)."""
    given = f"--join {args.join}"
    if args.resume is not None:
        raise UsageError(
            f"{given} works on another run's trials; --resume {args.resume} continues a run of "
            "its own: pass one"
        )
    if args.force:
        raise UsageError(f"{given} writes no run folder: --force has nothing to replace; drop it")
    if args.workers != 1:
        raise UsageError(
            f"{given} is one worker; --workers {args.workers} does not apply: start more "
            "workers, each with --join URL"
        )
    if args.study is not None and args.study != args.join:
        raise UsageError(
            f"{given} and --study {args.study} name two studies; a worker takes --join URL alone"
        )
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise UsageError(f"--data-dir {args.data_dir} is not a folder")


def _follow(args: argparse.Namespace) -> int:
    """A rank > 0 under torchrun: what rank 0 does, writing and printing nothing (rank 0
    reports for all), warnings aside."""
    import logging

    if not args.verbose:
        logging.getLogger("superconverge").setLevel(logging.WARNING)
    splits = resolve_data(args.data, args.data_dir, args.seed)
    model_fn, model_name, _ = model_factory(args, splits)
    out = _out_dir(args, splits.name, model_name)
    args.command = None
    try:
        _tune(args, splits, model_fn, _batch_size(args.batch_size), out, _study(args, args.study))
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            "interrupted: this torchrun process writes nothing; the first one's line says what "
            "was kept"
        ) from None
    except RuntimeError as error:
        if not _peer_gone(error):
            raise
        raise RunFailure(
            f"{PEER_STOPPED}, so this one cannot go on; the first one's line says what was kept"
        ) from error
    return 0


def _tune_and_report(
    args: argparse.Namespace,
    splits: Any,
    model_fn: Any,
    model_name: str,
    options: dict[str, Any],
    batch_size: Any,
    out: Path,
    start: float,
) -> int:
    from superconverge.diagnostics.report import write_report
    from superconverge.tuning.plan import save_run

    try:
        plan = _tune(args, splits, model_fn, batch_size, out, _study(args, args.study))
    except KeyboardInterrupt:  # one line: what was kept and how to go on
        with interrupts_ignored():  # a second Ctrl-C: the line still says what was kept
            kept = _kept(out)
        raise KeyboardInterrupt(f"interrupted: {kept}") from None
    except ValueError as error:
        if str(error).startswith("total_steps"):  # the final run's updates: epochs x batches
            raise UsageError(
                f"--batch-size {args.batch_size} with --epochs {args.epochs} leaves too few "
                f"optimizer steps ({error}); lower --batch-size or raise --epochs"
            ) from None
        raise
    # the names fit needs to rebuild the run; an entry point is recorded, never run by fit
    # unless the user names it again (or passes --trust-plan-code)
    plan.data = args.data if ":" in args.data else splits.name
    plan.model, plan.model_options = model_name, options
    plan.data_options, plan.loss = saved_flags(args), args.loss
    # the journal keeps the command whole (--resume repeats it); files people share do not
    # hold a --study URL's password
    plan.environment["command"] = without_passwords(
        shlex.join(["superconverge", "tune", *args.command])
    )
    save_run(out, plan)
    try:
        write_report(out, plan, plan.history, plan.range_tests, f"{splits.name}, {model_name}")
    except KeyboardInterrupt:  # the run is saved: only its report is missing
        raise KeyboardInterrupt(
            f"interrupted while writing the report: the run finished and is saved in {out}; "
            f"render its report with: superconverge report {out}"
        ) from None
    except OSError as error:
        if error.errno not in NO_ROOM:
            raise
        raise RunFailure(
            f"{error.strerror or error}: the run finished and is saved in {out}; once you "
            f"{make_room(error)}, render its report with: superconverge report {out}"
        ) from error
    seconds = time.perf_counter() - start
    _print_plan(plan)
    earlier = getattr(args, "earlier_seconds", 0.0)  # a resume: the seconds spent before it
    before = f" ({earlier:.1f} s of them before the resume)" if earlier else ""
    print(
        f"total {seconds + earlier:.1f} s{before}; report: {out / 'report.html'}{model_note(out)}"
    )
    if plan.results.get("status") == "diverged":  # everything is written; the exit says it failed
        raise RunFailure(_diverged_text(plan, out))
    return 0


def _kept(out: Path, when: str = "") -> str:
    """What an unfinished run left in `out` (its journal's stages and measurements, the final
    run's checkpoint) and the command that continues it, `when` the user has done what it says
    first."""
    from superconverge.tuning.journal import Journal
    from superconverge.tuning.resumable import kept_on_interrupt, replaced_run_note

    try:
        journal = Journal.load(out)
    except (FileNotFoundError, ValueError):  # --resume would find no run: start it again
        return f"nothing measured yet; {when}run the same command again"
    kept, replaced = kept_on_interrupt(journal), replaced_run_note(journal)
    command = resume_command(out, journal.command, journal.ranks)
    return f"{kept} kept in {out}{replaced}; {when}continue with: {command}"


def _diverged_text(plan: Any, out: Path) -> str:
    """What a final run that diverged whatever the guard did leaves in `out`, in one line."""
    from superconverge.training.checkpoint import CHECKPOINT
    from superconverge.tuning.journal import Journal

    epochs = len(plan.history.epochs) if plan.history is not None else 0
    redone = sum(1 for r in plan.evidence if r.get("step") == "final_run") > 1
    tried = "after halving its LR" + (" and at a third of its max_lr" if redone else "")
    path = out / CHECKPOINT
    if epochs and plan.is_own_checkpoint(path):
        kept = f"{CHECKPOINT} holds the weights of epoch {epochs}, the last good one"
    elif path.is_file():  # the first attempt's, at the higher LR, which the redo did not replace
        from superconverge.training.checkpoint import load_checkpoint

        first = (load_checkpoint(path).get("plan") or {}).get("max_lr")
        at = f" (at max_lr {first:.3g})" if isinstance(first, (int, float)) else ""
        kept = f"{CHECKPOINT} is the first attempt's{at}, not this run's"
    else:
        kept = "no trained weights"
    try:  # the run a --force moved aside stays where this one diverged
        replaced = Journal.load(out).replaces
    except (FileNotFoundError, ValueError):
        replaced = None
    if replaced and (out / replaced).is_dir():
        kept += f"; the run it was to replace is kept in {out / replaced}"
    return (
        f"the final run diverged, also {tried} (max_lr {plan.max_lr:.3g}); {out} holds its "
        f"report and plan.json (verdict diverged: it says what to try) and {kept}"
    )


def _tune(
    args: argparse.Namespace,
    splits: Any,
    model_fn: Any,
    batch_size: Any,
    out: Path | None,
    study: Any = None,
) -> Any:
    from superconverge.data import default_augment
    from superconverge.training import EdgeSettings
    from superconverge.tuning import RecipeSettings, tune

    return tune(
        model_fn,
        splits.train,
        splits.val,
        epochs=args.epochs,
        test_data=splits.test,
        batch_size=batch_size,
        weight_decays=None if args.weight_decays is None else tuple(args.weight_decays),
        loss_fn=loss_from_flag(args.loss),
        metrics=metrics_from_flags(args.metrics),
        optimizer=args.optimizer,
        device=args.device,
        precision=args.precision,
        **data_options(args),
        **evaluation_options(args),
        compare_momentum=args.compare_momentum,
        budget=args.budget,
        settings=RecipeSettings(
            **({} if args.weight_average is _DEFAULT else {"weight_average": args.weight_average}),
            extend_final_run=not args.exact_epochs,
            lr_search=args.lr_search.replace("-", "_"),
            search=None
            if args.search_divisor is None
            else EdgeSettings(divisor=args.search_divisor),
        ),
        workers=args.workers,
        seed=args.seed,
        out_dir=out,
        augment=None if isinstance(splits, UserData) else default_augment(splits.name),
        overwrite=args.force,
        resume=args.resume is not None,
        command=args.command,
        study=study,
        join=args.join is not None,
    )


def _finished(folder: Path) -> bool:
    """Whether `folder` holds a tune run that finished with every file written: its journal
    says so, and plan.json, history.json and report.html (written last) are there; a run killed
    while writing them resumes to write them."""
    from superconverge.tuning.journal import Journal

    try:
        finished = Journal.load(folder).finished
    except (OSError, ValueError):
        return False
    written = ("plan.json", "history.json", "report.html")
    return finished and all((Path(folder) / name).is_file() for name in written)


def _resumed(args: argparse.Namespace) -> argparse.Namespace:
    """The flags the run in ``--resume DIR`` was started with, read from its journal."""
    from superconverge.tuning.journal import Journal

    try:
        journal = Journal.load(args.resume)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(f"--resume {args.resume}: {error}") from None
    if not journal.command:
        raise UsageError(
            f"--resume {args.resume}: that run was not started by the CLI; resume it with "
            "superconverge.tune(..., resume=True)"
        )
    others = _other_flags(_given_flags(args), ("--resume", "--threads"))
    if others:
        raise UsageError(
            f"--resume {args.resume} continues that run with the flags it was started with "
            f"({shlex.join(journal.command) or 'none'}); also given: {shlex.join(others)}. Drop "
            "them, or start a new run (another --out, or --force to replace this one)"
        )
    code = named_code(journal.command)
    if code and not getattr(args, "trust_plan_code", False):  # a user's check: an edited
        # journal's --model evilmod:f was imported and called by --resume
        listed = " ".join(code)
        raise UsageError(
            f"--resume {args.resume}: its journal names code to run ({listed}); a run folder "
            "is data, so its code runs only when you trust it: check that code, then add "
            "--trust-plan-code"
        )
    resumed: argparse.Namespace = args.parser.parse_args(journal.command)
    recorded = journal.settings.get("settings")
    if isinstance(recorded, dict) and "lr_search" not in recorded:
        resumed.lr_search = "short-runs"  # started before the in-run search: as it was started
    resumed.out, resumed.resume, resumed.force = args.resume, args.resume, False
    resumed.command = journal.command
    for flag in ("debug", "quiet", "verbose"):  # the main parser's, given now: the
        # subcommand's parser has none (a torchrun rank > 0 read args.verbose and failed)
        setattr(resumed, flag, getattr(args, flag, False))
    resumed.earlier_seconds = journal.elapsed_before  # what the run spent before this resume
    if getattr(args, "threads", None) is not None:
        resumed.threads = args.threads  # given now: already set by main
    elif getattr(resumed, "threads", None) is not None:  # a subcommand's flag: absent unless given
        # the run's own --threads: torch's reductions differ with the thread count, so a resumed
        # run at another count neither goes as fast nor ends with the same weights
        import torch

        torch.set_num_threads(resumed.threads)
    return resumed


def _given_flags(args: argparse.Namespace) -> list[str]:
    """The flags given after ``tune`` on this command line (those before it are global)."""
    given = list(getattr(args, "argv", None) or [])
    return given[given.index("tune") + 1 :] if "tune" in given else given


def _other_flags(flags: list[str], taken: tuple[str, ...]) -> list[str]:
    """`flags` without the `taken` flags (each with its value) and those that change how a run
    is shown or what code it may run, not what it decides (``--debug``, ``--quiet``,
    ``--verbose``, ``--trust-plan-code``): what else the user asked of a run whose flags are
    already fixed (``--resume DIR``, ``--join URL``)."""
    rest, skip = [], False
    for flag in flags:
        if skip:
            skip = False
        elif flag in taken:
            skip = True
        elif flag.split("=", 1)[0] not in (*taken, *_NOT_DECIDING_FLAGS):
            rest.append(flag)
    return rest


_NOT_DECIDING_FLAGS = ("--debug", "-q", "--quiet", "-v", "--verbose", "--trust-plan-code")


def _flags_that_differ(
    parser: argparse.ArgumentParser, given: list[str], fixed: argparse.Namespace
) -> list[str]:
    """Each flag in `given` whose value is not `fixed`'s, in words (``--epochs 3 (the
    coordinator's: 10)``); a flag given at its default counts as given."""
    if not given:
        return []
    unset = object()
    actions = [a for a in parser._actions if a.option_strings and a.dest != argparse.SUPPRESS]  # noqa: SLF001 - argparse's table
    # every destination pre-set: argparse then fills in no defaults, so what changed was given
    # (an appending flag starts from None, as argparse's own default)
    blank = argparse.Namespace(
        **{a.dest: None if isinstance(a, argparse._AppendAction) else unset for a in actions}  # noqa: SLF001
    )
    values = vars(parser.parse_args(given, namespace=blank))
    differ = []
    for action in actions:
        if set(action.option_strings) & set(_NOT_DECIDING_FLAGS):  # how a run is shown (-qv too)
            continue
        value, theirs = values.get(action.dest, unset), getattr(fixed, action.dest, None)
        if value is unset or value is None or value == theirs:
            continue
        flag = action.option_strings[-1]
        if isinstance(value, bool):
            differ.append(f"{flag} (the coordinator's run has it {'on' if theirs else 'off'})")
        else:
            shown = " ".join(map(str, value)) if isinstance(value, list) else value
            was = "not given" if theirs is None else f"the coordinator's: {theirs}"
            differ.append(f"{flag} {shown} ({was})")
    return differ


def _batch_text(plan: Any) -> str:
    ranks = plan.environment.get("world_size", 1)
    if ranks > 1:
        return f"{plan.batch_size} per rank on {ranks} ranks (global {plan.batch_size * ranks})"
    return str(plan.batch_size)


def _over_budget(compute: dict[str, Any]) -> str:
    """Why a search spent more than its budget, where its least useful form did not fit."""
    floor = compute.get("floor_samples")
    return f", overspent: the least search that decides is about {floor:,} samples" if floor else ""


def _print_plan(plan: Any) -> None:
    for step in plan.evidence:
        samples = step.get("samples", 0)
        print(
            f"  {step['step']:<13} {step['seconds']:6.1f} s {samples:>10,} samples  "
            f"{decision(step['decision'])}"
        )
    compute = plan.compute
    if compute:
        handed = compute.get("handed_to_final_run_samples", 0)
        longer = f", {handed:,} of them the search's share" if handed else ""
        print(
            f"compute: search {compute['search_samples']:,} + final run "
            f"{compute['final_run_samples']:,} samples{longer} = {compute['x_final_run']:.2f}x one "
            f"run of --epochs (budget {compute['budget']:g}{_over_budget(compute)}); torch "
            f"threads {plan.environment.get('torch_threads')} of "
            f"{plan.environment.get('usable_cores')} usable cores"
        )
    test = plan.results.get("test", {})
    verdict = plan.results["verdict"]
    print(
        f"chosen: {plan.optimizer or 'your optimizer'}, batch {_batch_text(plan)}, "
        f"max_lr {plan.max_lr:.3g}, min_lr {plan.min_lr:.3g}, "
        f"weight decay {plan.weight_decay:g}, momentum {decision(plan.momentum)}"
    )
    averaged = plan.results.get("weight_average")
    if averaged:  # which weights the final run ended with (`WeightAverage`)
        print(f"weights: {averaged_weights_line(averaged)}")
    if test:
        print(scores_line(test))
    print(f"verdict: {verdict['kind']}: {verdict['explanation']}; next: {verdict['next_step']}")
