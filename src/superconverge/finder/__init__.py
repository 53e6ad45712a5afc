"""The LR range test: `lr_find` (runner, imports torch) and its analysis (numpy only)."""

from superconverge.finder.analysis import (
    analyse,
    divergence_lr,
    suggest_minimum,
    suggest_steepest,
    suggest_valley,
)
from superconverge.finder.result import Confidence, RangeTestResult, Superconvergence

__all__ = [
    "Confidence",
    "RangeTestResult",
    "Superconvergence",
    "analyse",
    "divergence_lr",
    "suggest_minimum",
    "suggest_steepest",
    "suggest_valley",
]
