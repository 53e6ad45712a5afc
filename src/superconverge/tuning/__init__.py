"""The disciplined recipe: `tune`, `TunePlan` and the constants it runs on, `RecipeSettings`."""

from superconverge.tuning.plan import TunePlan, load_run, save_run
from superconverge.tuning.recipe import tune
from superconverge.tuning.settings import RecipeSettings

__all__ = ["RecipeSettings", "TunePlan", "load_run", "save_run", "tune"]
