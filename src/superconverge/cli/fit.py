"""``superconverge fit``: re-run a plan saved by ``tune`` (runs/NAME/plan.json).

A plan is data. It records the names of the model and data it was made with; when those are
``module:function`` entry points, importing them runs code, so fit runs them only when the user
names them on the command line (``--model``/``--data``) or passes ``--trust-plan-code``.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from superconverge._checks import MAX_SEED
from superconverge._display import averaged_weights_line, plural
from superconverge._files import NO_ROOM, write_text_atomically
from superconverge._run_folder import discard, move_aside, note_replaced, replaced_run
from superconverge.cli._common import (
    EXIT_FAILURE,
    RunFailure,
    UsageError,
    claim_out_dir,
    data_names,
    explain,
    make_room,
    model_from_flag,
    model_note,
    read_json,
    refuse_busy_folder,
    refuse_torchrun,
    resolve_data,
    scores_line,
)
from superconverge.cli._data_flags import (
    LOSS_NAMES,
    UserData,
    callable_from_flag,
    device_flag,
    loss_from_flag,
    metrics_from_flags,
    steps_flag,
)

# the plan's settings as the library names them in its messages (epochs, max_lr, ...)
PLAN_FIELDS = (
    "epochs",
    "batch_size",
    "max_lr",
    "min_lr",
    "weight_decay",
    "momentum",
    "policy",
    "seed",
    "total_steps",
    "optimizer",
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "fit",
        help="re-run a saved plan (runs/NAME/plan.json)",
        description="Train once more with the batch size, LRs, weight decay and momentum a tune "
        "run chose. A plan's module:function names are never imported unless you name them "
        "again with --model/--data, or pass --trust-plan-code.",
    )
    p.add_argument("--plan", type=Path, required=True, help="a plan.json written by tune")
    p.add_argument(
        "--data", help="data set name or module:function (default: the one the plan names)"
    )
    p.add_argument("--data-dir", type=Path, help="folder with the data files")
    p.add_argument(
        "--model", help="model name or module:function (default: the one the plan names)"
    )
    # the plan's own entry points, named again (a plan's code runs only when named or trusted)
    p.add_argument(
        "--loss",
        help=f"{', '.join(LOSS_NAMES)}, or module:function loss_fn(outputs, targets) (default: the "
        "one the plan names)",
    )
    p.add_argument(
        "--metric",
        action="append",
        dest="metrics",
        metavar="METRIC",
        help="a metric (built-in or module:function); repeat for several (default: the plan's)",
    )
    p.add_argument(
        "--optimizer",
        help="module:function returning an optimizer of the param groups, for a plan made with "
        "an optimizer callable (tune(optimizer=...) from Python); default: the plan's",
    )
    for flag, what in (
        ("--steps-per-epoch", "batches per epoch of a stream (IterableDataset)"),
        ("--val-steps", "batches of a validation stream per evaluation"),
        ("--test-steps", "batches of a test stream"),
    ):  # a user's check: a plan re-run on a stream asked for --steps-per-epoch, which fit lacked
        p.add_argument(flag, type=int, metavar="N", help=f"{what} (default: the plan's tune run's)")
    p.add_argument("--batch-fn", help="module:function (default: the one the plan names)")
    p.add_argument("--collate-fn", help="module:function (default: the one the plan names)")
    p.add_argument(
        "--device",
        default="auto",
        type=device_flag,
        help="auto, cpu, cuda or cuda:N (default: auto, CUDA where there is one, whatever "
        "device the plan was tuned on)",
    )
    p.add_argument(
        "--trust-plan-code",
        action="store_true",
        help="import and call the module:function entry points the plan names (they run "
        "arbitrary code: only for plans you made or checked)",
    )
    p.add_argument("--out", type=Path, help="output folder (default: <plan folder>/refit)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted fit of this plan in --out from its last epoch's "
        "checkpoint.pt (the same flags as the run it continues)",
    )
    p.set_defaults(handler=run, parser=p)
    return p


def load_plan(path: Path) -> Any:
    """The TunePlan in `path`, with each field's type checked, or a UsageError naming the file."""
    from superconverge.tuning import TunePlan

    data = read_json(path, "--plan")
    if not isinstance(data, dict):
        raise UsageError(f"--plan {path} must hold a JSON object, got {type(data).__name__}")
    try:
        return TunePlan.from_dict(data)
    except (ValueError, TypeError) as error:
        raise UsageError(f"--plan {path}: {error}") from None


def _refuse_plan_code(args: argparse.Namespace, plan: Any) -> None:
    """A plan's entry points run only when the user named them or trusts the plan."""
    if args.trust_plan_code:
        return
    named = [
        (flag, spec)
        for flag, given, spec in (
            ("--model", args.model, plan.model),
            ("--data", args.data, plan.data),
        )
        if given is None and spec is not None and ":" in spec
    ]
    # the loss, metrics and batch/collate functions the plan's tune run named as entry points,
    # unless this command names its own; their types checked first (a metrics string
    # "mod:fn" was read letter by letter, and ":" refused as code to run)
    saved = _checked_options(args, plan)
    for flag, given, spec in (
        ("--loss", args.loss, plan.loss),
        ("--batch-fn", args.batch_fn, saved.get("batch_fn")),
        ("--collate-fn", args.collate_fn, saved.get("collate_fn")),
        *(("--metric", args.metrics, m) for m in saved.get("metrics") or ()),
    ):
        if given is None and isinstance(spec, str) and ":" in spec:
            named.append((flag, spec))
    if named:
        listed = " ".join(f"{flag} {spec}" for flag, spec in named)
        raise UsageError(
            f"--plan {args.plan} names code to run ({listed}); a plan is data, so its code runs "
            f"only when you name it: pass {listed} once you have checked that code, or "
            "--trust-plan-code"
        )


def _task_of(args: argparse.Namespace, plan: Any, sized: bool) -> dict[str, Any]:
    """The loss, metrics and data reading the plan's tune run used, or those this command
    names instead (entry points the user named or trusts: `_refuse_plan_code` ran first)."""
    from superconverge.losses import CUSTOM

    saved = _checked_options(args, plan)
    own = saved.get("own_metrics") or []
    if own and args.metrics is None:  # a plan made from Python: the re-run measured others
        print(
            f"fit: the plan was tuned with metrics of your own ({', '.join(own)}), which "
            "plan.json cannot hold: not measured here; name them with --metric module:function"
        )
    task: dict[str, Any] = {
        "metrics": _from_plan(args.metrics is None, args, "metrics", "--metric")(
            metrics_from_flags, args.metrics or saved.get("metrics")
        ),
        "num_workers": saved.get("num_workers", 0),
        # a stream's epoch length; data of known size has its own (a plan from a stream refit
        # on tensors, or an older plan that recorded the flag for tensors, which ignored it)
        "steps_per_epoch": steps_flag(args.steps_per_epoch, "--steps-per-epoch")
        or (None if sized else saved.get("steps_per_epoch")),
        "val_steps": steps_flag(args.val_steps, "--val-steps") or saved.get("val_steps"),
        "test_steps": steps_flag(args.test_steps, "--test-steps") or saved.get("test_steps"),
        "batch_fn": callable_from_flag(args.batch_fn or saved.get("batch_fn"), "--batch-fn"),
        "collate_fn": callable_from_flag(
            args.collate_fn or saved.get("collate_fn"), "--collate-fn"
        ),
        "precision": saved.get("precision", "auto"),
        "device": args.device,
    }
    task["optimizer"] = _optimizer_of(args, plan)
    loss = args.loss or plan.loss
    if loss == CUSTOM:  # the plan's run had the user's own loss_fn, which a plan cannot hold
        raise UsageError(
            f"--plan {args.plan} was made with a loss function of your own (loss_fn), which a "
            "plan cannot hold: name it with --loss module:function (or a built-in loss)"
        )
    if loss is not None:
        task["loss_fn"] = _from_plan(args.loss is None, args, "loss", "--loss")(
            loss_from_flag, loss
        )
    return task


# what tune saves in plan.json's data_options (`saved_flags`): the flags that read the data
_SAVED_OPTIONS = ("loss", "metrics", "num_workers", "steps_per_epoch", "val_steps", "test_steps",
                  "batch_fn", "collate_fn", "device", "precision",
                  "own_metrics")  # fmt: skip  # a Python tune's metrics of the user's own


def _checked_options(args: argparse.Namespace, plan: Any) -> dict[str, Any]:
    """plan.json's data_options, each key known and each value of its kind, or a UsageError
    naming the plan and the option (a hand-edited num_workers -3 failed in the loader with
    exit 1; an unknown key was ignored)."""
    from superconverge.training.device import PRECISIONS

    saved: dict[str, Any] = plan.data_options
    unknown = sorted(set(saved) - set(_SAVED_OPTIONS))
    if unknown:
        raise UsageError(f"--plan {args.plan}: unknown data_options: {unknown}")

    def count(value: Any, least: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= least

    allowed: dict[str, tuple[str, Callable[[Any], bool]]] = {
        "num_workers": ("an integer >= 0", lambda v: count(v, 0)),
        "steps_per_epoch": ("an integer >= 1 or null", lambda v: v is None or count(v, 1)),
        "val_steps": ("an integer >= 1 or null", lambda v: v is None or count(v, 1)),
        "test_steps": ("an integer >= 1 or null", lambda v: v is None or count(v, 1)),
        "precision": (f"one of {', '.join(PRECISIONS)}", lambda v: v in PRECISIONS),
        "metrics": (
            "a list of metric names or null",
            lambda v: v is None or (isinstance(v, list) and all(isinstance(m, str) for m in v)),
        ),
        "own_metrics": (
            "a list of metric names",
            lambda v: isinstance(v, list) and all(isinstance(m, str) for m in v),
        ),
    }
    for key, (what, fits) in allowed.items():
        if key in saved and not fits(saved[key]):
            raise UsageError(
                f"--plan {args.plan}: data_options {key} must be {what}, got {saved[key]!r}"
            )
    for key in ("loss", "batch_fn", "collate_fn", "device"):
        if saved.get(key) is not None and not isinstance(saved[key], str):
            raise UsageError(
                f"--plan {args.plan}: data_options {key} must be a name or null, got {saved[key]!r}"
            )
    if isinstance(saved.get("device"), str) and saved["device"] != "auto":
        import torch

        try:  # its form only: a plan made on a GPU re-runs on a CPU (a reviewer's check took
            torch.device(saved["device"])  # 'evilmod:f' and copied it into the refit's plan)
        except RuntimeError:
            raise UsageError(
                f"--plan {args.plan}: data_options device must be auto, cpu, cuda or cuda:N, "
                f"got {saved['device']!r}"
            ) from None
    return saved


def _from_plan(
    from_plan: bool, args: argparse.Namespace, name: str, flag: str
) -> Callable[..., Any]:
    """Call a flag's converter on a value that came from the plan (`from_plan`) with its
    refusal restated to name the plan's field, not a flag the user did not give."""

    def convert(converter: Callable[..., Any], value: Any) -> Any:
        try:
            return converter(value)
        except UsageError as error:
            if not from_plan or not str(error).startswith(flag + " "):
                raise
            raise UsageError(f"--plan {args.plan}: {name}{str(error)[len(flag) :]}") from None

    return convert


def _optimizer_of(args: argparse.Namespace, plan: Any) -> Any:
    """The plan's optimizer by name, or the callable --optimizer names where the plan was made
    with one (plan.json cannot name a callable); another optimizer than the plan's is refused:
    its LR was chosen for that one."""
    from superconverge.pytorch.optimizers import OPTIMIZERS

    given = args.optimizer
    if given is None:
        if plan.optimizer is None:
            raise UsageError(
                f"--plan {args.plan} was made with an optimizer of your own (a callable, which "
                "plan.json cannot name): name it with --optimizer module:function (a function "
                "of the param groups that returns the optimizer)"
            )
        return plan.optimizer
    if plan.optimizer is not None and given != plan.optimizer:
        raise UsageError(
            f"--optimizer {given}: --plan {args.plan} was tuned with {plan.optimizer}, whose LR "
            f"and weight decay it holds; leave --optimizer out, or tune again with {given}"
        )
    if given in OPTIMIZERS:
        return given
    if ":" not in given:
        raise UsageError(
            f"--optimizer must be one of {', '.join(OPTIMIZERS)} or module:function, got {given!r}"
        )
    return callable_from_flag(given, "--optimizer")


def run(args: argparse.Namespace) -> int:
    refuse_torchrun("superconverge fit")
    plan = load_plan(args.plan)
    try:  # before anything is moved aside (a --force) or trained
        plan.check_values()
    except (ValueError, TypeError) as error:
        raise UsageError(f"--plan {args.plan}: {error}") from None
    if (plan.data is None and args.data is None) or (plan.model is None and args.model is None):
        raise UsageError(
            f"--plan {args.plan} names no data/model to rebuild (it came from the Python API); "
            "pass --data and --model"
        )
    if not 0 <= plan.seed <= MAX_SEED:
        raise UsageError(f"--plan {args.plan}: seed must be in [0, {MAX_SEED}], got {plan.seed}")
    _refuse_plan_code(args, plan)
    data = args.data or plan.data
    if args.data is None and ":" not in data and data not in data_names():
        raise UsageError(
            f"--plan {args.plan} names data {data!r}, which is no built-in data set; "
            "pass --data NAME or module:function"
        )
    splits = resolve_data(data, args.data_dir, plan.seed)
    if splits.val is None:
        raise UsageError(f"--data {data} gives no validation split; fit needs one")
    own_data = isinstance(splits, UserData)  # Datasets or loader factories
    if own_data and args.model is None and ":" not in (plan.model or ""):
        # a zoo model is sized from the data's shapes, which a Dataset does not declare (it
        # failed with "AttributeError: 'UserData' object has no attribute 'input_shape'")
        raise UsageError(
            f"--model module:function is needed with --data {data} (the plan's model "
            f"{plan.model!r} is sized from a built-in data set's shapes)"
        )
    if not own_data and plan.batch_size > len(splits.train):
        raise UsageError(
            f"--plan {args.plan}: batch_size {plan.batch_size} is more than the "
            f"{len(splits.train)} training samples of {splits.name}"
        )
    factory = _factory(args, plan, splits)
    from superconverge.data.sources import known_size

    # before the folder is claimed: a refusal must not have moved a --force's run aside
    task = _task_of(args, plan, known_size(splits.train))
    out = args.out or args.plan.parent / "refit"
    # a user's check: a second fit into a running one's folder was told to --resume or --force,
    # both then refused by the lock
    refuse_busy_folder(out)
    if args.resume:
        if args.force:
            raise UsageError(
                "--resume continues the run in --out and --force replaces it; pass one"
            )
        if _finished_fit(out):
            from superconverge.training.checkpoint import CHECKPOINT

            # finished, but its checkpoint is another plan's
            if (out / CHECKPOINT).is_file() and _epochs_saved(plan, out) is None:
                raise UsageError(
                    f"--resume: {out} holds a finished fit of another plan, not of --plan "
                    f"{args.plan} (max_lr {plan.max_lr:.3g}, {plural(plan.epochs, 'epoch')}); "
                    "nothing of this plan to continue: start it without --resume in another "
                    "--out (--force replaces it)"
                )
            results = out / "plan.json"
            print(f"fit: {out} holds a finished run: nothing to resume (its results: {results})")
            return 0
        _check_resumable(args, plan, out)
    else:
        _refuse_unfinished_fit(args, plan, out)
    claim_out_dir(out, args.force, resume=args.resume)
    # --force over a run: moved aside whole first (its report, journal and range tests would
    # otherwise stay beside this run's files), deleted once this run is written; only the run
    # this fit moved aside (a plain fit after a failed --force deleted that one on --resume)
    aside = move_aside(out) if args.force else replaced_run(out) if args.resume else None
    if not args.resume:
        note_replaced(out, aside)
    if aside is not None and args.force:
        print(f"fit: moved the previous run to {aside}; it is deleted once this run finishes")
    from superconverge.data import default_augment
    from superconverge.tuning.settings import RecipeSettings

    try:
        history = plan.run(
            factory,
            splits.train,
            splits.val,
            test_data=splits.test,
            out_dir=out,
            augment=None if own_data else default_augment(splits.name),
            overwrite=True,
            resume=args.resume,
            # the guard of tune's final run: a divergence restores the epoch's start and goes
            # on at half the LR, so the same plan on the same data trains what tune trained
            backoff=RecipeSettings().backoff_retries,
            **task,
        )
    except KeyboardInterrupt:  # one line: what was kept and how to go on
        raise KeyboardInterrupt(f"interrupted: {_kept(args, plan, out)}") from None
    except OSError as error:
        if error.errno in NO_ROOM:
            # not "choose another --out", which starts again: the checkpoint keeps its epochs
            when = f"once you {make_room(error)}, "
            raise RunFailure(
                f"{error.strerror or error}; {_kept(args, plan, out, when)}"
            ) from error
        _crashed(error, args, plan, out)
        raise
    except (ValueError, TypeError) as error:
        if str(error).split(" ", 1)[0] in PLAN_FIELDS:  # a value the plan file holds
            kept = "" if aside is None else f"; the run it was to replace is kept in {aside}/"
            raise UsageError(f"--plan {args.plan}: {error}{kept}") from None
        if args.resume:  # the checkpoint's settings or data differ from this command's
            raise UsageError(f"--resume {out}: {error}") from None
        _crashed(error, args, plan, out)
        raise
    except Exception as error:
        _crashed(error, args, plan, out)
        raise
    write_text_atomically(out / "history.json", history.to_json())
    # what this folder trained, so that `fit --plan` of it trains the same: the data and the
    # model as given now (a zoo model with the options sized for this data)
    plan.data = data if ":" in data else splits.name
    from superconverge.models import ModelFactory

    if isinstance(factory, ModelFactory):
        plan.model, plan.model_options = factory.name, dict(factory.options)
    elif args.model is not None:
        plan.model, plan.model_options = args.model, {}
    # this folder's command is fit's; the choices (and their evidence) are the tune run's
    plan.environment = {
        **plan.environment,
        "command": shlex.join(["superconverge", *getattr(args, "argv", ["fit"])]),
        "device": str(plan.trainer.device),  # this run's, not the tune run's
        # a plan re-run from an earlier fit --plan folder still credits the tune run
        "plan_made_by": plan.environment.get("plan_made_by")
        or plan.environment.get("command")
        or f"the tune run of {args.plan}",
    }
    write_text_atomically(out / "plan.json", plan.to_json())
    if aside is not None and history.status != "diverged":  # a diverged run keeps it
        discard(aside)
        note_replaced(out, None)
        print(f"fit: deleted the previous run {aside}")
    test = plan.results.get("test", {})
    scores = f"; {scores_line(test)}" if test else ""
    epochs = len(history.epochs)
    count = plural(epochs, "epoch")
    print(f"{history.status}: {count}; verdict {plan.results['verdict']['kind']}{scores}")
    averaged = plan.results.get("weight_average")
    if averaged:  # which weights the model ended with (`WeightAverage`)
        print(f"weights: {averaged_weights_line(averaged)}")
    print(f"wrote {out}{model_note(out)}")
    if history.status == "diverged":  # the record is written; say what it holds
        kept = (
            f"checkpoint.pt holds the weights of epoch {epochs}, the last good one"
            if epochs
            else "no trained weights were saved"
        )
        if aside is not None:  # a user's check: --force had deleted the good run it replaced
            kept += f"; the run it was to replace is kept in {aside}"
        raise RunFailure(
            f"the run diverged in epoch {epochs + 1} at max_lr {plan.max_lr:.3g}, also after "
            f"halving its LR; {out} holds its plan.json and history.json, and {kept}; run "
            "superconverge tune on this data for a max_lr that suits it"
        )
    return 0


def _epochs_saved(plan: Any, out: Path) -> int | None:
    """The epochs the fit of `plan` in `out` saved in its checkpoint.pt; None when `out` holds
    no checkpoint of this plan (a fit stopped in its first epoch saved none)."""
    from superconverge.training.checkpoint import CHECKPOINT, load_checkpoint

    path = out / CHECKPOINT
    try:
        if not plan.is_own_checkpoint(path):
            return None
        return int(load_checkpoint(path)["fit"]["epochs_done"])
    except Exception:  # unreadable: not one to continue
        return None


def _finished_fit(out: Path) -> bool:
    """Whether `out` holds a fit that finished: it writes plan.json last."""
    return (out / "plan.json").is_file() and (out / "history.json").is_file()


def _command(args: argparse.Namespace, then: str) -> str:
    """This command line without --force and --resume, then with `then` (one of them): what
    continues its run, or starts it again over what it left. A --plan inside the --out that a
    --force moved aside is named where it is now (`fit --plan DIR/plan.json --out DIR --force`
    replaces the tune run whole, its plan.json too: the line named a file no longer there)."""
    argv = [flag for flag in getattr(args, "argv", ["fit"]) if flag not in ("--force", "--resume")]
    moved = _moved_plan(args)
    if moved is not None:
        argv = [str(moved) if flag == str(args.plan) else flag for flag in argv]
        argv = [f"--plan={moved}" if flag == f"--plan={args.plan}" else flag for flag in argv]
    return shlex.join(["superconverge", *argv, then])


def _moved_plan(args: argparse.Namespace) -> Path | None:
    """Where --plan is now if the run it belonged to was moved aside with it, else None."""
    out = args.out or args.plan.parent / "refit"
    aside = replaced_run(out)
    if aside is None or args.plan.exists() or not (aside / args.plan.name).is_file():
        return None
    return aside / args.plan.name if args.plan.parent.resolve() == out.resolve() else None


def _kept(args: argparse.Namespace, plan: Any, out: Path, when: str = "") -> str:
    """What a stopped fit left in `out` and how to go on from it, `when` the user has done
    what it says first."""
    done = _epochs_saved(plan, out)
    aside = replaced_run(out)
    replaced = (
        "" if aside is None else f"; the run it replaces is in {aside}/ until this one finishes"
    )
    if done is None:  # stopped in its first epoch: no checkpoint yet
        # its history.json of no epoch is in the way of the same command: --force replaces it
        return (
            f"no checkpoint of an epoch was saved, nothing kept{replaced}; {when}start again "
            f"with: {_command(args, '--force')}"
        )
    return (
        f"{out / 'checkpoint.pt'} holds epoch {done} of {plan.epochs}{replaced}; {when}continue "
        f"with: {_command(args, '--resume')}"
    )


def _crashed(error: Exception, args: argparse.Namespace, plan: Any, out: Path) -> None:
    """A RunFailure naming what `out` kept and the command that continues, for a fit that
    failed mid-run (a read error of the data, out of memory, a bug) after an epoch's checkpoint
    was saved; nothing for usage errors, or when there is nothing to continue."""
    status, message = explain(error, args.parser)
    if status == EXIT_FAILURE and _epochs_saved(plan, out) is not None:
        raise RunFailure(f"{message}; {_kept(args, plan, out, 'once that is fixed, ')}") from error
    aside = replaced_run(out)
    if aside is not None:  # a --force that failed before an epoch ended: where the run it moved
        # aside is (the line said nothing of it)
        failure = RunFailure if status == EXIT_FAILURE else UsageError
        raise failure(f"{message}; the run it was to replace is kept in {aside}/") from error


def _check_resumable(args: argparse.Namespace, plan: Any, out: Path) -> None:
    """--resume needs this plan's checkpoint in `out` (a fit stopped before its first epoch
    ended saved none; another plan's is not continued)."""
    from superconverge.training.checkpoint import CHECKPOINT
    from superconverge.tuning.journal import JOURNAL

    if (out / JOURNAL).is_file():  # its checkpoint is the recipe's final run, not a fit's
        raise UsageError(
            f"--resume: {out} holds a tune run ({JOURNAL}); continue it with: superconverge "
            f"tune --resume {out}"
        )
    from superconverge.training.checkpoint import CheckpointError, load_checkpoint

    if (out / CHECKPOINT).is_file():
        try:
            load_checkpoint(out / CHECKPOINT)
        except CheckpointError as error:  # not "another plan's" (a user's check)
            raise RunFailure(
                f"--resume: {error}, so its epochs cannot be continued; start again with "
                f"{_command(args, '--force')} (it moves {out} aside, and deletes it once the new "
                "run finishes: copy its best.pt first to keep the best epoch's weights)"
            ) from error
    if _epochs_saved(plan, out) is None:
        settings = f"max_lr {plan.max_lr:.3g}, {plural(plan.epochs, 'epoch')}"
        what = (
            f"{out / CHECKPOINT} is another plan's, not one of --plan {args.plan} ({settings})"
            if (out / CHECKPOINT).is_file()
            else f"{out} holds no {CHECKPOINT} of --plan {args.plan} ({settings})"
        )
        raise UsageError(
            f"--resume: {what}; start again without --resume (--force replaces what is there)"
        )


def _refuse_unfinished_fit(args: argparse.Namespace, plan: Any, out: Path) -> None:
    """A fit of this plan that stopped in `out` is offered to resume, not only to --force
    (which would discard its epochs)."""
    from superconverge.tuning.journal import JOURNAL

    if args.force or _finished_fit(out) or (out / JOURNAL).is_file():  # a tune's: claim_out_dir
        return
    done = _epochs_saved(plan, out)
    if done is not None:
        raise UsageError(
            f"--out {out} holds a fit of this plan that did not finish (epoch {done} of "
            f"{plan.epochs}); continue it with: {_command(args, '--resume')}; or pass --force to "
            "replace it"
        )


def _factory(args: argparse.Namespace, plan: Any, splits: Any) -> Any:
    """The model builder: the plan's zoo model with its recorded options, or what --model (or
    a trusted plan) names."""
    from superconverge.models import IMAGE_SHAPES, MODELS, ModelFactory
    from superconverge.models.choice import model_options_for

    spec = args.model or plan.model
    if ":" in spec or (args.model is not None and args.model != plan.model):
        flag = "--model" if args.model is not None else f"--plan {args.plan}: model"
        return model_from_flag(spec, None, splits, flag)[0]
    if spec not in MODELS:
        raise UsageError(
            f"--plan {args.plan}: model must be one of {', '.join(MODELS)} or module:function, "
            f"got {spec!r}"
        )
    needed = IMAGE_SHAPES.get(spec)
    if needed is not None and tuple(splits.input_shape) != needed:
        raise UsageError(
            f"--plan {args.plan}: model {spec} needs {'x'.join(map(str, needed))} inputs; the "
            f"data has {'x'.join(map(str, splits.input_shape))}"
        )
    # sized for the data given now: the plan's options were sized for its own data (an mlp made
    # on digits has in_features 64; fit on MNIST needs 784)
    options = {
        **plan.model_options,
        **model_options_for(spec, splits.input_shape, splits.num_classes or 1),
    }
    resized = {k: (plan.model_options[k], v) for k, v in options.items()
               if k in plan.model_options and plan.model_options[k] != v}  # fmt: skip
    if resized:
        changes = ", ".join(f"{k} {new} (the plan's: {old})" for k, (old, new) in resized.items())
        print(f"fit: model {spec} sized for this data: {changes}")
    factory = ModelFactory(spec, options)
    try:
        factory()
    except (ValueError, TypeError) as error:
        raise UsageError(
            f"--plan {args.plan}: model_options {plan.model_options!r} do not build {spec} "
            f"({error})"
        ) from None
    return factory
