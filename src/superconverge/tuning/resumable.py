"""What makes the recipe safe to interrupt: one writer per run folder, an earlier run moved
aside (never mixed with the new one), the journal opened (or read back to resume), the data
checked before any training time is spent, and Ctrl-C answered with how to resume.

What a resume covers: every record in the journal (each stage's decision and evidence, each
short run and range test inside a stage) is read back, not recomputed; the stage that was cut
short is redone from its last recorded short run; the final run continues from its last epoch
checkpoint (a kill inside its first epoch redoes that epoch). On the CPU the resumed recipe
ends with the same decisions and the same weights as an uninterrupted one. Not covered: an
automatic batch size measured by timing is measured again if its stage was cut short (it may
then differ), and the settings must be the ones the run was started with (checked).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import TensorDataset, default_collate

from superconverge._display import plural
from superconverge._files import FolderLock
from superconverge._run_folder import discard, move_aside, move_back, run_files
from superconverge.batches import check_first_batch, forward, split_batch
from superconverge.data.checks import check_array_data, check_batch, class_count
from superconverge.data.datasets import ArrayData
from superconverge.data.pipelines import CollateError, collate_error
from superconverge.data.sources import DataSource, as_source
from superconverge.metrics import Metric, check_metrics
from superconverge.training.checkpoint import CHECKPOINT
from superconverge.training.device import to_device
from superconverge.tuning.journal import FREE_RECORDS, JOURNAL, Journal

logger = logging.getLogger(__name__)


def resume_hint(folder: str | Path) -> str:
    """How to continue an interrupted run, for people (Python and the CLI)."""
    return (
        f"continue it with tune(..., out_dir={str(folder)!r}, resume=True) and the same "
        f"arguments, or `superconverge tune --resume {folder}` for a run the CLI started"
    )


@contextlib.contextmanager
def recipe_folder(
    out_dir: str | Path | None,
    settings: dict[str, Any],
    *,
    resume: bool = False,
    overwrite: bool = False,
    command: Sequence[str] | None = None,
) -> Iterator[Journal]:
    """Hold `out_dir` for one run of the recipe and yield its journal.

    The folder is locked first (a second writer fails at once, naming the first). Then:
    with `resume`, the journal there is read back (its settings must match); otherwise the
    folder must hold no earlier run, or, with `overwrite`, the earlier run is moved whole into
    ``previous-<time>/`` and deleted once this run has finished (kept where the body set
    ``journal.keep_replaced``: a run that diverged). A KeyboardInterrupt leaves
    with a note saying how to resume. Without `out_dir` the journal only computes.

    Raises:
        FolderBusyError: another process is writing to `out_dir`.
        FileExistsError: `out_dir` holds an earlier run and neither `resume` nor `overwrite`.
        FileNotFoundError, ValueError: `resume` without a journal, or with other settings.
    """
    if out_dir is None:
        if resume:
            raise ValueError("resume=True needs out_dir: the folder of the run to resume")
        yield Journal(None, settings)
        return
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"out_dir {folder} is a file, not a folder")
    with FolderLock(folder):
        if resume:
            journal = Journal.resume(folder, settings)
            logger.warning("resuming %s: %s", folder, journal.summary())
        else:
            earlier = run_files(folder)
            if earlier and not overwrite:
                names = ", ".join(p.name for p in earlier[:4])
                raise FileExistsError(
                    f"out_dir {folder} already holds a run ({names}); pass resume=True to "
                    "continue it, overwrite=True to replace it (it is moved aside first), or "
                    "choose another out_dir"
                )
            aside = move_aside(folder) if earlier else None
            if aside is not None:
                logger.warning(
                    "moved the previous run to %s; it is deleted once this run finishes", aside
                )
            journal = Journal.start(
                folder, settings, command=command, replaces=None if aside is None else aside.name
            )
        try:
            yield journal
        except KeyboardInterrupt as error:
            error.add_note(interrupted_note(journal))
            if not journal.command:  # the CLI says it in its one error line
                logger.warning("%s", interrupted_note(journal))
            raise
        except BaseException as error:
            if not resume and _undo_if_nothing_measured(folder, journal):
                error.add_note(f"{PUT_BACK}{folder}")  # the CLI's line must not offer a resume
            raise
        journal.finish()
        if journal.replaces and journal.keep_replaced:  # a user's check: a diverged --force
            # run deleted the good one it replaced
            logger.warning(
                "kept the previous run %s: this run's final run diverged (delete it when you no "
                "longer need it)",
                folder / journal.replaces,
            )
        elif journal.replaces:
            aside = folder / journal.replaces
            discard(aside)
            logger.warning("deleted the previous run %s, replaced by this finished one", aside)


PUT_BACK = "superconverge: nothing was measured; the run it was to replace is back in "


def _undo_if_nothing_measured(folder: Path, journal: Journal) -> bool:
    """A new run that failed before it measured anything (its journal holds only
    `FREE_RECORDS`, the folder nothing else of it): its journal goes, and the run it was to
    replace (``overwrite``, ``--force``) comes back from ``previous-*/``. A usage error found
    by the first batch (a loader factory that ignores the batch size) left the finished run
    moved aside, and a journal that refused the corrected command. Whether a run was put back."""
    if set(journal.records) - FREE_RECORDS:
        return False
    aside = folder / journal.replaces if journal.replaces else None
    others = [p for p in run_files(folder) if p.name != JOURNAL]
    if others:  # the final run's checkpoint, a history: something was trained
        return False
    (folder / JOURNAL).unlink(missing_ok=True)
    if aside is None or not aside.is_dir():
        return False
    move_back(folder, aside)
    logger.warning("put the previous run back from %s: this run measured nothing", aside)
    return True


def kept_on_interrupt(journal: Journal) -> str:
    """What an interrupted run left for its resume, in words: the stages decided, the
    measurements recorded (range tests, short runs) and the final run's checkpoint if it has
    one.

    Example:
        >>> kept_on_interrupt(Journal(None, {}, records={"batch_size": 16, "short_run/a": {}}))
        'the stages decided (batch_size) and 1 measurement (range tests, short runs)'
    """
    stages, measured = journal.recorded()
    kept = [f"the stages decided ({', '.join(stages)})"] if stages else []
    if measured:
        kept.append(f"{plural(measured, 'measurement')} (range tests, short runs)")
    if journal.folder is not None and (Path(journal.folder) / CHECKPOINT).is_file():
        kept.append("the final run's checkpoint of its last finished epoch")
    if not kept:
        return "nothing measured yet"
    return ", ".join(kept[:-1]) + (" and " if len(kept) > 1 else "") + kept[-1]


def replaced_run_note(journal: Journal) -> str:
    """Where the run this one replaces (``overwrite``/``--force``) waits, or "" when none.

    Example:
        >>> replaced_run_note(Journal(None, {}, replaces="previous-20261202T101500Z"))
        '; the run it replaces is in previous-20261202T101500Z/ until this one finishes'
    """
    if not journal.replaces:
        return ""
    where = Path(journal.folder) / journal.replaces if journal.folder else Path(journal.replaces)
    return f"; the run it replaces is in {where}/ until this one finishes"


def interrupted_note(journal: Journal) -> str:
    return (
        f"tune was interrupted: {kept_on_interrupt(journal)} kept in {journal.folder}"
        f"{replaced_run_note(journal)}; {resume_hint(journal.folder or '.')}"
    )


def _loss_name(loss_fn: Any) -> str:
    """A loss as the journal and a study record it: its name, and a ``functools.partial``'s
    arguments (every partial was 'partial': a resume with another label_smoothing was taken).

    Example:
        >>> import functools
        >>> _loss_name(functools.partial(nn.functional.cross_entropy, label_smoothing=0.1))
        'partial(cross_entropy, label_smoothing=0.1)'
    """
    if isinstance(loss_fn, functools.partial):
        parts = [_loss_name(loss_fn.func), *map(_argument, loss_fn.args)]
        parts += [f"{key}={_argument(value)}" for key, value in sorted(loss_fn.keywords.items())]
        return f"partial({', '.join(parts)})"[:500]
    return str(getattr(loss_fn, "__qualname__", type(loss_fn).__name__))


def _argument(value: Any) -> str:
    """A loss argument as the same in every process: a plain value by repr, a tensor by a digest
    of its values (torch's repr elides large ones), a function by its name, anything else by
    its type (a default repr holds a memory address, which differs per process: a resume, or a
    study worker, was refused though nothing had changed)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(map(_argument, value)) + ")"
    if isinstance(value, torch.Tensor):
        data = value.detach().to("cpu", copy=True).contiguous().reshape(-1)
        digest = hashlib.sha256(data.view(torch.uint8).numpy().tobytes()).hexdigest()[:16]
        return f"tensor({list(value.shape)}, {str(value.dtype).removeprefix('torch.')}, {digest})"
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}".lstrip(".")
    return type(value).__name__


def tune_settings(
    model: nn.Module,
    train_data: Any,
    val_data: Any,
    test_data: Any,
    *,
    loss_fn: Callable[..., Any],
    augment: Any,
    **arguments: Any,
) -> dict[str, Any]:
    """What the journal's records depend on, for the check on resume: the recipe's arguments,
    the data (sizes and, for in-memory data, sums of the tensors) and the model's architecture
    (parameter names and shapes). Cheap: no training, one pass over in-memory tensors."""
    signature = {name: list(t.shape) for name, t in model.state_dict().items()}
    digest = hashlib.sha256(json.dumps(signature, sort_keys=True).encode()).hexdigest()[:16]
    return {
        **arguments,
        "model": f"{type(model).__name__} {digest}",
        "loss_fn": _loss_name(loss_fn),
        "augment": None if augment is None else repr(augment),
        "train_data": _data_fingerprint(train_data),
        "val_data": _data_fingerprint(val_data),
        "test_data": _data_fingerprint(test_data),
    }


def _data_fingerprint(data: Any) -> Any:
    if data is None:
        return None
    if isinstance(data, ArrayData):
        return {
            "samples": len(data),
            "inputs": [list(data.inputs.shape[1:]), _sum(data.inputs)],
            "targets": [list(data.targets.shape[1:]), _sum(data.targets)],
        }
    try:
        return {"samples": len(data)}
    except TypeError:
        return {"samples": None}


def _sum(tensor: torch.Tensor) -> float:
    if tensor.is_complex():
        tensor = tensor.abs()
    # float64: the same bits for the same data; rounded so a JSON round trip cannot change it
    return round(float(tensor.double().sum()), 6)


def check_recipe_data(
    model: nn.Module,
    splits: Sequence[tuple[str, Any]],
    device: torch.device | None = None,
    metrics: Sequence[Metric] = (),
    loss_fn: Callable[..., torch.Tensor] | None = None,
) -> None:
    """Before any training: one forward pass of `model` on `CHECK_SAMPLES` training samples
    tells the number of classes and runs the `metrics` (a metric that raises fails here, not
    after the range test); then each split's labels must fit it and its inputs be finite; last,
    `loss_fn` must take the outputs and targets (`check_first_batch`: a shape that does not fit
    is named with its fix here, not at the range test's first step).

    `splits` hold what the user passed or its `DataSource`. In-memory data (`ArrayData`, an
    ``(inputs, targets)`` pair, a ``TensorDataset`` of two tensors) is scanned whole; a
    ``Dataset``'s items, drawn at random, are collated as its loader would (its ``collate_fn``); a
    loader is read for its first batch from a fresh iterator (never a stream's own: reading it
    would lose the batch); the batch hook splits batches that are not pairs.

    Raises:
        DataError: naming the split, the sample, the value and what to do. ValueError: a
        metric that raises or returns no number (`check_metrics`).
    """
    sources = [(name, None if data is None else _source(data, name)) for name, data in splits]
    first = _first_batch(sources[0][1], CHECK_SAMPLES, drawn=True)
    if first is None:
        return
    inputs, targets = first
    classes, outputs = None, None
    if device is not None:  # where the runs train: a loss may hold tensors there (class weights)
        with contextlib.suppress(Exception):  # a model that cannot move: checked where it is
            model = model.to(device)
    parameter = next(model.parameters(), None)
    where = parameter.device if parameter is not None else device
    placed = (
        (inputs, targets)
        if where is None
        else (to_device(inputs, where), to_device(targets, where))
    )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outputs = forward(model, placed[0])
        classes = class_count(outputs, targets)
    except Exception:  # a model that cannot take the data: the trainer's shape check says why
        logger.debug("data check: the model did not take the samples", exc_info=True)
    finally:
        model.train(was_training)
    if metrics and isinstance(outputs, torch.Tensor) and outputs.shape[:1] == targets.shape[:1]:
        check_metrics(metrics, outputs.detach().cpu(), targets)
    others = []  # the other splits' first samples: through the model and loss after training's
    for index, (name, source) in enumerate(sources):
        whole = None if source is None else _in_memory(source)
        batch = None
        if whole is not None:
            check_array_data(whole, name, classes)
            batch = (whole.inputs[:CHECK_SAMPLES], whole.targets[:CHECK_SAMPLES])
        elif source is not None:
            # a loader's first batch is the one read above (not read again: its workers would
            # start again); a Dataset's first items, in order: row k is item k
            again = index == 0 and source.kind == "loader"
            batch = first if again else _first_batch(source, CHECK_SAMPLES)
            if batch is not None:
                check_batch(*batch, name, classes)
        if index > 0 and batch is not None:
            others.append((name, batch))
    if loss_fn is not None and outputs is None:  # the model cannot take the inputs: say so
        # now, before the journal holds a stage (a user's check: it failed at the final run,
        # whose resume the fixed model's new shape then refused)
        check_first_batch(model, loss_fn, *placed, name=sources[0][0])
    if loss_fn is not None and outputs is not None:  # the model took the inputs
        check_first_batch(model, loss_fn, *placed, name=sources[0][0])
        # test_data's inputs were first fed to the model after the whole final run (a user's
        # check: 6 epochs trained, then "cannot take the data inputs", and no plan returned)
        for name, (inputs, targets) in others:
            if where is not None:
                inputs, targets = to_device(inputs, where), to_device(targets, where)
            check_first_batch(model, loss_fn, inputs, targets, name=name)


CHECK_SAMPLES = 32  # the samples the data check reads (a training batch's worth)


def _some(total: int, count: int, drawn: bool) -> torch.Tensor:
    """The first `count` of `total` indices, or `count` at random, the same every call (the
    check must not depend on the global RNG, nor move it)."""
    if not drawn:
        return torch.arange(min(total, count))
    return torch.randperm(total, generator=torch.Generator().manual_seed(0))[:count]


def _source(data: Any, name: str) -> DataSource | None:
    if isinstance(data, DataSource):
        return data
    try:
        return as_source(data, name)
    except (TypeError, ValueError):  # not data the recipe can read: tune's own checks say why
        return None


def _in_memory(source: DataSource) -> ArrayData | None:
    """The whole data set when it is two tensors in memory (cheap to scan), else None."""
    if source.kind == "arrays":
        return cast(ArrayData, source.data)
    # exactly a TensorDataset (a subclass may change what an item is) read as pairs (a
    # batch_fn may read its tensors otherwise, e.g. ids whose labels it looks up)
    data = source.data
    if type(data) is TensorDataset and len(data.tensors) == 2 and source.batch_fn is None:
        inputs, targets = data.tensors
        return ArrayData(inputs, targets)
    return None


def _first_batch(
    source: DataSource | None, count: int, drawn: bool = False
) -> tuple[Any, torch.Tensor] | None:
    """The first `count` samples, or with `drawn` `count` drawn at random (seeded: sorted data
    still gives a batch like a shuffled loader's, on which a metric that needs two classes can
    run), of tensors or a Dataset; the first batch of a loader; as ``(inputs, targets)``. None
    where reading one would consume the user's data or cannot be done."""
    if source is None:
        return None
    whole = _in_memory(source)
    if whole is not None:
        picked = _some(len(whole), count, drawn)
        return whole.inputs[picked], whole.targets[picked]
    data = source.data
    try:
        if source.kind == "dataset":
            items = [data[i] for i in _some(len(data), count, drawn).tolist()]
            if not items:
                return None
            try:
                batch = (source.options.collate_fn or default_collate)(items)
            except Exception as error:  # said now, not by the final run after the stages
                raise collate_error(source.name, data, error) from error
        elif source.kind == "loader":
            batches = iter(data)
            if batches is data:  # an iterator: reading would lose the batch
                return None
            batch = next(batches)
        else:  # a factory or a stream: building or reading one costs or consumes
            return None
    except CollateError:
        raise
    except Exception:  # the loop's own first-batch check names what is wrong
        logger.debug("data check: no first batch of %s", source.name, exc_info=True)
        return None
    # a batch that is no pair (dict batches without a target key, a batch_fn that raises):
    # said now, before the journal holds a stage (a user's check: it was said by the final
    # run, and the corrected command was then refused by the journal it had left)
    inputs, targets = split_batch(batch, source.batch_fn, source.name)
    return (inputs, targets) if isinstance(targets, torch.Tensor) else None


def remembered_runs(
    journal: Journal,
    prefix: str,
    labels: Sequence[str],
    jobs: Sequence[Any],
    run_many: Callable[[list[Any]], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Short runs, each recorded as ``prefix/label`` as soon as its batch of jobs is done; on
    resume only the runs not yet recorded are run. Returns the records, in `labels` order."""
    keys = [f"{prefix}/{label}" for label in labels]
    missing = [i for i, key in enumerate(keys) if key not in journal]
    if missing:
        results = run_many([jobs[i] for i in missing])
        for i, result in zip(missing, results, strict=True):
            journal.record(keys[i], result)
    return [journal.get(key) for key in keys]


__all__ = [
    "JOURNAL",
    "check_recipe_data",
    "interrupted_note",
    "recipe_folder",
    "remembered_runs",
    "resume_hint",
    "tune_settings",
]
