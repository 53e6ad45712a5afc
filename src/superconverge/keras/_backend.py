"""Keras's backend, picked before keras is first imported (it reads it once, then): the torch
backend where keras would otherwise ask for a TensorFlow that is not installed.

`superconverge.keras` imports this module first, so every submodule finds keras loaded.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys

logger = logging.getLogger(__name__)

# keras reads its backend once, when first imported: KERAS_BACKEND, else keras.json, else this
_KERAS_DEFAULT_BACKEND = "tensorflow"


def _configured_backend() -> str:
    """The backend keras would load: ``KERAS_BACKEND``, else the ``backend`` of its keras.json
    (``$KERAS_HOME``, else ``~/.keras``, else ``/tmp/.keras``, as keras looks), else TensorFlow."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME")
    if home is None:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as file:
            backend = json.load(file).get("backend", _KERAS_DEFAULT_BACKEND)
    except (OSError, ValueError, AttributeError):
        backend = _KERAS_DEFAULT_BACKEND
    return str(backend)


def _choose_backend() -> str:
    """Before keras is first imported: when keras would load TensorFlow, its default (no
    KERAS_BACKEND, and keras.json says tensorflow or is missing: keras writes that file itself,
    with its default), and TensorFlow is not installed, use torch, which superconverge depends
    on. Any other backend was asked for and is left alone. Returns the backend keras gets."""
    backend = _configured_backend()
    if "keras" in sys.modules or os.environ.get("KERAS_BACKEND"):
        return backend
    if backend == _KERAS_DEFAULT_BACKEND and importlib.util.find_spec(backend) is None:
        os.environ["KERAS_BACKEND"] = "torch"
        logger.info(
            "keras backend: %s is not installed, using torch (KERAS_BACKEND=torch)", backend
        )
        return "torch"
    return backend


BACKEND = _choose_backend()
try:
    import keras
except ImportError as error:
    if importlib.util.find_spec("keras") is None:  # pragma: no cover - dev installs have keras
        raise ImportError(
            "superconverge.keras needs Keras 3: pip install 'superconverge[keras]'"
        ) from error
    # the module that is missing, which is not always the backend's name (keras's numpy
    # backend imports jax: "install numpy" was a user's answer to "No module named 'jax'")
    missing = getattr(error, "name", None) or BACKEND
    raise ImportError(
        f"superconverge.keras: Keras is installed but its {BACKEND!r} backend cannot be "
        f"imported ({error}); install {missing}, or use the torch backend that superconverge "
        "already installed: set KERAS_BACKEND=torch before importing keras"
    ) from error

if int(keras.__version__.split(".")[0]) < 3:  # pragma: no cover
    raise ImportError(
        f"superconverge.keras needs Keras 3, found keras {keras.__version__}; "
        "pip install 'keras>=3'"
    )
