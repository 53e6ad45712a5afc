"""The disciplined recipe: `tune`, `TunePlan` and the constants it runs on, `RecipeSettings`;
its batch-size stage on its own, `find_batch_size`."""

from superconverge.tuning.batch_size import BatchSizeResult, find_batch_size
from superconverge.tuning.plan import TunePlan, load_run, save_run
from superconverge.tuning.recipe import tune
from superconverge.tuning.settings import RecipeSettings

__all__ = [
    "BatchSizeResult",
    "RecipeSettings",
    "TunePlan",
    "find_batch_size",
    "load_run",
    "save_run",
    "tune",
]
