"""The recipe's measurements as an Optuna search space, for users who search anyway: Hugging
Face's ``Trainer.hyperparameter_search(backend="optuna", hp_space=...)`` or a study of their own.

The space is the recipe's own candidates, made continuous: the learning rate log-uniform over
the range test's lowest-loss LR divided by the largest and the smallest of the recipe's divisors
(10 and 3: `RecipeSettings.lr_divisors`), or, from a finished plan, a factor of 2 either side of
its max_lr; the weight decay among the candidates the recipe would try. The names are the ones
Hugging Face's `TrainingArguments` use (``learning_rate``, ``weight_decay``), so a trial's values
go straight into its arguments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from superconverge.finder.result import RangeTestResult
from superconverge.pytorch.optimizers import decouples_weight_decay
from superconverge.tuning.plan import TunePlan
from superconverge.tuning.settings import DEFAULT_SETTINGS, RecipeSettings

PLAN_LR_FACTOR = 2.0  # a plan's max_lr was chosen by short runs: search within x/÷ 2 of it


def hp_space(
    measured: RangeTestResult | TunePlan,
    *,
    weight_decays: Sequence[float] | None = None,
    settings: RecipeSettings = DEFAULT_SETTINGS,
) -> Callable[[Any], dict[str, Any]]:
    """An Optuna search space ``trial -> {"learning_rate": ..., "weight_decay": ...}`` around
    what a range test or `tune` measured.

    Args:
        measured: a `RangeTestResult` (its lowest-loss LR / 10 to / 3) or a `TunePlan` (its
            max_lr / 2 to x 2).
        weight_decays: the candidates (default: the recipe's for decoupled decay, AdamW's, as
            Hugging Face trains; for an SGD plan, SGD's).

    Example:
        >>> from superconverge.tuning import TunePlan
        >>> space = hp_space(TunePlan(epochs=3, batch_size=32, max_lr=0.01, min_lr=0.001,
        ...                           weight_decay=0.1, momentum=None, optimizer="adamw"))
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> values = space(optuna.create_study().ask())
        >>> 0.005 <= values["learning_rate"] <= 0.02, values["weight_decay"] in (0.1, 0.03, 0.01, 0)
        (True, True)
    """
    if isinstance(measured, TunePlan):
        low, high = measured.max_lr / PLAN_LR_FACTOR, measured.max_lr * PLAN_LR_FACTOR
        decoupled = measured.optimizer is None or decouples_weight_decay(measured.optimizer)
    elif isinstance(measured, RangeTestResult):
        lowest = measured.lowest_loss_lr
        if lowest is None or not math.isfinite(lowest) or lowest <= 0:
            raise ValueError(
                f"measured: the range test found no lowest-loss LR ({measured.reason or 'none'}); "
                "there is nothing to centre a search space on"
            )
        low, high = lowest / max(settings.lr_divisors), lowest / min(settings.lr_divisors)
        decoupled = True
    else:
        raise TypeError(
            f"measured must be a RangeTestResult or a TunePlan, got {type(measured).__name__}"
        )
    if weight_decays is None:
        decays = settings.decoupled_weight_decays if decoupled else settings.weight_decays
    else:
        decays = tuple(weight_decays)
    if not decays or any(not math.isfinite(w) or w < 0 for w in decays):
        raise ValueError(f"weight_decays must be finite numbers >= 0, got {tuple(decays)!r}")
    choices = [float(w) for w in decays]

    def space(trial: Any) -> dict[str, Any]:
        return {
            "learning_rate": trial.suggest_float("learning_rate", low, high, log=True),
            "weight_decay": trial.suggest_categorical("weight_decay", choices),
        }

    return space
