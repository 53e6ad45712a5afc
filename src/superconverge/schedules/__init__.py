"""Schedule math: plain Python, no torch, numpy or I/O.

A schedule turns a step (one optimizer update, counted from 0) into a float. A `Plan` pairs an
LR schedule with an optional momentum schedule; the policy functions build the plans users ask
for by name.
"""

from superconverge.schedules.plans import (
    Plan,
    constant,
    cyclic,
    fastai_one_cycle,
    one_cycle,
    piecewise_constant,
    smith_one_cycle,
)
from superconverge.schedules.primitives import (
    Chain,
    Constant,
    Cyclic,
    Piecewise,
    Ramp,
    Schedule,
)

__all__ = [
    "Chain",
    "Constant",
    "Cyclic",
    "Piecewise",
    "Plan",
    "Ramp",
    "Schedule",
    "constant",
    "cyclic",
    "fastai_one_cycle",
    "one_cycle",
    "piecewise_constant",
    "smith_one_cycle",
]
