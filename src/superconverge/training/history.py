"""`History`: what a training run recorded, per optimizer step and per epoch."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superconverge._display import clip, number, pairs, plural
from superconverge._files import write_text_atomically
from superconverge._json import (
    check_fields,
    decode_nonfinite,
    encode_nonfinite,
    reject_unknown_keys,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STATUSES = ("running", "completed", "diverged", "interrupted", "cancelled", "failed")
# what every version of `History.to_dict` wrote and a history cannot do without (the others
# have defaults: files of earlier versions lack some)
_REQUIRED_FIELDS = ("status", "epochs", "step_losses", "step_lrs", "step_momenta")


@dataclass
class History:
    """Per step: the loss and every param group's lr and momentum; per epoch: a dict with
    ``epoch``, ``train_loss``, ``val_loss``, ``val_<metric>``, ``seconds``, ``samples_per_s``.

    ``status`` is ``completed``, ``diverged`` (``message`` says what to do), ``interrupted``,
    ``cancelled`` (a callback raised `CancelFit`) or ``failed`` (an exception ended the fit:
    ``message`` names it).
    """

    step_losses: list[float] = field(default_factory=list)
    step_lrs: list[list[float]] = field(default_factory=list)
    step_momenta: list[list[float | None]] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)
    status: str = "running"
    message: str = ""
    plan: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # optimizer steps made and then undone by a back-off after a divergence (their compute was
    # spent; their records were dropped so the lists follow the steps that count)
    discarded_steps: int = 0
    # `fit_one_cycle(max_lr="search")`: where the rise found its edge, the max_lr it chose and
    # the step whose weights came back (`superconverge.training.edge`); None for other fits
    lr_search: dict[str, Any] | None = None
    # optimizer steps an epoch of this fit makes (its plots place a partial epoch's steps by
    # it); None in files of earlier versions
    steps_per_epoch: int | None = None

    @property
    def steps(self) -> int:
        return len(self.step_losses)

    def __repr__(self) -> str:
        """One line of a few hundred characters: status, size, the last epoch, the best
        validation loss and the peak LR (the numbers themselves: the fields, ``to_csv()``)."""
        parts = [
            f"status={self.status!r}",
            plural(len(self.epochs), "epoch"),
            plural(self.steps, "step"),
        ]
        if self.epochs:
            last = self.epochs[-1]
            shown = [(k, v) for k, v in last.items() if k == "train_loss" or k.startswith("val_")]
            parts.append(f"last epoch: {clip(pairs(shown[:4]), 110)}")
        best = self._best_val_loss()
        if best is not None:
            parts.append(f"best val_loss {number(best[1])} at epoch {best[0]}")
        if self.lr_search is not None and "max_lr" in self.lr_search:
            # a search's rise reaches past its edge: the cycle's peak is what it chose
            parts.append(f"max_lr {number(self.lr_search['max_lr'])} (searched)")
        else:
            peaks = [max(lrs) for lrs in self.step_lrs if lrs]
            if peaks:
                parts.append(f"peak lr {number(max(peaks))}")
        if self.message:
            parts.append(f"message={clip(self.message, 60)!r}")
        return f"History({', '.join(parts[:3])}{''.join('; ' + part for part in parts[3:])})"

    def _repr_html_(self) -> str:
        """A small table for notebooks: status and message, then the epoch table (long ones
        shortened to their first and last rows)."""
        from superconverge._display import html_table

        best = self._best_val_loss()
        about: list[tuple[str, Any]] = [
            ("status", self.status),
            ("steps", self.steps),
            ("best val_loss", "none" if best is None else f"{number(best[1])} (epoch {best[0]})"),
        ]
        if self.message:
            about.append(("message", self.message))
        columns: list[str] = []
        for row in self.epochs:
            columns += [key for key in row if key not in columns]
        rows = [[row.get(column, math.nan) for column in columns] for row in self.epochs]
        epochs = html_table("epochs", rows, columns) if rows else ""
        return html_table("History", about, max_rows=len(about)) + epochs

    def _best_val_loss(self) -> tuple[int, float] | None:
        """(epoch counted from 1, value) of the lowest finite validation loss, if any."""
        losses = [
            (int(row.get("epoch", index + 1)), row["val_loss"])
            for index, row in enumerate(self.epochs)
            if math.isfinite(row.get("val_loss", math.nan))
        ]
        return min(losses, key=lambda item: item[1]) if losses else None

    def epoch_values(self, key: str) -> list[float]:
        """One column of the epoch table (NaN where an epoch lacks it)."""
        return [float(row.get(key, math.nan)) for row in self.epochs]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = encode_nonfinite(
            {
                "status": self.status,
                "message": self.message,
                "plan": self.plan,
                "notes": self.notes,
                "discarded_steps": self.discarded_steps,
                "lr_search": self.lr_search,
                "steps_per_epoch": self.steps_per_epoch,
                "epochs": self.epochs,
                "step_losses": self.step_losses,
                "step_lrs": self.step_lrs,
                "step_momenta": self.step_momenta,
            }
        )
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """The history in `data` (as `to_dict` writes it), each field's type checked: a
        ValueError names a missing field, an unknown one, or a value of another type.

        ``message``, ``plan``, ``notes`` and ``discarded_steps`` may be missing (files of
        earlier versions); the status and the records may not.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a history is a JSON object, got {type(data).__name__}")
        reject_unknown_keys(data, cls.__dataclass_fields__, "history fields")
        check_fields(cls, data, "a history", required=_REQUIRED_FIELDS)
        _check_records(data)
        values = decode_nonfinite(data)
        steps = len(values["step_losses"])
        # files of earlier versions hold, after a divergence, the LRs of the steps made before
        # its loss was read: only the steps whose losses were recorded are kept, as a fit does
        return cls(
            step_losses=list(values["step_losses"]),
            step_lrs=[list(v) for v in values["step_lrs"][:steps]],
            step_momenta=[list(v) for v in values["step_momenta"][:steps]],
            epochs=[dict(row) for row in values["epochs"]],
            status=values["status"],
            message=values.get("message", ""),
            plan=dict(values.get("plan", {})),
            notes=list(values.get("notes", [])),
            discarded_steps=values.get("discarded_steps", 0),
            lr_search=values.get("lr_search"),
            steps_per_epoch=values.get("steps_per_epoch"),
        )

    @classmethod
    def from_json(cls, text: str) -> History:
        return cls.from_dict(json.loads(text))

    def to_csv(self, path: str | Path | None = None, *, per: str = "epoch") -> str:
        """The epoch table (``per="epoch"``) or the step table (``per="step"``) as CSV text,
        also written to `path` when given."""
        buffer = io.StringIO()
        # "\n" as every other text file the run writes: csv's default "\r\n" left a "\r" in
        # the last column for awk, cut and the shell
        writer = csv.writer(buffer, lineterminator="\n")
        if per == "epoch":
            columns: list[str] = []
            for row in self.epochs:
                columns += [key for key in row if key not in columns]
            writer.writerow(columns)
            for row in self.epochs:
                cells: list[float | int | str] = [row.get(column, "") for column in columns]
                epoch = row.get("epoch")  # a count, stored as a float with the other numbers
                if isinstance(epoch, float) and epoch.is_integer():
                    cells[columns.index("epoch")] = int(epoch)
                writer.writerow(cells)
        elif per == "step":
            groups = len(self.step_lrs[0]) if self.step_lrs else 0
            header = ["step", "loss"]
            header += [f"lr_{g}" for g in range(groups)] + [f"momentum_{g}" for g in range(groups)]
            writer.writerow(header)
            for step, loss in enumerate(self.step_losses):
                moms = self.step_momenta[step] if step < len(self.step_momenta) else []
                writer.writerow(
                    [step, loss, *self.step_lrs[step], *["" if m is None else m for m in moms]]
                )
        else:
            raise ValueError(f"per must be 'epoch' or 'step', got {per!r}")
        text = buffer.getvalue()
        if path is not None:
            write_text_atomically(path, text)
        return text

    def plot(self) -> Figure:
        """Training and validation loss (log scale); accuracy, LR and momentum below it."""
        from superconverge.diagnostics.plots import plot_history

        return plot_history(self)


def _check_records(data: dict[str, Any]) -> None:
    """The values `check_fields` cannot see in the annotations: a known status, a step count
    >= 0, and one LR and one momentum entry per step, or none (a history made by hand);
    earlier versions wrote more after a divergence: `History.from_dict` drops those."""
    if data["status"] not in STATUSES:
        raise ValueError(f"field status must be one of {list(STATUSES)}, got {data['status']!r}")
    if data.get("discarded_steps", 0) < 0:
        raise ValueError(f"field discarded_steps must be >= 0, got {data['discarded_steps']!r}")
    losses, lrs, momenta = (len(data[k]) for k in ("step_losses", "step_lrs", "step_momenta"))
    if lrs != momenta or 0 < lrs < losses:
        raise ValueError(
            "fields step_lrs and step_momenta must hold one entry per step of step_losses (or "
            f"none), got {lrs} and {momenta} entries for {losses} steps"
        )
