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
