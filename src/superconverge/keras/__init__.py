"""Keras 3 support: the cyclical SGD optimizer, 1cycle and cyclical LR schedules, a callback that
cycles momentum, and the LR range test — on any Keras 3 backend, tested on ``KERAS_BACKEND=torch``.

Install with ``pip install 'superconverge[keras]'``. The schedule values come from
`superconverge.schedules`, so a Keras run and a PyTorch run of the same plan use the same LR and
momentum at every step.
"""

from __future__ import annotations

# first: it picks keras's backend before keras loads, and names what is missing
from superconverge.keras._backend import BACKEND  # noqa: F401 - imported for that effect
from superconverge.keras.callbacks import CyclicMomentum
from superconverge.keras.finder import lr_find
from superconverge.keras.optimizers import CyclicSGD
from superconverge.keras.schedules import Cyclic, OneCycle, PlanSchedule, SmithOneCycle

__all__ = [
    "Cyclic",
    "CyclicMomentum",
    "CyclicSGD",
    "OneCycle",
    "PlanSchedule",
    "SmithOneCycle",
    "lr_find",
]
