"""superconverge: Leslie Smith's disciplined approach to neural-network hyper-parameters.

The schedule math (`superconverge.schedules`) is plain Python; names that need PyTorch are
imported on first use, so ``import superconverge.schedules`` never loads torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from superconverge.schedules import (
    Plan,
    constant,
    cyclic,
    fastai_one_cycle,
    one_cycle,
    piecewise_constant,
    smith_one_cycle,
)

__version__ = "0.1.0"

# public name -> module that defines it; loaded lazily because these modules import torch
_LAZY = {
    "HyperparamScheduler": "superconverge.pytorch",
    "lr_find": "superconverge.finder.runner",
    "RangeTestResult": "superconverge.finder.result",
    "Trainer": "superconverge.training",
    "History": "superconverge.training",
    "tune": "superconverge.tuning",
    "find_batch_size": "superconverge.tuning",
    "BatchSizeResult": "superconverge.tuning",
    "TunePlan": "superconverge.tuning",
    "TrialStudy": "superconverge.tuning",
    "load_run": "superconverge.tuning",
    "diagnose": "superconverge.diagnostics.verdicts",
    "render_report": "superconverge.diagnostics.report",
}

__all__ = [
    "BatchSizeResult",
    "History",
    "HyperparamScheduler",
    "Plan",
    "RangeTestResult",
    "Trainer",
    "TrialStudy",
    "TunePlan",
    "constant",
    "cyclic",
    "diagnose",
    "fastai_one_cycle",
    "find_batch_size",
    "load_run",
    "lr_find",
    "one_cycle",
    "piecewise_constant",
    "render_report",
    "smith_one_cycle",
    "tune",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'superconverge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
