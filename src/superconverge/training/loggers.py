"""Loggers: one protocol, several backends side by side (TensorBoard, CSV, MLflow; your own).

A `Logger` is a `Callback` that turns a fit's events into named numbers and hands them to four
methods a backend implements:

- ``log_params(params)``: once per fit, before its first step: the policy, max_lr, epochs,
  optimizer, weight decay, batch size, precision, device, seed;
- ``log_step(step, values)``: per optimizer step (every `every_steps`): ``loss``, ``lr``,
  ``momentum``, ``weight_decay`` (with several param groups ``lr_group0``, ``lr_group1``, ...);
- ``log_epoch(epoch, values)``: per epoch (counted from 1): the epoch's row of the `History`
  (``train_loss``, ``val_loss``, ``val_<metric>``, ``seconds``, ``samples_per_s``, ``lr``);
- ``close(status)``: after the fit, with the History's status (also after a cancel or error).

Step values are read from the History after the loop has read the losses from the device, never
with a device sync of their own: a logger costs no GPU wait.

```python
loggers = [TensorBoardLogger("runs/tb"), CSVLogger("runs/csv", per_step=True),
           MLflowLogger("my-experiment")]
sc.Trainer(model, loss_fn, train, val, callbacks=loggers).fit_one_cycle(5)
```
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superconverge._files import write_text_atomically
from superconverge._warnings import warn
from superconverge.training.callbacks import Callback

if TYPE_CHECKING:
    from superconverge.training.loop import FitLoop

Params = dict[str, str | int | float]


class Logger(Callback):
    """The logger protocol (see the module); subclasses implement the four ``log_``/``close``
    methods, the events are this class's.

    Args:
        every_steps: log every this many optimizer steps (1: each; 0: none, epochs only).
    """

    def __init__(self, every_steps: int = 1) -> None:
        if isinstance(every_steps, bool) or not isinstance(every_steps, int):
            raise TypeError(f"every_steps must be an integer >= 0, got {every_steps!r}")
        if every_steps < 0:
            raise ValueError(f"every_steps must be an integer >= 0, got {every_steps!r}")
        self.every_steps = every_steps
        self._next_step = 0  # the first History step not yet handed to log_step
        # (steps, epochs) a fit's x axes are counted on from, for a backend whose later fits go
        # on after the earlier ones (TensorBoard, an MLflow run), and where the last fit ended
        self._offsets, self._ends = (0, 0), (0, 0)
        self._resumed = False  # whether the current fit continues a checkpoint's History
        # whether the next fit is the second phase of the last one's call (fine_tune's)
        self._phase_follows = False

    # ----------------------------------------------------------------- the backend's part
    def log_params(self, params: Params) -> None: ...

    def log_step(self, step: int, values: dict[str, float]) -> None: ...

    def log_epoch(self, epoch: int, values: dict[str, float]) -> None: ...

    def close(self, status: str) -> None: ...

    # ----------------------------------------------------------------- events
    def before_fit(self, fit: FitLoop) -> None:
        self._next_step = len(fit.history.step_losses)  # a resumed fit logged the earlier ones
        self._resumed = continues(fit)
        self.log_params(fit_params(fit))
        self._phase_follows = False

    def after_batch(self, fit: FitLoop) -> None:
        if self.every_steps and len(fit.history.step_losses) > self._next_step:
            self._drain(fit)

    def after_epoch(self, fit: FitLoop) -> None:
        self._drain(fit)
        record = fit.record
        values = {k: float(v) for k, v in record.items() if k != "epoch" and math.isfinite(v)}
        self.log_epoch(int(record["epoch"]), values)

    def after_fit(self, fit: FitLoop) -> None:
        self._drain(fit)
        # fine_tune's frozen phase carries its second fit (`Trainer.then`), which follows it
        # when it completes
        self._phase_follows = fit.trainer.then is not None and fit.history.status == "completed"
        self.close(fit.history.status)
        steps, epochs = self._offsets
        self._ends = (steps + len(fit.history.step_losses), epochs + len(fit.history.epochs))

    def _drain(self, fit: FitLoop) -> None:
        """Hand over the steps whose losses the loop has read since the last call."""
        history = fit.history
        ready = len(history.step_losses)
        if self.every_steps:
            groups = fit.trainer.optimizer.param_groups
            for step in range(self._next_step, ready):
                if step % self.every_steps == 0:
                    self.log_step(step, step_values(history, step, groups))
        self._next_step = ready


def continues(fit: FitLoop) -> bool:
    """Whether `fit` is a resumed one: it starts from a checkpoint's History."""
    return bool(fit.history.epochs or fit.history.step_losses)


def step_values(history: Any, step: int, groups: Sequence[dict[str, Any]]) -> dict[str, float]:
    """``loss``, ``lr``, ``momentum`` (when the optimizer has one) and ``weight_decay`` of one
    step; with several param groups each value per group (``lr_group0``, ...)."""
    values = {"loss": float(history.step_losses[step])}
    lrs = history.step_lrs[step] if step < len(history.step_lrs) else []
    momenta = history.step_momenta[step] if step < len(history.step_momenta) else []
    decays = [group.get("weight_decay") for group in groups]
    for name, per_group in (("lr", lrs), ("momentum", momenta), ("weight_decay", decays)):
        for index, value in enumerate(per_group):
            if value is not None:
                key = name if len(per_group) == 1 else f"{name}_group{index}"
                values[key] = float(value)
    return values


def fit_params(fit: FitLoop) -> Params:
    """The settings of a fit, as loggers record them."""
    trainer, plan = fit.trainer, fit.history.plan
    group = trainer.optimizer.param_groups[0]
    params: dict[str, Any] = {
        "policy": plan.get("policy"),
        "max_lr": plan.get("max_lr"),
        "total_steps": plan.get("total_steps"),
        "epochs": fit.epochs,
        "optimizer": type(trainer.optimizer).__name__,
        "weight_decay": group.get("weight_decay"),
        "param_groups": len(trainer.optimizer.param_groups),
        "batch_size": getattr(trainer.train_loader, "batch_size", None),
        "accumulation_steps": trainer.accumulation_steps,
        "max_grad_norm": trainer.max_grad_norm,
        "precision": trainer.precision,
        "device": str(trainer.device),
        "seed": trainer.seed,
    }
    return {k: v for k, v in params.items() if isinstance(v, (str, int, float))}


# --------------------------------------------------------------------- TensorBoard
class TensorBoardLogger(Logger):
    """TensorBoard scalars: ``train/loss_step``, ``train/lr``, ``train/momentum``,
    ``train/weight_decay`` per step, ``epoch/<name>`` per epoch, and the fit's settings as text.

    Needs the ``tensorboard`` package (``pip install 'superconverge[tensorboard]'``).

    A resumed fit continues the curves of the fit it resumes; a later fit with the same logger
    (``fine_tune``'s second) continues after the first (its steps and epochs counted on from
    the first's). TensorBoard draws every event file in `log_dir` as one run, so a new fit into
    a folder holding another run's events is warned about: give each run its own folder.
    """

    def __init__(self, log_dir: str | Path, every_steps: int = 1) -> None:
        super().__init__(every_steps)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError(
                "TensorBoardLogger needs tensorboard: pip install 'superconverge[tensorboard]'"
            ) from error
        folder = _folder("log_dir", log_dir)
        self._others = folder.is_dir() and any(folder.glob("events.out.tfevents.*"))
        self.writer: Any = SummaryWriter(str(folder))
        self._fits = 0

    def before_fit(self, fit: FitLoop) -> None:
        resumed = continues(fit)
        if self._fits and resumed:  # `Trainer.resume_from` on the same trainer: the fit it
            # continues keeps its offsets (they were counted on past it: epochs 1, 2, 5, 6)
            super().before_fit(fit)
            return
        if self._fits:  # a later fit of this logger: its x axes go on from the earlier ones'
            self._offsets = self._ends
        elif self._others and not resumed:  # two runs' curves drawn as one, zigzagging
            warn(
                f"TensorBoardLogger: {self.writer.log_dir} holds another run's events; "
                "TensorBoard draws all of a folder's events as one run, so this fit's curves "
                "start over on top of them: give each run its own log_dir (runs/tb/NAME)"
            )
        self._fits += 1
        super().before_fit(fit)

    def log_params(self, params: Params) -> None:
        table = "\n".join(f"| {k} | {v} |" for k, v in params.items())
        self.writer.add_text("params", "| setting | value |\n|---|---|\n" + table, self._fits)

    def log_step(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            tag = "train/loss_step" if name == "loss" else f"train/{name}"
            self.writer.add_scalar(tag, value, step + self._offsets[0])

    def log_epoch(self, epoch: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"epoch/{name}", value, epoch + self._offsets[1])
        self.writer.flush()

    def close(self, status: str) -> None:
        self.writer.close()  # a later fit with this logger reopens it


# --------------------------------------------------------------------- CSV
class CSVLogger(Logger):
    """``epochs.csv`` (one row per epoch) and, with `per_step`, ``steps.csv`` (one row per
    optimizer step, every `every_steps`) in `folder`.

    ``epochs.csv`` is rewritten whole (atomically) after each epoch; ``steps.csv`` grows by the
    epoch's rows at each epoch's end. A ``fit`` column counts the fits from 1: a second fit with
    the same logger (``fine_tune``) adds its rows. Files already in `folder` are kept: a new
    logger's fit adds its rows as the next fit, and a resumed fit (``Trainer.resume``) continues
    its fit's rows from where its checkpoint was (rows logged after it, which the resumed fit
    logs again, are dropped).
    """

    def __init__(self, folder: str | Path, *, per_step: bool = False, every_steps: int = 1) -> None:
        super().__init__(every_steps if per_step else 0)
        self.folder = _folder("folder", folder)
        self.fit_index = 0
        self._epochs: list[dict[str, Any]] = []
        self._steps: list[dict[str, Any]] = []  # rows not yet in steps.csv
        self._step_columns: list[str] = []
        self._read = False  # whether the files already in `folder` were read

    def before_fit(self, fit: FitLoop) -> None:
        resumed = continues(fit)
        if not self._read or resumed:  # another run's files, or a fit resumed (by a new logger
            # or this one: `Trainer.resume_from`): kept, not replaced
            self._read = True
            self._continue_files(fit.history if resumed else None)
        super().before_fit(fit)

    def _continue_files(self, resumed: Any) -> None:
        """Take up the rows in `folder`: all of them for a new fit (it becomes the next fit);
        for a fit resumed from the History `resumed`, the rows of the fit it continues up to
        its checkpoint (the fit whose epochs' losses are that History's, to the last digit:
        another run may have logged here since), which it then goes on with. When no fit's
        rows match, nothing is dropped and it logs as the next fit."""
        epochs, steps = _read_rows(self.epochs_path), _read_rows(self.steps_path)
        last = max((_fit_of(row) for row in epochs + steps), default=0)
        found = _resumed_fit(epochs, resumed) if resumed is not None else None
        if found is not None:
            done_epochs, done_steps = len(resumed.epochs), len(resumed.step_losses)
            epochs = [r for r in epochs if _fit_of(r) != found or _int(r, "epoch") <= done_epochs]
            steps = [r for r in steps if _fit_of(r) != found or _int(r, "step") < done_steps]
            last = found - 1  # log_params counts it again
        self.fit_index, self._epochs = last, epochs
        if steps or self.steps_path.is_file():
            columns = _columns(steps, self.steps_path)
            write_text_atomically(self.steps_path, _csv_text(steps, columns))
            self._step_columns = columns

    @property
    def epochs_path(self) -> Path:
        return self.folder / "epochs.csv"

    @property
    def steps_path(self) -> Path:
        return self.folder / "steps.csv"

    def log_params(self, params: Params) -> None:
        self.fit_index += 1

    def log_step(self, step: int, values: dict[str, float]) -> None:
        self._steps.append({"fit": self.fit_index, "step": step, **values})

    def log_epoch(self, epoch: int, values: dict[str, float]) -> None:
        self._epochs.append({"fit": self.fit_index, "epoch": epoch, **values})
        write_text_atomically(self.epochs_path, _csv_text(self._epochs))
        self._write_steps()

    def close(self, status: str) -> None:
        self._write_steps()

    def _write_steps(self) -> None:
        if not self._steps:
            return
        columns = list(self._step_columns)
        for row in self._steps:
            columns += [key for key in row if key not in columns]
        if columns != self._step_columns:  # the first rows, or new columns: rewrite it whole
            rows: list[dict[str, Any]] = []
            if self._step_columns:
                with self.steps_path.open(newline="", encoding="utf-8") as file:
                    rows = list(csv.DictReader(file))
            write_text_atomically(self.steps_path, _csv_text(rows + self._steps, columns))
            self._step_columns = columns
        else:
            with self.steps_path.open("a", newline="", encoding="utf-8") as file:
                writer = csv.DictWriter(file, columns, restval="", lineterminator="\n")
                writer.writerows(self._steps)
        self._steps = []


def _new_params(params: Params, logged: dict[str, str]) -> list[tuple[str, str]]:
    """The params of a fit to log into a run that holds `logged`: those it lacks as they are,
    those it holds with another value as ``fit<n>/<name>`` (the first n from 2 that is free or
    holds that value); MLflow refuses a param's value to change.

    Example:
        >>> _new_params({"max_lr": 0.1, "epochs": 3}, {"max_lr": "0.1", "epochs": "2"})
        [('fit2/epochs', '3')]
    """
    new = []
    for name, value in params.items():
        text, key, fit = str(value), name, 1
        while logged.get(key, text) != text:
            fit += 1
            key = f"fit{fit}/{name}"
        if key not in logged:
            new.append((key, text))
    return new


def _resumed_fit(rows: list[dict[str, Any]], history: Any) -> int | None:
    """The latest fit in `rows` whose first epochs are `history`'s (training and validation
    losses equal as written), or None."""
    done = history.epochs
    for fit in sorted({_fit_of(row) for row in rows}, reverse=True):
        kept = [row for row in rows if _fit_of(row) == fit and _int(row, "epoch") <= len(done)]
        if len(kept) == len(done) and all(
            _same(row, key, epoch.get(key))
            for row, epoch in zip(sorted(kept, key=lambda r: _int(r, "epoch")), done, strict=True)
            for key in ("train_loss", "val_loss")
        ):
            return fit
    return None


def _same(row: dict[str, Any], key: str, value: Any) -> bool:
    """Whether a CSV cell holds `value` (a float written by repr reads back equal)."""
    cell = row.get(key)
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return cell in (None, "")
    try:
        return float(cell) == float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV file this logger wrote (none where there is no file)."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def _columns(rows: list[dict[str, Any]], path: Path) -> list[str]:
    """The header of `path` (which may hold no rows), then any other key of `rows`."""
    with path.open(newline="", encoding="utf-8") as file:
        columns = list(next(csv.reader(file), []))
    for row in rows:
        columns += [key for key in row if key not in columns]
    return columns


def _int(row: dict[str, Any], key: str) -> int:
    try:
        return int(float(row.get(key) or 0))
    except ValueError:  # a hand-edited cell: the row is kept as another fit's
        return 0


def _fit_of(row: dict[str, Any]) -> int:
    return _int(row, "fit") if row.get("fit") else 1


def _folder(name: str, value: Any) -> Path:
    """A logger's folder argument as a Path, or a TypeError naming it (pathlib's said "expected
    str, bytes or os.PathLike object, not NoneType"; an int 123 made a folder ./123)."""
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)) or str(value) == "":
        raise TypeError(f"{name} must be a folder path (str or Path), got {value!r}")
    return Path(value)


def _csv_text(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    if columns is None:
        columns = []
        for row in rows:
            columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


# --------------------------------------------------------------------- MLflow
_MLFLOW_STATUS = {
    "completed": "FINISHED",
    "cancelled": "FINISHED",  # stopped on purpose by a callback (early stopping)
    "diverged": "FAILED",
    "interrupted": "KILLED",
}


class MLflowLogger(Logger):
    """MLflow: the fit's settings as params, ``step/<name>`` metrics per step and
    ``epoch/<name>`` per epoch, the run ended with the fit's status.

    Logs into the active MLflow run when there is one (and leaves it open), else into the run
    `run_id` names, else into a new run of `experiment` (default: MLflow's default experiment);
    the last two end with the fit. Needs MLflow (``pip install 'superconverge[mlflow]'``).

    A run's params cannot change in MLflow: a second fit into the same run (``fine_tune``'s, which
    logs both of its fits into one run; a resume into `run_id` with other settings) logs the
    params that differ as ``fit2/<name>`` (``fit3/``, ...); those equal to the run's are not
    logged again.

    Args:
        experiment: experiment name (created when missing).
        run_name: the new run's name.
        tracking_uri: where to log (default: MLflow's own setting, ``MLFLOW_TRACKING_URI``);
            e.g. ``"file:./mlruns"`` for a local file store.
        every_steps: log every this many optimizer steps (0: epochs only).
        run_id: continue this run instead of starting one: for ``Trainer.resume``, the
            interrupted fit's run (its logger's ``run_id``, or the MLflow UI's run ID), so the
            resumed epochs join the earlier ones; a resumed fit otherwise logs a new run.
    """

    def __init__(
        self,
        experiment: str | None = None,
        *,
        run_name: str | None = None,
        tracking_uri: str | None = None,
        every_steps: int = 1,
        run_id: str | None = None,
    ) -> None:
        super().__init__(every_steps)
        try:
            import mlflow
            from mlflow.tracking import MlflowClient
        except ImportError as error:
            raise ImportError(
                "MLflowLogger needs mlflow: pip install 'superconverge[mlflow]'"
            ) from error
        self._mlflow = mlflow
        self.client: Any = MlflowClient(tracking_uri=tracking_uri)
        self.experiment, self.run_name = experiment, run_name
        if run_id is not None and (not isinstance(run_id, str) or not run_id):
            raise TypeError(f"run_id must be an MLflow run ID (a str) or None, got {run_id!r}")
        self._continued = run_id
        self.run_id: str | None = None
        self._own_run = False
        self._metrics: list[Any] = []

    def log_params(self, params: Params) -> None:
        earlier = self.run_id
        active = self._mlflow.active_run()
        if active is not None:
            self.run_id, self._own_run = active.info.run_id, False
        elif self._continued is not None:
            self.run_id, self._own_run = self.client.get_run(self._continued).info.run_id, True
            self.client.update_run(self.run_id, "RUNNING")
        elif self._phase_follows and self.run_id is not None and self._own_run:
            # fine_tune's second fit: the run its first made (one call, one run; it made two)
            self.client.update_run(self.run_id, "RUNNING")
        else:
            experiment_id = "0"
            if self.experiment is not None:
                found = self.client.get_experiment_by_name(self.experiment)
                experiment_id = (
                    found.experiment_id
                    if found is not None
                    else self.client.create_experiment(self.experiment)
                )
            run = self.client.create_run(experiment_id, run_name=self.run_name)
            self.run_id, self._own_run = run.info.run_id, True
        if self.run_id != earlier:  # a run of its own: its axes start at 0
            self._offsets = (0, 0)
        elif not self._resumed:  # another fit in the run the last one logged (fine_tune's
            # second in an active run): it goes on after it, as in TensorBoard
            self._offsets = self._ends
        from mlflow.entities import Param

        logged = self.client.get_run(self.run_id).data.params
        self.client.log_batch(
            self.run_id, params=[Param(k, v) for k, v in _new_params(params, logged)]
        )

    def log_step(self, step: int, values: dict[str, float]) -> None:
        self._add(values, "step", step + self._offsets[0])

    def log_epoch(self, epoch: int, values: dict[str, float]) -> None:
        self._add(values, "epoch", epoch + self._offsets[1])
        self._flush()

    def close(self, status: str) -> None:
        self._flush()
        if self.run_id is not None and self._own_run:
            self.client.set_terminated(self.run_id, _MLFLOW_STATUS.get(status, "FAILED"))

    def _add(self, values: dict[str, float], prefix: str, step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self._metrics += [Metric(f"{prefix}/{k}", v, stamp, step) for k, v in values.items()]

    def _flush(self) -> None:
        if self.run_id is None:
            return
        for start in range(0, len(self._metrics), 1000):  # MLflow's limit per batch
            self.client.log_batch(self.run_id, metrics=self._metrics[start : start + 1000])
        self._metrics = []
