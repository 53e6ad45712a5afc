"""The disciplined recipe: `tune` and `TunePlan`."""

from superconverge.tuning.runner import TunePlan, tune

__all__ = ["TunePlan", "tune"]
