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
import sys
import warnings
from collections.abc import Iterator

_shown: set[tuple[type[Warning], str]] | None = None  # inside `shown_once`: what was shown


@contextlib.contextmanager
def shown_once() -> Iterator[None]:
    """Within this block (one `tune`), each warning of `warn` / `warn_explicit` shows once."""
    global _shown
    outer, _shown = _shown, set() if _shown is None else _shown
    try:
        yield
    finally:
        _shown = outer


def _first_time(category: type[Warning], message: str) -> bool:
    if _shown is None:
        return True
    if (category, message) in _shown:
        return False
    _shown.add((category, message))
    return True


def warn(message: str, category: type[Warning] = UserWarning, stacklevel: int = 1) -> None:
    """`warnings.warn`, once per message inside `shown_once`."""
    if _first_time(category, message):
        warnings.warn(message, category, stacklevel=stacklevel + 1)


def warn_explicit(
    message: str, category: type[Warning], filename: str, lineno: int, module: str
) -> None:
    """A warning raised elsewhere (another process), shown as if raised at `filename:lineno` in
    `module` here: this process's filters decide; once per message inside `shown_once`."""
    if not _first_time(category, message):
        return
    known = sys.modules.get(module)
    registry = None if known is None else vars(known).setdefault("__warningregistry__", {})
    warnings.warn_explicit(message, category, filename, lineno, module=module, registry=registry)
