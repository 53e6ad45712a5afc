"""Diagnosis of a finished run from its validation loss (Smith, arXiv:1803.09820, Remark 1).

Validation loss that is still falling at the end → underfitting; one that fell, then rose while
the training loss kept falling → overfitting. Pure functions on the numbers of a `History`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

VERDICTS = ("good", "underfitting", "overfitting", "diverged", "unstable", "inconclusive")
STILL_FALLING = 0.10  # the last epoch still removed > 10% of the run's whole improvement
ROSE = 0.02  # the final validation loss is > 2% above its minimum
# ... and the rise matters against the noise of the curve: more than 5% of the run's whole
# improvement and more than any rise the curve already made, and recovered from, before its
# minimum. A rise of 5e-4 at 100% validation accuracy was called overfitting without this
NOISE_OF_IMPROVEMENT = 0.05
UNSTABLE_SWINGS = 2  # at least this many rises of > 5% of the range, in the middle of the run


@dataclass(frozen=True)
class Verdict:
    """What happened, in one word, why, and what to do next."""

    kind: str
    explanation: str
    next_step: str
    # the losses it was judged on: in `to_dict`, not in the repr (whole lists of losses)
    evidence: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "explanation": self.explanation,
            "next_step": self.next_step,
            "evidence": self.evidence,
        }


# how a run that did not finish ended, in the verdict's words
_ENDED = {"failed": "stopped on an error"}


def diagnose_losses(
    train_losses: Sequence[float | None],
    val_losses: Sequence[float | None],
    *,
    status: str = "completed",
    message: str = "",
) -> Verdict:
    """Judge a run from its per-epoch training and validation losses.

    Example:
        >>> diagnose_losses([2.0, 1.0, 0.5], [2.0, 1.0, 0.6]).kind
        'underfitting'
        >>> diagnose_losses([2.0, 1.0, 0.5, 0.3], [2.0, 1.0, 1.1, 1.3]).kind
        'overfitting'
        >>> diagnose_losses([2.0, 0.3, 0.1, 0.05], [2.0, 0.3, 0.0120, 0.0125]).kind  # noise
        'good'

    An epoch without a validation (or training) loss is None. Where the two lists are as long
    as each other, an epoch is numbered by its place in them, so a run validated every other
    epoch names its best epoch as the run counted it.
    """
    train = [None if v is None else float(v) for v in train_losses]
    validated = [i for i, v in enumerate(val_losses) if v is not None]
    val = [float(v) for v in val_losses if v is not None]
    paired = len(val_losses) == len(train)
    if not paired:  # no epoch numbers to pair them by: 1, 2, ... in order
        validated = list(range(len(val)))
    evidence: dict[str, Any] = {"train_losses": train, "val_losses": val}
    known = [v for v in train if v is not None]
    if status == "diverged" or any(not math.isfinite(v) for v in val + known):
        return Verdict(
            "diverged",
            message or "the loss became NaN/inf or blew up during training",
            "lower max_lr (a third of it is a good next try) or add gradient clipping",
            evidence,
        )
    if len(val) < 2:
        return Verdict(
            "inconclusive",
            f"only {len(val)} validation point(s); the trend of the validation loss is unknown",
            "train for at least 2 epochs with validation data",
            evidence,
        )
    lowest = min(range(len(val)), key=val.__getitem__)
    span = max(val) - min(val)
    improvement = val[0] - val[lowest]
    best_epoch = validated[lowest] + 1  # as the run counted its epochs
    evidence |= {"best_epoch": best_epoch, "best_val_loss": val[lowest], "final_val_loss": val[-1]}
    swings = sum(1 for a, b in itertools.pairwise(val) if b - a > 0.05 * span and span > 0)
    rises_then_falls = swings >= UNSTABLE_SWINGS and lowest == len(val) - 1
    if rises_then_falls:
        return Verdict(
            "unstable",
            f"the validation loss went up {swings} times before reaching its minimum at the end",
            "lower max_lr or raise the batch size; check the data order and augmentation",
            evidence,
        )
    rise = val[-1] - val[lowest]
    final_rise = rise / max(abs(val[lowest]), 1e-12)
    earlier_rises = [b - a for a, b in itertools.pairwise(val[: lowest + 1])]
    noise = max([NOISE_OF_IMPROVEMENT * improvement, *earlier_rises])
    evidence |= {"rise": rise, "noise": noise}
    at_best, at_end = (train[validated[lowest]], train[-1]) if paired else (None, None)
    train_fell_after = at_best is not None and at_end is not None and at_end < at_best
    if lowest < len(val) - 1 and final_rise > ROSE and rise > noise and train_fell_after:
        return Verdict(
            "overfitting",
            f"the validation loss was lowest at epoch {best_epoch} ({val[lowest]:.4g}) and rose "
            f"{100 * final_rise:.1f}% by the end while the training loss kept falling",
            "raise weight decay, add augmentation or dropout, or train for fewer epochs",
            evidence,
        )
    last_drop = val[-2] - val[-1]
    if lowest == len(val) - 1 and improvement > 0 and last_drop > STILL_FALLING * improvement:
        share = (
            f"{100 * last_drop / improvement:.0f}% of the run's improvement"
            if last_drop <= improvement
            else "more than the run's whole improvement: it had risen before"
        )
        return Verdict(
            "underfitting",
            f"the validation loss was still falling in the last epoch ({val[-2]:.4g} → "
            f"{val[-1]:.4g}, {share})",
            "train longer or raise max_lr; a larger model can help too",
            evidence,
        )
    if swings >= UNSTABLE_SWINGS:
        return Verdict(
            "unstable",
            f"the validation loss rose {swings} times during the run",
            "lower max_lr or raise the batch size",
            evidence,
        )
    if lowest == len(val) - 1 and last_drop > 0 and improvement > 0:
        # still falling, but by little against the run's whole fall: not "levelled off"
        explanation = (
            f"the validation loss ended at its best, {val[-1]:.4g}, still falling but slowly: "
            f"the last epoch ({val[-2]:.4g} → {val[-1]:.4g}) removed "
            f"{100 * last_drop / improvement:.0f}% of the run's improvement, below the "
            f"{100 * STILL_FALLING:.0f}% that reads as underfitting"
        )
    else:
        if rise <= 0:
            within = " without rising"
        elif rise <= noise:
            within = (
                f"; its rise of {rise:.2g} after epoch {best_epoch} is within the curve's noise "
                f"({noise:.2g})"
            )
        elif final_rise <= ROSE:
            within = (
                f"; its rise of {rise:.2g} after epoch {best_epoch} is {100 * final_rise:.1f}% of "
                f"its best, within the {100 * ROSE:.0f}% that reads as overfitting"
            )
        else:  # the training loss did not fall after the minimum either
            within = (
                f"; it rose {100 * final_rise:.1f}% after epoch {best_epoch}, but the training "
                "loss did not fall meanwhile (not overfitting)"
            )
        explanation = (
            f"the validation loss levelled off at {val[-1]:.4g} (best {val[lowest]:.4g} at "
            f"epoch {best_epoch}){within}"
        )
    return Verdict(
        "good", explanation, "keep these settings; more epochs may still add a little", evidence
    )


MIN_LENGTH_RATIO = 2.0  # a shorter run at the same settings tells the trend only if it is < 1/2


def diagnose_by_run_length(
    short_loss: float,
    short_samples: int,
    final_loss: float,
    final_samples: int,
    noise: float,
) -> Verdict | None:
    """Under- or not underfitting, for a run with one validation point (one epoch), from a
    shorter run at the same settings: how much the validation loss fell per doubling of the
    training samples between them (the shorter run's own 1cycle, ending as this one did), against
    `noise`, the relative noise of a short run's validation loss. None where the numbers cannot
    tell (a ratio of lengths under 2, a loss that is not finite and positive, or a longer run
    that ended higher: then the one-point verdict stands).

    The rate is the average over the doublings between the two runs; a learning curve flattens
    as the loss nears its floor, so the next doubling usually gains less. Within one epoch every
    sample is new, so the run cannot have overfitted; a few more epochs over the same data are
    worth about as much as new data (Muennighoff et al., arXiv:2305.16264).

    Example:
        >>> diagnose_by_run_length(2.0, 4_000, 1.4, 45_000, 0.02).kind
        'underfitting'
        >>> diagnose_by_run_length(0.30, 4_000, 0.295, 45_000, 0.02).kind
        'good'
        >>> diagnose_by_run_length(0.30, 30_000, 0.20, 45_000, 0.02) is None  # only 1.5x longer
        True
    """
    values = (short_loss, final_loss)
    if not all(math.isfinite(v) and v > 0 for v in values) or short_samples <= 0:
        return None
    ratio = final_samples / short_samples
    if ratio < MIN_LENGTH_RATIO or final_loss > short_loss:
        return None
    doublings = math.log2(ratio)
    per_doubling = 1.0 - (final_loss / short_loss) ** (1.0 / doublings)
    evidence = {
        "short_run_val_loss": short_loss,
        "short_run_samples": short_samples,
        "final_val_loss": final_loss,
        "final_samples": final_samples,
        "fall_per_doubling": per_doubling,
        "noise": noise,
    }
    measured = (
        f"one validation point, but the run's validation loss ({final_loss:.4g}) is "
        f"{100 * (1 - final_loss / short_loss):.0f}% below that of the recipe's short run at the "
        f"same settings ({short_loss:.4g}, {ratio:.1f}x fewer samples): "
        f"{100 * per_doubling:.1f}% per doubling of training"
    )
    if per_doubling > noise:
        return Verdict(
            "underfitting",
            f"{measured}, more than the noise of a short run ({100 * noise:.1f}%)",
            "train longer (more epochs); the next doubling usually gains less than that average",
            evidence,
        )
    return Verdict(
        "good",
        f"{measured}, within the noise of a short run ({100 * noise:.1f}%): the loss has "
        "levelled off",
        "keep these settings; more epochs would add little",
        evidence,
    )


NEVER_LEARNED = 0.95  # the last steps' loss is still >= 95% of the first steps': no learning
EDGE_STEPS = 10
# what shows a model learned although its training loss did not fall (it started trained)
LEARNED_ACCURACY = 0.9  # a stuck network is at chance, its majority class's share at most
LEARNED_FALL = 0.02  # the validation loss's fall from its first epoch, as a share of it


def never_learned(
    step_losses: Sequence[float], val_losses: Sequence[float] = (), val_accuracy: float = math.nan
) -> Verdict | None:
    """A run whose training loss never fell (e.g. dead ReLUs after a too-large LR: the loss sits
    at chance level without ever becoming NaN), or None when the loss did fall, or when the
    validation data say the model has learned (a continued fit of a trained model starts at its
    loss's floor: its best validation accuracy is `LEARNED_ACCURACY` or more, or its validation
    loss fell by `LEARNED_FALL` of its first value or more; both were "diverged: the model did
    not learn" at 97.9% validation accuracy)."""
    finite = [v for v in step_losses if math.isfinite(v)]
    if len(finite) < 2 * EDGE_STEPS:
        return None
    val = [v for v in val_losses if math.isfinite(v)]
    if val_accuracy >= LEARNED_ACCURACY or (
        len(val) >= 2 and val[0] > 0 and min(val) <= (1 - LEARNED_FALL) * val[0]
    ):
        return None
    first = sum(finite[:EDGE_STEPS]) / EDGE_STEPS
    last = sum(finite[-EDGE_STEPS:]) / EDGE_STEPS
    if first <= 0 or last < NEVER_LEARNED * first:
        return None
    return Verdict(
        "diverged",
        f"the model did not learn: the training loss of the last {EDGE_STEPS} steps ({last:.4g}) "
        f"is {100 * last / first:.0f}% of the first {EDGE_STEPS} steps' ({first:.4g}); a too-large "
        "LR can leave a network stuck (dead ReLUs) without any NaN, and one far too small never "
        "moves it",
        "lower max_lr (a third of it is a good next try) and check the inputs' scale; if max_lr "
        "came from a range test whose loss barely fell (confidence low), it is more likely too "
        "small: standardise the inputs and targets and run the range test again",
        {"first_steps_loss": first, "last_steps_loss": last},
    )


def diagnose(history: Any) -> Verdict:
    """Diagnose any `History` (from `Trainer`, `tune` or `History.from_json`), or the final run
    of a `TunePlan`.

    Raises:
        TypeError: anything else, such as a run folder's path (the message says how to load it).
    """
    if not _is_history(history) and _is_history(getattr(history, "history", None)):
        history = history.history  # a TunePlan: its final run
    if not _is_history(history):
        raise TypeError(
            "history must be a History (a fit's, a TunePlan's .history, or a saved one: "
            "History.from_json(Path(folder, 'history.json').read_text())), got "
            f"{type(history).__name__} {history!r:.80}"
        )
    train = [row.get("train_loss", math.nan) for row in history.epochs]
    by_epoch = [row.get("val_loss") for row in history.epochs]  # None: not validated
    val = [v for v in by_epoch if v is not None]
    if history.status == "diverged":
        return diagnose_losses(train, by_epoch, status="diverged", message=history.message)
    if history.status in ("interrupted", "running", "failed"):  # not "train longer"
        done = len(history.epochs)
        return Verdict(
            "inconclusive",
            f"the run {_ENDED.get(history.status, 'was ' + history.status)} after {done} "
            f"epoch{'s' * (done != 1)}: its schedule "
            "had not reached its low-LR end, so its curve says nothing yet of under- or "
            "over-fitting",
            "resume it (Trainer.resume, or --resume on the command line) and diagnose the "
            "finished run",
            {"epochs_done": done},
        )
    accuracies = [row.get("val_accuracy", math.nan) for row in history.epochs]
    best = max((a for a in accuracies if math.isfinite(a)), default=math.nan)
    stuck = never_learned(history.step_losses, val, best)
    if stuck is not None:
        return stuck
    if not val:
        return Verdict(
            "inconclusive",
            "the run recorded no validation loss",
            "pass val_data to see under- or over-fitting",
            {},
        )
    return diagnose_losses(train, by_epoch, status=history.status)


def _is_history(value: Any) -> bool:
    """Whether `value` reads as a History: its epochs, status, message and step losses."""
    return all(hasattr(value, name) for name in ("epochs", "status", "message", "step_losses"))
