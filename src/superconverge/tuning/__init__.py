"""The disciplined recipe: `tune`, `TunePlan` and the constants it runs on, `RecipeSettings`;
its batch-size stage on its own, `find_batch_size`; its short runs as trials of an Optuna study,
`TrialStudy`."""

from superconverge.tuning.batch_size import BatchSizeResult, find_batch_size
from superconverge.tuning.plan import TunePlan, load_run, save_run
from superconverge.tuning.recipe import tune
from superconverge.tuning.search_space import hp_space
from superconverge.tuning.settings import RecipeSettings
from superconverge.tuning.trials import TrialStudy

__all__ = [
    "BatchSizeResult",
    "RecipeSettings",
    "TrialStudy",
    "TunePlan",
    "find_batch_size",
    "hp_space",
    "load_run",
    "save_run",
    "tune",
]
