"""superconverge: Leslie Smith's disciplined approach to neural-network hyper-parameters.

The schedule math (`superconverge.schedules`) is plain Python; names that need PyTorch are
imported on first use, so ``import superconverge.schedules`` never loads torch.
"""

from __future__ import annotations

import importlib
import logging
import sys
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


class _UnconfiguredHandler(logging.Handler):
    """The library's decisions (``tune: lr_bounds = ...``, the range test's pick) on stderr for
    a script or notebook that configured no logging, where Python would show only warnings;
    silent as soon as the root logger has a handler (``logging.basicConfig``, pytest, a host
    application): the records then propagate there as usual, so nothing prints twice. Lightning
    does the same for its own logger. Silence it with
    ``logging.getLogger("superconverge").setLevel(logging.WARNING)``."""

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # a log line must never break a run
            self.handleError(record)


_logger = logging.getLogger(__name__)
if not _logger.handlers:  # once, however often the package is reloaded
    _logger.addHandler(_UnconfiguredHandler())
    if _logger.level == logging.NOTSET:
        _logger.setLevel(logging.INFO)

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
    "diagnose": "superconverge.diagnostics.verdicts",
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
    "lr_find",
    "one_cycle",
    "piecewise_constant",
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
