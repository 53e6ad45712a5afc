"""Loaded by pytest before any test or doctest module: Keras 3 must run on the torch backend in
the tests, and the backend is fixed by the first ``import keras``."""

import os

os.environ["KERAS_BACKEND"] = "torch"

import importlib.util

# the optional front ends' doctests need their libraries (the dev extra installs them); without
# them their modules are skipped, as their tests skip themselves with importorskip
collect_ignore = [
    path
    for library, path in (
        ("lightning", "src/superconverge/lightning"),
        ("lightning", "tests/lightning"),
        ("transformers", "src/superconverge/huggingface"),
    )
    if importlib.util.find_spec(library) is None
]


# CPython 3.11's linecache.checkcache (doctest's debugger calls it before every doctest) loops
# over a copy of the cache's keys and reads each one; a SQLAlchemy class garbage-collected in
# that loop (Optuna's storages make them) drops its entry and the read raises KeyError. Seen once,
# in CI: a doctest failing with "KeyError: '<sqlalchemy generated __init__ ...>'". Later Pythons
# tolerate it; here a retry does (the entry is gone by then).
import linecache  # noqa: E402

_checkcache = linecache.checkcache


def _checkcache_tolerating_collected_entries(filename=None):
    for _ in range(5):
        try:
            return _checkcache(filename)
        except KeyError:
            continue
    return None


linecache.checkcache = _checkcache_tolerating_collected_entries
