"""Loaded by pytest before any test or doctest module: Keras 3 must run on the torch backend in
the tests, and the backend is fixed by the first ``import keras``."""

import os

os.environ["KERAS_BACKEND"] = "torch"
