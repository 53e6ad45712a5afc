"""The recipe's journal: each stage's decision and evidence, saved the moment it is made.

`tune` used to keep everything in memory until its very end: a kill (or Ctrl-C) in the final
run lost every decision. Now each completed stage (and each short run inside a stage) is a
record in ``journal.json`` in the run folder, rewritten atomically after every record, so a
kill at any moment leaves the journal as it was after the last completed record. Resuming
(``tune(..., resume=True)``, ``superconverge tune --resume DIR``) reads the records back
instead of recomputing them, after checking that the settings are the ones that made them.
Plain Python (no torch): the records are JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from superconverge._display import plural
from superconverge._files import write_text_atomically
from superconverge._json import decode_nonfinite, encode_nonfinite
from superconverge.tuning.settings import RecipeSettings

JOURNAL = "journal.json"
# records that cost nothing to decide again: the batch size (not timed on the CPU) and the
# in-run search's setup (a rule, no measurement). A journal holding only them is not worth a
# resume (a user's check: a run refused with a usage error after both were decided was kept,
# and the corrected command refused as "a tune that did not finish")
FREE_RECORDS = frozenset({"batch_size", "lr_search"})
FORMAT_VERSION = 1


class Journal:
    """Ordered records ``key -> JSON value``, saved atomically in ``folder/journal.json``.

    With ``folder=None`` nothing is saved (a run without an output folder) and `remember`
    simply computes. Records come back as JSON gives them: lists for tuples, string keys.

    Args:
        folder: the run folder, or None.
        settings: what made the records (epochs, seed, data sizes, ...); a resume must match.
        command: the command line that started the run, for ``superconverge tune --resume``.
        replaces: the subfolder an earlier run was moved into, deleted when this one finishes.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> journal = Journal.start(folder, {"epochs": 2})
        >>> journal.remember("batch_size", lambda: 32)
        32
        >>> again = Journal.resume(folder, {"epochs": 2})
        >>> again.remember("batch_size", lambda: 64)  # recorded: not computed again
        32
        >>> again.keys()
        ['batch_size']
    """

    def __init__(
        self,
        folder: str | Path | None,
        settings: dict[str, Any],
        *,
        records: dict[str, Any] | None = None,
        command: Sequence[str] | None = None,
        replaces: str | None = None,
        started: str | None = None,
        finished: bool = False,
        elapsed_s: float = 0.0,
        stage_at_s: dict[str, float] | None = None,
    ) -> None:
        self.folder = None if folder is None else Path(folder)
        self.settings = _plain(settings)
        self.records: dict[str, Any] = dict(records or {})
        self.command = None if command is None else list(command)
        self.replaces = replaces
        # this process's run did not succeed (its final run diverged): the run it replaces is
        # kept, not deleted when it finishes
        self.keep_replaced = False
        self.started = started or time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        self.finished = finished
        # seconds the run's earlier processes spent (a resume's), and when each stage was
        # recorded on that clock: the stage they left unfinished is charged what they spent
        # on it after the last stage they recorded (`record`)
        self.elapsed_before = float(elapsed_s)
        self.stage_at_s = dict(stage_at_s or {})
        self._opened = time.perf_counter()
        self._carried = max(0.0, self.elapsed_before - max(self.stage_at_s.values(), default=0.0))

    @property
    def path(self) -> Path | None:
        return None if self.folder is None else self.folder / JOURNAL

    # ------------------------------------------------------------------ opening
    @classmethod
    def start(
        cls,
        folder: str | Path | None,
        settings: dict[str, Any],
        *,
        command: Sequence[str] | None = None,
        replaces: str | None = None,
    ) -> Journal:
        """A new, empty journal, saved at once (so even a run killed in its first second
        leaves a folder that says what it was)."""
        journal = cls(folder, settings, command=command, replaces=replaces)
        journal.save()
        return journal

    @classmethod
    def load(cls, folder: str | Path) -> Journal:
        """The journal saved in `folder`.

        Raises:
            FileNotFoundError: `folder` holds no journal (no run was started there, or one
                from before journals existed).
            ValueError: the file is not a journal (it names the file).
        """
        path = Path(folder) / JOURNAL
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder} holds no {JOURNAL}: there is no tune run to resume there"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} cannot be read as a tune journal ({error})") from error
        if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path} is not a tune journal (format {FORMAT_VERSION})")
        _check_fields(path, data)
        return cls(
            folder,
            decode_nonfinite(data.get("settings", {})),
            records=decode_nonfinite(data.get("records", {})),
            command=data.get("command"),
            replaces=data.get("replaces"),
            started=data.get("started"),
            finished=bool(data.get("finished", False)),
            elapsed_s=_seconds(data.get("elapsed_s")),
            stage_at_s={
                str(key): _seconds(value) for key, value in (data.get("stage_at_s") or {}).items()
            }
            if isinstance(data.get("stage_at_s"), dict)
            else None,
        )

    @classmethod
    def resume(cls, folder: str | Path, settings: dict[str, Any]) -> Journal:
        """`load`, then check that `settings` are the ones the records were made with.

        Raises:
            ValueError: a setting differs; the message names it with both values.
        """
        journal = cls.load(folder)
        journal.check_settings(settings)
        return journal

    def check_settings(self, settings: dict[str, Any]) -> None:
        differ = settings_differences(self.settings, settings)
        if differ:
            raise SettingsMismatch(
                differ,
                f"{self.folder} holds a tune run made with other settings ({'; '.join(differ)}); "
                "resume it with the settings it was started with, or start a new run "
                "(overwrite=True / --force moves this one aside)",
            )

    # ------------------------------------------------------------------ records
    def __contains__(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str, default: Any = None) -> Any:
        return self.records.get(key, default)

    def keys(self) -> list[str]:
        return list(self.records)

    @property
    def ranks(self) -> int:
        """The processes the run trains on (torchrun's ranks, ``world_size``; 1 without)."""
        ranks = self.settings.get("world_size", 1)
        return ranks if isinstance(ranks, int) and ranks > 1 else 1

    def record(self, key: str, value: Any) -> Any:
        """Add (or replace) one record and save the journal; returns the record as it will be
        read back on resume (JSON's lists for tuples), so that a run that recorded a value and
        one that resumed from it go on with the same thing."""
        if "/" not in key:  # a stage: when, and what earlier processes spent on it
            if self._carried and isinstance(value, dict) and "seconds" in value:
                value = {**value, "seconds": float(value["seconds"]) + self._carried}
                self._carried = 0.0
            self.stage_at_s[key] = self.elapsed()
        self.records[key] = _plain(value)
        self.save()
        return self.records[key]

    def elapsed(self) -> float:
        """Seconds the run has spent: its earlier processes' (a resume's) and this one's since
        the journal was opened."""
        return self.elapsed_before + time.perf_counter() - self._opened

    def remember(self, key: str, compute: Callable[[], Any]) -> Any:
        """The record `key` if it was made before, else ``compute()`` recorded; either way the
        value as the journal holds it."""
        if key in self.records:
            return self.records[key]
        return self.record(key, compute())

    def forget(self, key: str) -> None:
        """Drop a record (e.g. a final-run attempt that is redone) and save."""
        if self.records.pop(key, None) is not None:
            self.save()

    def finish(self) -> None:
        """Mark the run finished (a resume then has nothing left to do but report)."""
        self.finished = True
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        data = {
            "format": FORMAT_VERSION,
            "started": self.started,
            "finished": self.finished,
            "settings": encode_nonfinite(self.settings),
            "command": self.command,
            "replaces": self.replaces,
            "elapsed_s": round(self.elapsed(), 3),
            "stage_at_s": {key: round(at, 3) for key, at in self.stage_at_s.items()},
            "records": encode_nonfinite(self.records),
        }
        write_text_atomically(self.path, json.dumps(data, indent=1, allow_nan=False))

    def recorded(self) -> tuple[list[str], int]:
        """The stages decided (their keys, in order) and how many measurements (range tests,
        short runs: keys with a ``/``) are recorded."""
        stages = [key for key in self.keys() if "/" not in key]
        return stages, len(self.keys()) - len(stages)

    def summary(self) -> str:
        """One line for people: what is done (the stages by name, the measurements counted).

        Example:
            >>> Journal(None, {}, records={"batch_size": 16, "short_run/a": {}},
            ...         started="2026-12-02 05:00:00 UTC").summary()
            'tune run started 2026-12-02 05:00:00 UTC, unfinished; recorded: batch_size and 1 measurement (range tests, short runs)'
        """
        stages, measured = self.recorded()
        done = ", ".join(stages)
        if measured:
            counted = f"{plural(measured, 'measurement')} (range tests, short runs)"
            done = f"{done} and {counted}" if done else counted
        state = "finished" if self.finished else "unfinished"
        return f"tune run started {self.started}, {state}; recorded: {done or 'nothing yet'}"


def settings_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Each setting that differs, for people: ``"epochs 3 there, 5 now"``; `current` is taken
    as JSON would hold it, as `recorded` is. The recipe's constants (``settings``) are compared
    one by one, and a constant added since the run was recorded does not differ while it has
    its default, so a run interrupted before an upgrade resumes after it; the stages not yet
    recorded then follow the new default (``weight_decay_runs``'s skips the weight-decay runs
    of a short run that shows no overfitting, which the earlier version ran; the final-run
    extension needs short-run records with a training loss, which earlier runs lack, so it
    does not trigger on them)."""
    now = _plain(current)
    differ = []
    keys = set(recorded) | set(now)
    if "world_size" not in recorded:  # a journal of one process, or of torchrun ranks before
        keys.discard("world_size")  # journals recorded them: told apart by nothing, as before
    for key in sorted(keys):
        there, here = recorded.get(key), now.get(key)
        if key == "settings" and isinstance(there, dict) and isinstance(here, dict):
            # a constant added since the run was recorded: its default, what the earlier did
            # (except the LR search: a run recorded before it had one searched by short runs)
            filled = {**_plain(asdict(RecipeSettings())), "lr_search": "short_runs", **there}
            differ += [f"settings.{line}" for line in settings_differences(filled, here)]
        elif there != here:
            differ.append(
                f"{key} {recorded.get(key, 'unset')!r} there, {now.get(key, 'unset')!r} now"
            )
    return differ


class SettingsMismatch(ValueError):
    """A resume with other settings than the journal's; `differences` says which, in words."""

    def __init__(self, differences: list[str], message: str) -> None:
        super().__init__(message)
        self.differences = differences


def _check_fields(path: Path, data: dict[str, Any]) -> None:
    """A ValueError naming `path` and the field, for a journal edited by hand (or copied badly)
    whose fields are not what a run writes: ``replaces`` named any folder called previous-*,
    anywhere (a resume then deleted it), and a string ``command`` was split into letters."""
    from superconverge._run_folder import PREVIOUS, is_aside_name

    replaces = data.get("replaces")
    if replaces is not None and not is_aside_name(replaces):
        raise ValueError(
            f"{path}: replaces must be null or the name of a {PREVIOUS}* subfolder of the run "
            f"folder, got {replaces!r}"
        )
    command = data.get("command")
    if command is not None and not (
        isinstance(command, list) and all(isinstance(flag, str) for flag in command)
    ):
        raise ValueError(f"{path}: command must be null or a list of flags, got {command!r}")
    for name in ("settings", "records"):
        if not isinstance(data.get(name, {}), dict):
            raise ValueError(
                f"{path}: {name} must be a JSON object, got {type(data[name]).__name__}"
            )


def _seconds(value: Any) -> float:
    """A saved count of seconds; 0 for a journal from before they were saved (or a bad one)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return 0.0


def _plain(value: Any) -> Any:
    """`value` as JSON holds it (tuples as lists, NaN/inf as strings); fails early, naming the
    type, on anything JSON cannot hold, so a bad record is never half-saved."""
    encoded = encode_nonfinite(value)
    try:
        return decode_nonfinite(json.loads(json.dumps(encoded, allow_nan=False)))
    except (TypeError, ValueError) as error:
        raise TypeError(f"a journal record must be JSON data: {error}") from error
