"""The recipe's last stages: the final 1cycle run, guarded against divergence, and the
diagnosis of its validation curve."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from superconverge._display import plural
from superconverge.data.sources import DataSource
from superconverge.diagnostics.verdicts import diagnose_by_run_length
from superconverge.training.callbacks import Callback
from superconverge.training.edge import short_search_advice
from superconverge.training.history import History
from superconverge.tuning.decisions import final_run_failed
from superconverge.tuning.journal import Journal
from superconverge.tuning.plan import SEARCH, TunePlan
from superconverge.tuning.setup import RecipeSetup
from superconverge.tuning.stages import evidence, samples_per_epoch

# tune chose the batch (the smallest it tries, where the rise is this short) and has no max_lr
# to pass: more epochs, or the search that does not depend on the run's length
SHORT_SEARCH_ADVICE = (
    "give the final run at least {enough} updates (more epochs), or search by short runs "
    "instead (--lr-search short-runs; RecipeSettings(lr_search='short_runs'))"
)


def final_run_stage(
    setup: RecipeSetup,
    plan: TunePlan,
    short_run_loss: float,
    test_data: DataSource | None,
    out_dir: str | Path | None,
    options: dict[str, Any],
) -> list[dict[str, Any]]:
    """5. The final 1cycle run. A divergence is answered inside the run: the weights of the
    epoch's start are restored and the epoch runs again at half the LR (up to
    `settings.backoff_retries` times), so the run is not lost. A run that completes yet ends far
    above its short run (same settings, fewer epochs) sits at the edge of stability: it is run
    once more, lower (one more record). A run in the journal continues from its last epoch
    checkpoint; the folder is this run's own (`recipe_folder` moved any earlier run aside)."""
    settings, journal = setup.settings, setup.journal
    per_epoch = samples_per_epoch(setup)

    def final_run() -> Any:
        with short_search_advice(SHORT_SEARCH_ADVICE):
            return plan.run(
                setup.model_fn,
                setup.train_data,
                setup.val_data,
                test_data=test_data,
                out_dir=out_dir,
                loss_fn=setup.loss_fn,
                augment=setup.augment,
                overwrite=True,
                resume=True,
                backoff=settings.backoff_retries,
                callbacks=[_JournalClock(journal), *setup.callbacks],
                **options,
            )

    def record(why: str) -> dict[str, Any]:
        decision = f"{plural(plan.epochs, 'epoch')} of 1cycle at max_lr {plan.max_lr:.3g}"
        if history.lr_search is not None:
            decision += " (found by its rise)"
        elif plan.policy == SEARCH:  # stopped before its rise found an edge
            decision = f"{plural(plan.epochs, 'epoch')} of 1cycle, its rise stopped before its edge"
        steps = history.steps + history.discarded_steps
        samples = steps * plan.batch_size if per_epoch is None else _run_samples(history, per_epoch)
        kept = [n for n in history.notes
                if "restored the weights" in n or n.startswith("WeightAverage:")]  # fmt: skip
        if kept:
            why += "; " + "; ".join(kept)
        search = {} if history.lr_search is None else {"lr_search": history.lr_search}
        return evidence(
            "final_run",
            decision,
            why,
            time.perf_counter() - start,
            samples,
            epochs=history.epochs,
            backoffs=[n for n in history.notes if "restored the weights" in n],
            **search,
        )

    records = []
    start = time.perf_counter()
    first_attempt = journal.get("final_run/first_attempt")
    if first_attempt is None:
        history = final_run()
        failure = final_run_failed(
            history.status, plan.results.get("final_val_loss"), short_run_loss, settings
        )
        if failure is not None and math.isfinite(plan.max_lr):
            why = f"redone at max_lr / {settings.retry_lr_divisor:g}: {failure}"
            first_attempt = journal.record("final_run/first_attempt", record(why))
    if first_attempt is not None:
        records.append(first_attempt)
        start = time.perf_counter()
        if plan.policy == SEARCH:  # the redo runs Smith's cycle below what the search found
            plan.max_lr = float(first_attempt["details"]["lr_search"]["max_lr"])
            # as the search's own descent
            plan.min_lr = plan.max_lr / plan.search_settings().min_lr_divisor
            plan.policy = "smith"
        plan.max_lr /= settings.retry_lr_divisor
        plan.min_lr /= settings.retry_lr_divisor
        history = final_run()
    records.append(journal.remember("final_run", lambda: record(history.status)))
    return records


class _JournalClock(Callback):
    """Saves the journal after each epoch's checkpoint: its ``elapsed_s`` then holds the
    epochs a resume keeps, which the resumed final run is charged (`Journal.record`)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def after_epoch(self, fit: Any) -> None:
        if fit.trainer.rank == 0:
            self.journal.save()


def _run_samples(history: History, per_epoch: int) -> int:
    """Training samples of a final run: its epochs, plus the steps a back-off undid (at the
    epoch's mean samples per step)."""
    epochs = len(history.epochs)
    steps = max(1, history.steps)
    return epochs * per_epoch + round(history.discarded_steps * epochs * per_epoch / steps)


def judge_one_epoch(plan: TunePlan, short_loss: float, final: list[dict[str, Any]]) -> None:
    """A final run with one validation point (one epoch) gets no trend from its own curve; the
    recipe's short run at the same settings is a second point, fewer samples into the same
    1cycle: the verdict becomes under-fitting or good from the fall per doubling of training
    between them (`diagnose_by_run_length`), against the noise margin the LR stage used. Not
    where the final run was redone at another LR (`final` holds both attempts) or where the
    evidence lacks the short run's size (a journal from an earlier version)."""
    verdict = plan.results.get("verdict") or {}
    points = verdict.get("evidence", {}).get("val_losses", [])
    if verdict.get("kind") != "inconclusive" or len(points) != 1 or len(final) != 1:
        return
    bounds = next((r for r in plan.evidence if r.get("step") == "lr_bounds"), None)
    details = {} if bounds is None else bounds.get("details", {})
    short_samples = int((details.get("short_run") or {}).get("samples") or 0)
    margin = details.get("margin")
    if not short_samples or margin is None or plan.results.get("status") != "completed":
        return
    judged = diagnose_by_run_length(
        float(short_loss), short_samples, float(points[0]), int(final[0]["samples"]), margin
    )
    if judged is not None:
        plan.results["verdict"] = judged.to_dict()


def diagnosis_stage(plan: TunePlan) -> dict[str, Any]:
    """6. The diagnosis of the final run's validation curve (arXiv:1803.09820, Remark 1), or,
    for a one-epoch run, of its loss against its short run's (`judge_one_epoch`)."""
    verdict = plan.results["verdict"]
    return evidence(
        "diagnosis", verdict["kind"], verdict["explanation"], 0.0, next_step=verdict["next_step"]
    )
