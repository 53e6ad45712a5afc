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


def _selects_gpu_tests(markexpr: str) -> bool:
    """Whether `-m markexpr` selects the tests marked `gpu` (and no other mark)."""
    if not markexpr:
        return True
    try:
        from _pytest.mark.expression import Expression

        return Expression.compile(markexpr).evaluate(lambda name, **_: name == "gpu")
    except Exception:  # another pytest's private API: read the default expression by its words
        return "not gpu" not in " ".join(markexpr.split())


def pytest_configure(config):
    """The tests outside the `gpu` marker expect the CPU's numbers (bitwise resumes, a plain
    loop's batches, float32): on a machine with CUDA, `device="auto"` would pick the GPU and
    bf16. So a run that leaves the `gpu` tests out sees no CUDA (on an H200, 2026-12-04, 21 of
    them failed with CUDA visible). SUPERCONVERGE_TEST_CUDA=1 keeps CUDA visible to them
    (benchmarks/gpu_checks.sh, to find what breaks on CUDA only)."""
    if os.environ.get("SUPERCONVERGE_TEST_CUDA") == "1":
        return
    if not _selects_gpu_tests(config.getoption("markexpr", "")):
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch first asks CUDA for its devices


def pytest_runtest_logreport(report):
    """With SUPERCONVERGE_FAILURE_LOG=FILE, each failure's traceback is appended to FILE as it
    happens (benchmarks/gpu_checks.sh: a run stopped by its time limit prints none at its end)."""
    path = os.environ.get("SUPERCONVERGE_FAILURE_LOG")
    # under pytest-xdist the controller gets each worker's report again (with its `node`)
    if path and report.failed and getattr(report, "node", None) is None:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"\n==== {report.nodeid} ({report.when})\n{report.longreprtext}\n")
