"""The plan a `Trainer` fit follows: the 1cycle plan a `Trainer.fit_one_cycle` call asks for, by
policy (with its max_lr from the range test when none is given), and a check of its length."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from superconverge import schedules
from superconverge._checks import check_count, check_positive
from superconverge.schedules import Plan
from superconverge.training.history import History

if TYPE_CHECKING:
    from superconverge.training.trainer import Trainer

# the paper's linear cycle and annihilation, OneCycleLR's cosine curve, fastai's curve
POLICIES: dict[str, Callable[..., Plan]] = {
    "smith": schedules.smith_one_cycle,
    "torch": schedules.one_cycle,
    "fastai": schedules.fastai_one_cycle,
}


def one_cycle_plan(
    policy: str,
    total_steps: int,
    max_lr: float,
    min_lr: float | None,
    final_lr: float | None,
    momentum: tuple[float, float] | None,
    warmup_fraction: float | None,
) -> Plan:
    """The `policy`'s 1cycle plan over `total_steps`; `warmup_fraction` only where the policy
    has one (smith's rise and fall are equal halves)."""
    if warmup_fraction is None:
        return POLICIES[policy](
            total_steps, max_lr, min_lr=min_lr, final_lr=final_lr, momentum=momentum
        )
    if policy == "smith":
        raise ValueError(
            "warmup_fraction applies to the torch and fastai policies; smith has equal halves"
        )
    return POLICIES[policy](
        total_steps,
        max_lr,
        min_lr=min_lr,
        final_lr=final_lr,
        momentum=momentum,
        warmup_fraction=warmup_fraction,
    )


def check_one_cycle_length(
    policy: str,
    epochs: int,
    steps_per_epoch: int,
    momentum: tuple[float, float] | None,
    warmup_fraction: float | None,
) -> None:
    """Refuse, before any range test, a fit too short for its 1cycle: the plan's own message
    names ``total_steps``, which the caller of `Trainer.fit_one_cycle` never gave."""
    total = epochs * steps_per_epoch
    try:
        one_cycle_plan(policy, total, 1.0, None, None, momentum, warmup_fraction)
    except ValueError as error:
        if "total_steps" not in str(error):
            raise  # another argument's own message
        raise ValueError(
            f"epochs={epochs} at {steps_per_epoch} optimizer updates per epoch give {total} "
            f"updates, too few for the {policy} 1cycle ({error}); raise epochs, or lower "
            "batch_size (or accumulation_steps) for more updates per epoch"
        ) from None


def range_test_max_lr(result: Any) -> tuple[float, str]:
    """The max_lr a range test (a `RangeTestResult`) suggests, and the note a History keeps of
    it; a ValueError naming max_lr when the test found none."""
    if result.max_lr is None:
        raise ValueError(
            f"max_lr: the range test found none ({result.reason}); pass max_lr, or run "
            "trainer.lr_find(...) with the settings this asks for (end_lr=, num_steps=; its "
            "curve: trainer.last_range_test.plot()) and pass its max_lr"
        )
    return result.max_lr, f"max_lr {result.max_lr:.3g} from the range test: {result.reason}"


def warn_if_short(plan: Plan, total_steps: int) -> None:
    """Warn (at the caller: `Trainer.fit`) when `plan` ends before the fit's `total_steps`: its
    last values are held."""
    if plan.total_steps is not None and plan.total_steps < total_steps:
        warnings.warn(
            f"the plan has {plan.total_steps} steps and the fit {total_steps}; "
            "the last values are held",
            stacklevel=2,
        )


# fastai's Learner.fine_tune: fit_one_cycle(freeze_epochs, pct_start=0.99), then the unfrozen
# fit_one_cycle(epochs, pct_start=0.3, div=5.0): its start is a fifth of its peak, not fastai's
# usual 25th
FASTAI_FROZEN_WARMUP = 0.99
FASTAI_FINE_TUNE_WARMUP = 0.3
FASTAI_FINE_TUNE_DIV = 5.0


def fine_tune(
    trainer: Trainer,
    epochs: int,
    base_lr: float,
    freeze_epochs: int,
    lr_mult: float,
    policy: str,
    options: dict[str, Any],
) -> History:
    """`Trainer.fine_tune`: the frozen body's 1cycle, then all groups with spread LRs. The
    second fit's arguments ride in the first fit's checkpoints (`Trainer.then`), so that a
    resume after a kill in the frozen phase goes on to the second (`finish_fine_tune`)."""
    # its own arguments named (base_lr=0 was "max_lr must be ...", lr_mult=0 a bare
    # ZeroDivisionError), before the body is frozen
    base_lr = check_positive("base_lr", base_lr)
    freeze_epochs = check_count("freeze_epochs", freeze_epochs)
    lr_mult = check_positive("lr_mult", lr_mult)
    # plain Python values: both fits' checkpoints are read back with weights_only=True
    options = {name: _plain(value) for name, value in options.items()}
    half = base_lr / 2
    first_options, second_options = dict(options), dict(options)
    if policy == "fastai":  # fastai's fine_tune curves, unless the caller gave their own
        first_options.setdefault("warmup_fraction", FASTAI_FROZEN_WARMUP)
        second_options.setdefault("warmup_fraction", FASTAI_FINE_TUNE_WARMUP)
        second_options.setdefault("min_lr", half / FASTAI_FINE_TUNE_DIV)
    then = {
        "fine_tune": {
            "epochs": int(epochs),
            "max_lr": (half / float(lr_mult), half),
            "freeze_epochs": int(freeze_epochs),
            "policy": str(policy),
            "options": second_options,
        }
    }
    trainable = [(p, p.requires_grad) for p in trainer.model.parameters()]
    earlier = trainer.history
    trainer.freeze()
    trainer.then = then
    try:
        first = trainer.fit_one_cycle(freeze_epochs, base_lr, policy=policy, **first_options)
    except Exception:
        if trainer.history is earlier:  # refused before it trained: the body as it was (a
            # later fit trained only the head, silently)
            for parameter, flag in trainable:
                parameter.requires_grad_(flag)
        raise
    finally:
        trainer.then = None
    return finish_fine_tune(trainer, first, then)


def _plain(value: Any) -> Any:
    """A numpy or torch scalar as the Python number it holds (tuples item by item)."""
    if isinstance(value, (tuple, list)):
        return tuple(_plain(item) for item in value)
    if type(value) in (bool, int, float, str):  # not isinstance: np.float64 is a float
        return value
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def finish_fine_tune(trainer: Trainer, first: History, then: dict[str, Any]) -> History:
    """After `fine_tune`'s frozen phase (run now, or resumed from a checkpoint that carries
    `then`): all groups for the second fit, unless the first did not complete."""
    trainer.unfreeze()
    if first.status != "completed":
        return first
    second_fit = then["fine_tune"]
    if trainer.run_folder is not None:
        trainer.run_folder.continue_run()  # one call, one run: phase 2 replaces phase 1
    second = trainer.fit_one_cycle(
        second_fit["epochs"],
        tuple(second_fit["max_lr"]),
        policy=second_fit["policy"],
        **second_fit["options"],
    )
    last = first.epochs[-1] if first.epochs else {}
    second.notes.insert(0, f"after {second_fit['freeze_epochs']} frozen epoch(s): {last}")
    return second
