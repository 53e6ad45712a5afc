"""The recipe's short runs as trials of an Optuna study in shared storage, so that any number of
processes, on any machines that reach the storage, can run them.

The process that runs `tune(..., study=URL)` is the coordinator: each time a stage needs short
runs it enqueues one trial per run (its settings in the trial's user attributes), works on them
itself, and makes the stage's decision once every result is in the study. Workers
(``tune(..., study=URL, join=True)``, ``superconverge tune --join URL``) take waiting trials and run them. Optuna does
the bookkeeping: a waiting trial goes to exactly one process (the storage's WAITING -> RUNNING
update), a running trial's process records a heartbeat, and a trial whose heartbeat stops (a
killed worker) is failed and enqueued again (`RetryFailedTrialCallback`), `retries` times at
most; after that the coordinator stops with an error naming it. A trial stopped by Ctrl-C or
SIGTERM is marked interrupted and enqueued again, not counted as lost. A trial that raised is
failed with its error and stops the coordinator with that error: nothing is lost silently.

A trial already complete in the study (a coordinator restarted with the same settings) is read
back, not run again. Storage: Optuna's RDB storage (``sqlite:///path.db``, PostgreSQL, MySQL),
the one with heartbeats. Optuna is an optional dependency (the ``[optuna]`` extra).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from superconverge._json import decode_nonfinite, encode_nonfinite
from superconverge.tuning.journal import settings_differences

logger = logging.getLogger(__name__)
STUDY_NAME = "superconverge-tune"
# the coordinator's states, in the study: workers run trials while it is searching
SEARCHING, SEARCHED, STOPPED = "searching", "searched", "stopped"
# the coordinator's own heartbeat, a study attribute ("host:pid n") it rewrites every heartbeat
# while it searches: a worker that sees it unchanged for `grace` seconds (its own clock; no
# clocks compared across machines) knows the coordinator is gone without having said so
COORDINATOR_BEAT = "coordinator_beat"
JOIN_WAIT_S = 600.0  # how long a worker waits for the coordinator to create the study
STORAGE_ATTEMPTS = 5  # tries at opening the storage (a new SQLite file's tables race)


class TrialError(RuntimeError):
    """A short run failed in a worker (its error), or was lost more often than retried."""


class TrialStudy:
    """An Optuna study holding one `tune`'s short runs as trials.

    Args:
        url: an Optuna RDB storage URL (``sqlite:///runs/x/study.db``, ``postgresql://...``).
        name: the study's name in that storage (several tunes may share one database).
        heartbeat: seconds between a running trial's heartbeats.
        grace: seconds without a heartbeat after which a running trial counts as lost.
        retries: how often a lost trial is enqueued again.
        poll: seconds between looks at the study while waiting.
        work: whether the coordinator runs trials too (False: it only enqueues and decides,
            e.g. on a machine without an accelerator).

    Example (coordinator and worker, each in its own process)::

        plan = sc.tune(model_fn, train, val, epochs=5, study="sqlite:///study.db")
        sc.tune(model_fn, train, val, epochs=5, study="sqlite:///study.db", join=True)  # same
    """

    def __init__(
        self,
        url: str,
        name: str = STUDY_NAME,
        *,
        heartbeat: float = 10.0,
        grace: float = 60.0,
        retries: int = 2,
        poll: float = 0.5,
        work: bool = True,
    ) -> None:
        if not isinstance(url, str) or "://" not in url:
            raise ValueError(
                f"study must be an Optuna storage URL such as 'sqlite:///runs/x/study.db' or "
                f"'postgresql://user@host/db', got {url!r}"
            )
        for label, value in (("heartbeat", heartbeat), ("grace", grace), ("poll", poll)):
            if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise ValueError(f"{label} must be a number of seconds > 0, got {value!r}")
        if grace <= heartbeat:
            raise ValueError(f"grace must exceed heartbeat ({heartbeat}), got {grace}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
        if importlib.util.find_spec("optuna") is None:  # said before anything runs (a user's
            # check: "No module named 'sqlalchemy'" after the run's header, exit 1)
            raise ImportError(OPTUNA_MISSING)
        self.url, self.name = url, name
        self.heartbeat, self.grace, self.retries, self.poll = heartbeat, grace, retries, poll
        self.work = work
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._storage: Any = None
        self._study_id: int | None = None
        self._study_object: Any = None
        self._stale_checked = -math.inf
        self._coordinator_beat: threading.Event | None = None  # set: stop beating

    def __repr__(self) -> str:
        return f"TrialStudy({self.url!r}, name={self.name!r})"

    # ------------------------------------------------------------------ opening
    @property
    def storage(self) -> Any:
        if self._storage is None:
            optuna = _optuna()
            for attempt in range(STORAGE_ATTEMPTS):
                try:
                    self._storage = self._open_storage(optuna)
                    break
                except Exception as error:  # processes creating a new database's tables at once
                    if (
                        attempt == STORAGE_ATTEMPTS - 1
                        or "sqlalchemy" not in type(error).__module__
                    ):
                        raise
                    time.sleep(0.2 * (attempt + 1))
        return self._storage

    def _sqlite_file(self) -> Path | None:
        """The database file of a ``sqlite:///`` URL (None for other databases, or memory)."""
        if not self.url.startswith("sqlite"):
            return None
        from sqlalchemy.engine import make_url

        database = make_url(self.url).database
        return None if not database or database == ":memory:" else Path(database)

    def _open_storage(self, optuna: Any) -> Any:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sqlite = self.url.startswith("sqlite")
            storage = optuna.storages.RDBStorage(
                self.url,
                # SQLite takes one writer at a time: wait for the lock rather than fail
                engine_kwargs={"connect_args": {"timeout": 60}} if sqlite else None,
                heartbeat_interval=max(1, round(self.heartbeat)),
                grace_period=max(2, round(self.grace)),
                heartbeat_stale_trial_callback=(
                    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=self.retries)
                ),
            )
        if sqlite:  # write-ahead log: readers (the polling processes) never block a writer
            with storage.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        return storage

    def create(self, settings: dict[str, Any], command: Sequence[str] | None) -> None:
        """Open the study as its coordinator: create it, or check that the one there was made
        with these `settings` (its complete trials are then read back)."""
        optuna = _optuna()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        file = self._sqlite_file()
        if file is not None:  # the coordinator makes the database: its folder too (sqlite does
            # not: "unable to open database file" for the docs' sqlite:///runs/m/study.db)
            file.parent.mkdir(parents=True, exist_ok=True)
        study = optuna.create_study(
            storage=self.storage, study_name=self.name, load_if_exists=True, direction="minimize"
        )
        self._study_id = self.storage.get_study_id_from_name(self.name)
        attrs = study.user_attrs
        if "settings" in attrs:
            _check_same(self, json.loads(attrs["settings"]), settings)
        else:
            study.set_user_attr("settings", json.dumps(encode_nonfinite(settings)))
        study.set_user_attr("command", None if command is None else list(command))
        # every process must judge staleness alike: the workers adopt these (`open`)
        study.set_user_attr("heartbeat", [self.heartbeat, self.grace, self.retries])
        study.set_user_attr("plan", None)
        study.set_user_attr(COORDINATOR_BEAT, f"{self.worker} 0")
        self.set_state(SEARCHING)
        if self._coordinator_beat is not None:  # created again by the same object
            self._coordinator_beat.set()
        self._coordinator_beat = threading.Event()
        threading.Thread(
            target=self._beat_as_coordinator, args=(self._coordinator_beat,), daemon=True
        ).start()

    def open(self, wait: float = 0.0) -> dict[str, Any]:
        """Open the study as a worker, waiting up to `wait` seconds for a coordinator to create
        it; returns its user attributes (the settings and the command that made it)."""
        file = self._sqlite_file()  # imports sqlalchemy: before the clock starts
        deadline = time.monotonic() + wait
        logged = False
        while True:
            # a sqlite file not there yet is not created here: a mistyped path made an empty
            # database and waited on it for ever (a user's check); the coordinator creates it
            absent = file is not None and not file.exists()
            try:
                if absent:
                    attrs = {}
                else:
                    self._study_id = self.storage.get_study_id_from_name(self.name)
                    attrs = dict(self.storage.get_study_user_attrs(self._study_id))
            except KeyError:  # no such study yet
                attrs = {}
            except Exception as error:  # no database yet (e.g. its folder is not made yet)
                if "sqlalchemy" not in type(error).__module__ or time.monotonic() >= deadline:
                    raise
                attrs = {}
            if "state" in attrs:  # the coordinator's attributes are all written before it
                self._adopt(attrs.get("heartbeat"))
                return attrs
            missing = (
                f" (no file {file.resolve()} yet: the coordinator creates it; check the path if "
                "none was started)"
                if absent and file is not None
                else ""
            )
            if time.monotonic() >= deadline:
                raise ValueError(
                    f"study {self.name!r} is not in {self.url}{missing}: start the coordinator "
                    "(tune with study=URL / superconverge tune --study URL) first"
                )
            if not logged:
                logger.info("waiting for study %r to appear in %s%s", self.name, self.url, missing)
                logged = True
            time.sleep(self.poll)

    def _adopt(self, timing: Any) -> None:
        """The coordinator's heartbeat, grace and retries: a worker that judged staleness by
        its own shorter grace would fail the coordinator's running trials."""
        if not isinstance(timing, list) or len(timing) != 3:
            return
        if tuple(timing) != (self.heartbeat, self.grace, self.retries):
            self.heartbeat, self.grace, self.retries = timing
            self._storage = self._study_object = None  # built again with these
            self._study_id = self.storage.get_study_id_from_name(self.name)

    def check_settings(self, settings: dict[str, Any]) -> None:
        """A worker's arguments must be the coordinator's."""
        recorded = self.storage.get_study_user_attrs(self._id).get("settings")
        _check_same(self, {} if recorded is None else json.loads(recorded), settings)

    def set_state(self, state: str) -> None:
        if state != SEARCHING:  # the search is over: the workers stop on the state
            self.stop_beating()
        self.storage.set_study_user_attr(self._id, "state", state)

    def stop_beating(self) -> None:
        """Stop the coordinator's heartbeat (its workers then stop after `grace` seconds unless
        the state says the search is over)."""
        if self._coordinator_beat is not None:
            self._coordinator_beat.set()
            self._coordinator_beat = None

    def _beat_as_coordinator(self, stop: threading.Event) -> None:
        count = 0
        while not stop.wait(self.heartbeat):
            count += 1
            try:
                self.storage.set_study_user_attr(
                    self._id, COORDINATOR_BEAT, f"{self.worker} {count}"
                )
            except Exception as error:  # a storage hiccup: the next beat may get through
                logger.debug("the coordinator's heartbeat failed: %s", error)

    def publish_plan(self, text: str) -> None:
        """The coordinator's plan (JSON), for the workers to return when the search is over."""
        self.storage.set_study_user_attr(self._id, "plan", text)

    def plan(self) -> str | None:
        value = self.storage.get_study_user_attrs(self._id).get("plan")
        return value if isinstance(value, str) else None

    def state(self) -> str | None:
        value = self.storage.get_study_user_attrs(self._id).get("state")
        return value if isinstance(value, str) else None

    @property
    def _id(self) -> int:
        if self._study_id is None:
            raise RuntimeError("the study is not open: call create() or open() first")
        return self._study_id

    # ------------------------------------------------------------------ the coordinator
    def run(
        self,
        specs: Sequence[dict[str, Any]],
        run_spec: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """Each spec's result, in order: read from a complete trial of the same spec, else
        enqueued as a trial and run by whichever process takes it (this one included)."""
        labels = [spec["label"] for spec in specs]
        by_label = {spec["label"]: spec for spec in specs}
        trials = self._trials_by_label()
        for spec in specs:
            if not any(
                t.state.name in ("COMPLETE", "WAITING", "RUNNING")
                for t in trials.get(spec["label"], [])
            ):
                self._enqueue(spec)
        results: dict[str, dict[str, Any]] = {}
        said: set[tuple[str, int]] = set()  # ("waiting" or "lost", trial number) already said
        while True:
            self._fail_stale()
            trials = self._trials_by_label()
            again = [  # a trial interrupted in a worker, with no copy waiting or running
                label
                for label in set(labels) - set(results)
                if (runs := trials.get(label, []))
                and "interrupted" in runs[-1].user_attrs
                and {t.state.name for t in runs} <= {"FAIL"}
            ]
            for label in again:
                self._enqueue(by_label[label])
            if again:
                trials = self._trials_by_label()
            for label in labels:
                if label not in results:
                    found = self._result(label, trials.get(label, []))
                    if found is not None:
                        results[label] = found
            if len(results) == len(set(labels)):
                return [results[label] for label in labels]
            missing = set(labels) - set(results)
            # a lost trial is said before this process takes its copy (it took it at once and
            # the 60 s wait went unexplained)
            self._say_waiting(trials, missing, said, waiting=False)
            if not (self.work and self.work_once(run_spec, only=missing)):
                self._say_waiting(trials, missing, said)
                time.sleep(self.poll)

    def _say_waiting(
        self,
        trials: dict[str, list[Any]],
        missing: set[str],
        said: set[tuple[str, int]],
        waiting: bool = True,
    ) -> None:
        """One line per trial another process runs while this one waits for it, and a warning
        per trial lost with its worker: a long wait (a worker killed mid-run is only failed
        after `grace` seconds) is not silent; without `waiting` (this process is about to run
        a trial itself) only the lost and interrupted ones."""
        for trial in (t for label in sorted(missing) for t in trials.get(label, [])):
            kind = _kind(trial)
            if kind is None or (kind, trial.number) in said or (kind == "waiting" and not waiting):
                continue
            said.add((kind, trial.number))
            if kind == "interrupted":
                logger.info(
                    "%s was interrupted (Ctrl-C or SIGTERM); its short run is run again",
                    _named(trial),
                )
            elif kind == "waiting":
                logger.info(
                    "waiting for %s; a worker that stops sending heartbeats for %g s loses its "
                    "trial, which is run again",
                    _named(trial),
                    self.grace,
                )
            else:
                logger.warning(
                    "%s stopped: no heartbeat for %g s; the trial is failed and its short run "
                    "is run again (at most %d times)",
                    _named(trial),
                    self.grace,
                    self.retries,
                )

    def _result(self, label: str, trials: list[Any]) -> dict[str, Any] | None:
        for trial in trials:
            if trial.state.name == "COMPLETE":
                return dict(decode_nonfinite(json.loads(trial.user_attrs["result"])))
        # an interrupted trial is not lost (its process said so): run again, not counted
        failed = [t for t in trials if t.state.name == "FAIL" and "interrupted" not in t.user_attrs]
        for trial in failed:
            if "error" in trial.user_attrs:
                raise TrialError(
                    f"short run {label!r} failed in worker {trial.user_attrs.get('worker')} "
                    f"(trial {trial.number}): {trial.user_attrs['error']}"
                )
        if len(failed) > self.retries:
            raise TrialError(
                f"short run {label!r} was lost {len(failed)} times (its workers stopped "
                f"sending heartbeats: trials {[t.number for t in failed]}); retries={self.retries}"
            )
        return None

    def _enqueue(self, spec: dict[str, Any]) -> None:
        self._study().enqueue_trial(
            {}, user_attrs={"label": spec["label"], "spec": json.dumps(spec)}
        )

    # ------------------------------------------------------------------ any process
    def work_once(
        self,
        run_spec: Callable[[dict[str, Any]], dict[str, Any]],
        only: set[str] | None = None,
    ) -> bool:
        """Take one waiting trial (of the labels `only`, if given) and run it; False when there
        was none to take."""
        optuna = _optuna()
        waiting = self.storage.get_all_trials(
            self._id, deepcopy=False, states=(optuna.trial.TrialState.WAITING,)
        )
        for trial in waiting:
            if only is not None and trial.user_attrs.get("label") not in only:
                continue
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(self._id, trial.number)
            if self._take(trial_id):
                self._execute(trial_id, trial, run_spec)
                return True
        return False

    def serve(self, run_spec: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
        """Run waiting trials until the coordinator says its search is over (or that it
        stopped); returns how many ran.

        Raises:
            TrialError: the coordinator's heartbeat stopped for `grace` seconds while it was
                still searching (killed, or its machine lost): waiting on would be forever.
        """
        count = 0
        beat, since = None, time.monotonic()
        while True:
            attrs = self.storage.get_study_user_attrs(self._id)
            if attrs.get("state") != SEARCHING:
                break
            if attrs.get(COORDINATOR_BEAT) != beat:
                beat, since = attrs.get(COORDINATOR_BEAT), time.monotonic()
            elif beat is not None and time.monotonic() - since > self.grace:
                raise TrialError(
                    f"worker {self.worker} stopped after {count} trial(s): the coordinator "
                    f"({str(beat).split()[0]}) of study {self.name!r} in {self.url} has sent no "
                    f"heartbeat for {time.monotonic() - since:.0f} s (grace {self.grace:g} s) "
                    "while searching: it was killed or lost its machine. Start it again with "
                    "the same arguments (its complete trials are read back), then the workers"
                )
            self._fail_stale()
            if self.work_once(run_spec):
                count += 1
            else:
                time.sleep(self.poll)
        logger.info("worker %s ran %d trial(s) of study %r", self.worker, count, self.name)
        return count

    def _take(self, trial_id: int) -> bool:
        """WAITING -> RUNNING: only one process succeeds (Optuna's own claim on a trial)."""
        optuna = _optuna()
        try:
            taken = bool(
                self.storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.RUNNING)
            )
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
        except Exception as error:  # e.g. SQLite "database is locked" under contention
            if type(error).__name__ not in ("OperationalError", "StorageInternalError"):
                raise
            return False
        if not taken:
            return False
        self.storage.record_heartbeat(trial_id)
        self.storage.set_trial_user_attr(trial_id, "worker", self.worker)
        # SQLite has no row locks: two processes can both claim a trial. The last to sign it
        # runs it; one that reads another's name leaves it (if both run it, the first result
        # stands: `_finish`)
        return bool(self.storage.get_trial(trial_id).user_attrs.get("worker") == self.worker)

    def _execute(
        self,
        trial_id: int,
        trial: Any,
        run_spec: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> None:
        optuna = _optuna()
        spec = json.loads(trial.user_attrs["spec"])
        logger.info("trial %d: %s", trial.number, spec["label"])
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(trial_id, stop), daemon=True)
        beat.start()
        try:
            result = run_spec(spec)
        except Exception as error:
            stop.set()
            beat.join()
            self.storage.set_trial_user_attr(trial_id, "error", f"{type(error).__name__}: {error}")
            self._finish(trial_id, optuna.trial.TrialState.FAIL)
            raise
        except BaseException:  # Ctrl-C, SIGTERM: the trial goes back to be run again
            stop.set()
            beat.join()
            # marked, so that it is enqueued again (by the coordinator, or by `run` when the
            # coordinator itself resumes) and not counted as lost towards `retries`: it was
            # failed as lost ("no heartbeat for 60 s") and never run again, and a coordinator
            # waited for it for ever
            self.storage.set_trial_user_attr(trial_id, "interrupted", self.worker)
            self._finish(trial_id, optuna.trial.TrialState.FAIL)
            raise
        stop.set()
        beat.join()
        loss = result.get("val_loss")
        value = float(loss) if isinstance(loss, (int, float)) and math.isfinite(loss) else math.inf
        try:
            self.storage.set_trial_user_attr(
                trial_id, "result", json.dumps(encode_nonfinite(result), allow_nan=False)
            )
        except optuna.exceptions.UpdateFinishedTrialError:
            logger.info("trial %d was ended by another process first; that end stands", trial_id)
            return
        self._finish(trial_id, optuna.trial.TrialState.COMPLETE, [value])

    def _finish(self, trial_id: int, state: Any, values: list[float] | None = None) -> None:
        """End a trial; one that another process ended first (it ran it too, or failed it as
        stale while this process was paused) keeps that end: its result stands."""
        optuna = _optuna()
        try:
            self.storage.set_trial_state_values(trial_id, state=state, values=values)
        except optuna.exceptions.UpdateFinishedTrialError:
            logger.info("trial %d was ended by another process first; that end stands", trial_id)

    def _beat(self, trial_id: int, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat):
            try:
                self.storage.record_heartbeat(trial_id)
            except Exception as error:  # a storage hiccup: the next beat may get through
                logger.debug("heartbeat of trial %d failed: %s", trial_id, error)

    def _fail_stale(self) -> None:
        """Fail (and enqueue again) the trials whose heartbeat stopped; at most once a
        heartbeat interval, whatever the polling."""
        now = time.monotonic()
        if now - self._stale_checked < self.heartbeat:
            return
        self._stale_checked = now
        optuna = _optuna()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self._study())

    def _study(self) -> Any:
        if self._study_object is None:
            optuna = _optuna()
            self._study_object = optuna.load_study(study_name=self.name, storage=self.storage)
        return self._study_object

    def _trials_by_label(self) -> dict[str, list[Any]]:
        grouped: dict[str, list[Any]] = {}
        for trial in self.storage.get_all_trials(self._id, deepcopy=False):
            grouped.setdefault(trial.user_attrs.get("label"), []).append(trial)
        return grouped


def _kind(trial: Any) -> str | None:
    """What a trial another process holds means to a waiting coordinator: "waiting" (running),
    "interrupted" (its process was stopped: enqueued again), "lost" (failed with no error of its
    own: whichever process noticed its missing heartbeats failed it) or None."""
    if trial.state.name == "RUNNING":
        return "waiting"
    if trial.state.name != "FAIL" or "error" in trial.user_attrs:
        return None
    return "interrupted" if "interrupted" in trial.user_attrs else "lost"


def _named(trial: Any) -> str:
    """``trial 3 (lr_bounds ...) in worker host:pid``, for the lines about other processes."""
    label, worker = trial.user_attrs.get("label"), trial.user_attrs.get("worker", "?")
    return f"trial {trial.number} ({label}) in worker {worker}"


def as_study(study: str | TrialStudy | None) -> TrialStudy | None:
    """`tune`'s ``study`` argument as a `TrialStudy` (a URL gets the defaults)."""
    if study is None or isinstance(study, TrialStudy):
        return study
    if isinstance(study, str):
        return TrialStudy(study)
    raise TypeError(f"study must be a storage URL or a TrialStudy, got {type(study).__name__}")


def _check_same(study: TrialStudy, recorded: dict[str, Any], settings: dict[str, Any]) -> None:
    differ = settings_differences(decode_nonfinite(recorded), settings)
    if differ:
        raise ValueError(
            f"study {study.name!r} in {study.url} belongs to a tune with other settings "
            f"({'; '.join(differ)}): give the same arguments as its coordinator, or another "
            "study name or storage"
        )


OPTUNA_MISSING = "a study needs Optuna: pip install 'superconverge[optuna]'"


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ImportError(OPTUNA_MISSING) from None
    return optuna
