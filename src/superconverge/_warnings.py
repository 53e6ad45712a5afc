"""Warnings that one `tune` shows once, however many runs raise them.

The recipe builds a trainer per range test and short run, some in spawned processes; each
would raise the same warning about the user's data again (a named metric that does not apply),
and Python's own "once per location" forgets what it showed whenever any code changes the
warning filters (``warnings.catch_warnings``), as the library's first-batch check does. Inside
`shown_once` a message is shown the first time only; outside it, warnings are Python's.

Plain Python (stdlib only).
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import os
import sys
import warnings
from collections.abc import Hashable, Iterator

# inside `shown_once`: the keys of what was shown (per thread and task: two tunes at once in one
# process, e.g. a notebook's background thread, each keep their own)
_shown: contextvars.ContextVar[set[Hashable] | None] = contextvars.ContextVar(
    "superconverge_warnings_shown", default=None
)


@contextlib.contextmanager
def shown_once() -> Iterator[None]:
    """Within this block (one `tune`), each warning of `warn` / `warn_explicit` shows once."""
    outer = _shown.get()
    token = _shown.set(set() if outer is None else outer)
    try:
        yield
    finally:
        _shown.reset(token)


def _first_time(key: Hashable) -> bool:
    shown = _shown.get()
    if shown is None:
        return True
    if key in shown:
        return False
    shown.add(key)
    return True


def warn(
    message: str,
    category: type[Warning] = UserWarning,
    stacklevel: int = 1,
    key: Hashable | None = None,
) -> None:
    """`warnings.warn`, once per `key` (default: the category and message) inside
    `shown_once`; a key lets messages that differ in detail (a batch's shape) count as one."""
    if key is None:
        key = (category, message)
    if _first_time(key):
        raised = category(message)
        raised.superconverge_key = key  # type: ignore[attr-defined]  # for `warn_explicit`
        warnings.warn(raised, stacklevel=stacklevel + 1)


def user_stacklevel() -> int:
    """The `stacklevel` that points a warning raised by this function's caller at the first
    frame outside superconverge: the user's own call, whatever lies between (an entry point's
    argument conversion, `_checks.plain_arguments`, adds a frame that a fixed stacklevel would
    name instead: ``_checks.py:53: RuntimeWarning``)."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    # a context manager used as a decorator (`shown_once`, `kept_global_rng` on `tune`) puts
    # contextlib's frame between ours: a warning from `tune` was shown at contextlib.py:81
    wrappers = {os.path.abspath(contextlib.__file__)}
    here = inspect.currentframe()
    assert here is not None and here.f_back is not None
    frame, level = here.f_back, 1  # the caller: stacklevel 1
    while frame.f_back is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not (path.startswith(package) or path in wrappers):
            break
        frame, level = frame.f_back, level + 1
    return level  # the outermost frame where all of them are ours (the CLI)


def key_of(warning: Warning) -> Hashable | None:
    """The key `warn` gave a warning (None for any other warning)."""
    return getattr(warning, "superconverge_key", None)


def warn_explicit(
    message: str,
    category: type[Warning],
    filename: str,
    lineno: int,
    module: str,
    key: Hashable | None = None,
) -> None:
    """A warning raised elsewhere (another process), shown as if raised at `filename:lineno` in
    `module` here: this process's filters decide; once per `key` (or message) inside
    `shown_once`."""
    if not _first_time((category, message) if key is None else key):
        return
    known = sys.modules.get(module)
    registry = None if known is None else vars(known).setdefault("__warningregistry__", {})
    warnings.warn_explicit(message, category, filename, lineno, module=module, registry=registry)
