"""A run folder holds one run: an earlier run is moved aside, whole, before a new one writes.

`tune --force` over a finished run used to overwrite it file by file, so a kill in between left
the old plan and report next to the new checkpoint and history, and the old weights gone. Now
the earlier run's files go first into one dated subfolder, ``previous-<UTC time>/``: the folder
then holds either the old run (intact, moved) or the new one, never a mix of the two. Only the
files a run writes are moved; anything else the user keeps there stays put. Plain Python.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

from superconverge._files import LOCK_NAME, FolderBusyError, folder_holder

# every file a run (the recipe, its final Trainer, the CLI's report) leaves in its folder
RUN_FILES = (
    "journal.json",
    "checkpoint.pt",
    "best.pt",
    "model.pt",
    "history.json",
    "history.csv",
    "plan.json",
    "range_tests.json",
    "report.html",
    "report.md",
    "lr_find.png",
    "schedule.png",
    "losses.png",
    "short_runs.png",
    "refit",  # `fit --plan`'s default folder: a refit of this run's plan goes with it
    "results.json",  # `reproduce`'s
    "results.md",
    "accuracy.png",
)
# what a tune or fit run leaves: a trained model (and its own lr_find.png) that another
# command's --force (reproduce's, lr-find's) must not replace as its own earlier results
TRAINING_FILES = ("journal.json", "plan.json", "checkpoint.pt", "best.pt", "model.pt")
PREVIOUS = "previous-"  # prefix of the subfolders earlier runs are moved into
# `fit --force`'s note of the previous-* subfolder it moved the earlier run into (tune's is in
# its journal): only that one is deleted when the fit finishes, also after a --resume
REPLACES = ".replaces"
_STAGING = ".moving-aside"  # prefix of a subfolder still being filled (a kill may leave one)


def run_files(folder: str | Path) -> list[Path]:
    """The files of a run present in `folder`. Temporary files are not a run's: a dead
    writer's are removed by the next write of the same file (`write_atomically`).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "notes.txt").write_text("mine"), (folder / "plan.json").write_text("{}")
        >>> [p.name for p in run_files(folder)]
        ['plan.json']
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [entry for entry in sorted(folder.iterdir()) if entry.name in RUN_FILES]


def move_aside(folder: str | Path) -> Path | None:
    """Move the run in `folder` into ``folder/previous-<UTC time>/``; None when there is none.
    Its ``refit/`` (what ``fit --plan`` made of its plan) goes with it; one that a live ``fit``
    is writing is refused (`FolderBusyError`) before anything moves.

    Each file moves by an atomic rename inside one file system. The subfolder is filled under a
    hidden name and renamed when complete; a move that a kill interrupted is completed by the
    next call, into the same subfolder, so one earlier run never ends up split in two.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "checkpoint.pt").write_bytes(b"old weights")
        >>> aside = move_aside(folder)
        >>> aside.name.startswith("previous-"), (aside / "checkpoint.pt").read_bytes()
        (True, b'old weights')
        >>> run_files(folder), move_aside(folder)
        ([], None)
    """
    folder = Path(folder)
    unfinished = sorted(folder.glob(f"{_STAGING}-*")) if folder.is_dir() else []
    files = run_files(folder)
    if not files and not unfinished:
        return None
    for path in files:  # a refit being written is not to be moved from under its writer
        holder = folder_holder(path) if path.is_dir() else None
        if holder is not None:
            raise FolderBusyError(
                f"{path} is being written by {holder}; wait for it to finish before replacing "
                f"the run in {folder}"
            )
    staging = unfinished[0] if unfinished else _new_staging(folder)
    for path in files:
        os.replace(path, staging / path.name)
    final = folder / (PREVIOUS + staging.name[len(_STAGING) + 1 :])
    os.replace(staging, final)
    _sync(folder)
    return final


def discard(aside: Path) -> None:
    """Delete a run moved aside by `move_aside` (once the run that replaced it has finished)."""
    if aside.name.startswith(PREVIOUS) and aside.is_dir():
        shutil.rmtree(aside)


def move_back(folder: Path, aside: Path) -> None:
    """Put the run `move_aside` moved into `aside` back into `folder` (whose run, replacing it,
    was refused before it had measured anything); a name taken in `folder` meanwhile stays
    in `aside`, which is then kept."""
    for path in sorted(aside.iterdir()):
        target = folder / path.name
        if not target.exists():
            os.replace(path, target)
    with contextlib.suppress(OSError):  # not empty: what could not go back stays there
        aside.rmdir()
    _sync(folder)


def note_replaced(folder: Path, aside: Path | None) -> None:
    """Record in `folder` that the run now starting there replaces `aside` (None: nothing)."""
    from superconverge._files import write_text_atomically

    mark = folder / REPLACES
    if aside is None:
        mark.unlink(missing_ok=True)
    else:
        write_text_atomically(mark, aside.name)


def is_aside_name(name: object) -> bool:
    """Whether `name` can name a run moved aside: ``previous-...``, one folder name (no path)."""
    return (
        isinstance(name, str)
        and name.startswith(PREVIOUS)
        and Path(name).name == name
        and "\\" not in name
    )


def replaced_run(folder: Path) -> Path | None:
    """The previous-* subfolder of `folder` that its run (a `fit --force`) replaces and is to
    delete when it finishes, as `note_replaced` recorded it; None when it replaces none, or the
    note names anything but a subfolder of `folder` called previous-*."""
    try:
        name = (folder / REPLACES).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    aside = folder / name
    return aside if is_aside_name(name) and aside.is_dir() else None


def is_empty_but_for_us(folder: str | Path) -> bool:
    """True when `folder` is missing or holds nothing but the lock, runs moved aside (and the
    note of the one a fit replaces) and temporary files."""
    folder = Path(folder)
    if not folder.is_dir():
        return True
    return all(
        entry.name in (LOCK_NAME, REPLACES)
        or (entry.name.startswith(".") and entry.name.endswith(".partial"))  # a dead writer's
        or (entry.is_dir() and entry.name.startswith(PREVIOUS))
        for entry in folder.iterdir()
    )


def _new_staging(folder: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for suffix in ("", *(f"-{n}" for n in range(2, 100))):
        name = f"{stamp}{suffix}"
        if not (folder / (PREVIOUS + name)).exists():
            staging = folder / f"{_STAGING}-{name}"
            staging.mkdir()
            return staging
    raise FileExistsError(f"{folder} already holds 99 runs moved aside at {stamp}")


def _sync(folder: Path) -> None:
    """Make the renames durable (a power cut after this keeps the new names)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: no directory handles
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
