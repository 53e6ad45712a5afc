"""The recipe's last stages: the final 1cycle run, guarded against divergence, and the
diagnosis of its validation curve."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from superconverge.data.sources import DataSource
from superconverge.training.history import History
from superconverge.tuning.decisions import final_run_failed
from superconverge.tuning.plan import TunePlan
from superconverge.tuning.setup import RecipeSetup
from superconverge.tuning.stages import evidence, samples_per_epoch


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
            **options,
        )

    def record(why: str) -> dict[str, Any]:
        decision = f"{plan.epochs} epochs of 1cycle at max_lr {plan.max_lr:.3g}"
        steps = history.steps + history.discarded_steps
        samples = steps * plan.batch_size if per_epoch is None else _run_samples(history, per_epoch)
        if history.notes:
            why += "; " + "; ".join(n for n in history.notes if "restored the weights" in n)
        return evidence(
            "final_run",
            decision,
            why,
            time.perf_counter() - start,
            samples,
            epochs=history.epochs,
            backoffs=[n for n in history.notes if "restored the weights" in n],
        )

    records = []
    start = time.perf_counter()
    first_attempt = journal.get("final_run/first_attempt")
    if first_attempt is None:
        history = final_run()
        failure = final_run_failed(
            history.status, plan.results.get("final_val_loss"), short_run_loss, settings
        )
        if failure is not None:
            why = f"redone at max_lr / {settings.retry_lr_divisor:g}: {failure}"
            first_attempt = journal.record("final_run/first_attempt", record(why))
    if first_attempt is not None:
        records.append(first_attempt)
        start = time.perf_counter()
        plan.max_lr /= settings.retry_lr_divisor
        plan.min_lr /= settings.retry_lr_divisor
        history = final_run()
    records.append(journal.remember("final_run", lambda: record(history.status)))
    return records


def _run_samples(history: History, per_epoch: int) -> int:
    """Training samples of a final run: its epochs, plus the steps a back-off undid (at the
    epoch's mean samples per step)."""
    epochs = len(history.epochs)
    steps = max(1, history.steps)
    return epochs * per_epoch + round(history.discarded_steps * epochs * per_epoch / steps)


def diagnosis_stage(plan: TunePlan) -> dict[str, Any]:
    """6. The diagnosis of the final run's validation curve (arXiv:1803.09820, Remark 1)."""
    verdict = plan.results["verdict"]
    return evidence(
        "diagnosis", verdict["kind"], verdict["explanation"], 0.0, next_step=verdict["next_step"]
    )
