"""Progress of a fit wherever it runs: a bar in a terminal or a notebook (``tqdm.auto``: a widget
in Jupyter), a plain line every few seconds in logs (stderr is not a terminal: a batch job, a
pipe), or nothing (``progress=False``, or logging set to hide superconverge's info lines, as the
CLI's ``--quiet`` does).

Messages meant for people (the per-epoch line, the periodic lines, and through `tell` the
decisions: a range test's LR, each stage of `tune`) go through `say`: to the ``superconverge``
loggers, and to stderr as well unless logging already shows them there.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from superconverge.pytorch.distributed import world as process_world

logger = logging.getLogger(__name__)

MODES = ("bar", "lines", "off")
DEFAULT_INTERVAL_S = 30.0  # seconds between two lines in logs, unless configured
INTERVAL_VARIABLE = "SUPERCONVERGE_PROGRESS_INTERVAL"
_POSTFIX_EVERY = 3  # bar updates between loss/LR refreshes: formatting costs more than a step


def resolve_progress(progress: bool | str) -> str:
    """``"bar"``, ``"lines"`` or ``"off"`` for the `progress` argument.

    ``"auto"``: nothing when logging hides superconverge's info lines (`silenced`), a bar when
    stderr is a terminal or the code runs in a Jupyter kernel, else lines; True is a bar,
    False is off.

    Raises:
        TypeError: anything else.
    """
    if progress == "auto":
        if silenced():
            return "off"
        return "bar" if sys.stderr.isatty() or in_notebook() else "lines"
    if progress is True or progress is False:
        return "bar" if progress else "off"
    if isinstance(progress, str) and progress in MODES:
        return progress
    raise TypeError(
        f"progress must be 'auto', 'bar', 'lines', 'off', True or False, got {progress!r}"
    )


def resolve_interval(progress_interval: float | None) -> float:
    """Seconds between two progress lines: `progress_interval`, or when None the environment's
    ``SUPERCONVERGE_PROGRESS_INTERVAL`` (which also reaches the fits that `tune` and the CLI
    run), else `DEFAULT_INTERVAL_S`.

    Raises:
        TypeError, ValueError: not a number of seconds >= 0 (the message names the source).
    """
    if progress_interval is None:
        text = os.environ.get(INTERVAL_VARIABLE)
        if text is None:
            return DEFAULT_INTERVAL_S
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0 <= value < math.inf:
            raise ValueError(f"{INTERVAL_VARIABLE} must be seconds >= 0, got {text!r}")
        return value
    if isinstance(progress_interval, bool) or not isinstance(progress_interval, (int, float)):
        raise TypeError(f"progress_interval must be a number, got {progress_interval!r}")
    if not 0 <= progress_interval < math.inf:
        raise ValueError(f"progress_interval must be >= 0 seconds, got {progress_interval!r}")
    return float(progress_interval)


def silenced(log: logging.Logger = logger) -> bool:
    """Whether a level above INFO was set on `log` or a ``superconverge`` logger above it (the
    CLI's ``--quiet``, ``logging.getLogger("superconverge").setLevel(logging.WARNING)``, or one
    sub-package's), or `log` is disabled. The root logger does not count: its WARNING is
    Python's default, not a choice about superconverge."""
    if log.disabled:
        return True
    current: logging.Logger | None = log
    while current is not None and current.name.startswith("superconverge"):
        if current.level != logging.NOTSET:
            return current.level > logging.INFO
        current = current.parent
    return False


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (where stderr is no terminal, yet bars render)."""
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def say(message: str, *, show: bool = True, log: logging.Logger = logger) -> None:
    """Log `message` at INFO on `log` (a superconverge logger); with `show`, also print it to
    stderr unless a handler already shows `log`'s INFO lines (no line twice)."""
    log.info(message)
    if show and not (log.isEnabledFor(logging.INFO) and log.hasHandlers()):
        print(message, file=sys.stderr, flush=True)


def tell(message: str, log: logging.Logger) -> None:
    """A decision the library made for the user (the LR a range test chose, a stage of `tune`):
    `say` it, unless the user silenced the package (`silenced`). A script or a notebook that
    configured no logging sees it on stderr as it sees the epoch lines; the CLI's handler
    shows it once; under torchrun only rank 0 prints it (as only rank 0 shows progress)."""
    say(message, show=not silenced(log) and process_world()[0] == 0, log=log)


def format_seconds(seconds: float) -> str:
    """``"42s"``, ``"3m05s"``, ``"2h04m"``; ``"?"`` when unknown.

    Example:
        >>> format_seconds(42.4), format_seconds(185), format_seconds(7440), format_seconds(math.nan)
        ('42s', '3m05s', '2h04m', '?')
    """
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class _Ticks:
    """What a fit's and a sweep's progress share: the bar's moves and its loss/LR postfix, and
    the clock of the lines."""

    def __init__(self, mode: str, interval_s: float, clock: Callable[[], float]) -> None:
        self.mode, self.interval_s, self.clock = mode, interval_s, clock
        self.last_line = clock()
        self._bar: Any = None
        self._updates = 0

    def _open_bar(self, total: int, description: str) -> None:
        """A new bar of `total` (``"bar"`` mode only)."""
        if self.mode == "bar":
            self._bar = progress_bar(total, description)
            self._updates = 0

    def _tick(self, count: int, loss: float, lr: float) -> bool:
        """The bar moved `count`; False where there is no bar."""
        if self._bar is None:
            return False
        self._bar.update(count)
        self._updates += 1
        if self._updates % _POSTFIX_EVERY == 1:
            self._bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.3g}", refresh=False)
        return True

    def _line_due(self) -> float | None:
        """The time now where a line is due (``"lines"``, `interval_s` since the last), else None."""
        if self.mode != "lines":
            return None
        now = self.clock()
        if now - self.last_line < self.interval_s:
            return None
        self.last_line = now
        return now

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class FitProgress(_Ticks):
    """The progress of one fit, in the `mode` of `resolve_progress`.

    ``advance`` is called after each read of the losses (every ``sync_every`` optimizer steps),
    never per step: with ``"off"`` it is not called at all (``on`` is False).

    Args:
        mode: ``"bar"``, ``"lines"`` or ``"off"``.
        epochs: the fit's epochs.
        total_steps: the fit's optimizer steps.
        start_step: optimizer steps already done (a resumed fit): the time left is estimated
            from this fit's own pace.
        interval_s: seconds between two lines (``"lines"``); 0 prints at every update.
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(
        self,
        mode: str,
        *,
        epochs: int,
        total_steps: int,
        start_step: int = 0,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(mode, interval_s, clock)
        self.on = mode != "off"
        self.epochs, self.total_steps, self.start_step = epochs, total_steps, start_step
        self.started = self.last_line
        self.epoch = 0

    def start_epoch(self, epoch: int, batches: int) -> None:
        """`epoch` counts from 1; `batches` are the epoch's micro-batches (the bar's total)."""
        self.epoch = epoch
        self._open_bar(batches, f"epoch {epoch}/{self.epochs}")

    def advance(self, batches: int, step: int, loss: float, lr: float) -> None:
        """`batches` more micro-batches done; `step` optimizer steps done in all, the last with
        `loss` and `lr`."""
        if not self._tick(batches, loss, lr) and (now := self._line_due()) is not None:
            say(self.line(step, loss, lr, now))

    def line(self, step: int, loss: float, lr: float, now: float) -> str:
        """``epoch 2/5, step 130/500, loss 0.4123, lr 0.0123, 1m05s left``."""
        done, elapsed = step - self.start_step, now - self.started
        left = (self.total_steps - step) * elapsed / done if done > 0 and elapsed > 0 else math.nan
        return (
            f"epoch {self.epoch}/{self.epochs}, step {step}/{self.total_steps}, loss {loss:.4f}, "
            f"lr {lr:.3g}, {format_seconds(left)} left"
        )

    def end_epoch(self) -> None:
        self._close_bar()


def progress_bar(total: int, description: str) -> Any:
    """A tqdm bar on stderr: a widget in Jupyter (``tqdm.auto``, with ipywidgets), else text."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, leave=False, mininterval=0.5, dynamic_ncols=True)


class SweepProgress(_Ticks):
    """The progress of a range test's sweeps, in the `mode` of `resolve_progress`: a bar of
    its steps, or a line every `interval_s` seconds (``lr_find 1/2: step 40/100, loss 0.41,
    lr 0.0123``), or nothing. ``advance`` takes the loss the sweep reads each step anyway: no
    extra synchronisation with the device."""

    def __init__(
        self,
        mode: str,
        *,
        num_steps: int,
        repeats: int = 1,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(mode, interval_s, clock)
        self.num_steps, self.repeats = num_steps, repeats
        self.name = "lr_find"

    def start_sweep(self, repeat: int) -> None:
        """`repeat` counts from 0."""
        self.close()
        self.name = "lr_find" if self.repeats == 1 else f"lr_find {repeat + 1}/{self.repeats}"
        self._open_bar(self.num_steps, self.name)

    def advance(self, step: int, loss: float, lr: float) -> None:
        """Steps 0 .. `step` done, the last with `loss` at `lr`."""
        if not self._tick(1, loss, lr) and self._line_due() is not None:
            say(f"{self.name}: step {step + 1}/{self.num_steps}, loss {loss:.4f}, lr {lr:.3g}")

    def close(self) -> None:
        self._close_bar()
