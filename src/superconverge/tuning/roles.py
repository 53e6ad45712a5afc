"""Who does what in one `tune`: the single process (search, then final run), a study's
coordinator and workers (the short runs as Optuna trials, `superconverge.tuning.trials`), and the
ranks of a torchrun launch (the search on rank 0, its trials shared with the other ranks when
there is a study; the final run on all ranks, with DDP).

Under torchrun the final run keeps the search's global batch: each of the K ranks trains on
``batch // K`` samples a step, and when K does not divide the batch the LR bounds follow the
global batch linearly (Goyal et al., arXiv:1706.02677), as the `Trainer`'s docs say. Only rank 0
writes (the run folder, the journal, the study's plan).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from superconverge.data.sources import DataSource
from superconverge.pytorch.distributed import alone, broadcast_from_rank0
from superconverge.tuning.budget import SearchBudget
from superconverge.tuning.journal import Journal
from superconverge.tuning.plan import SEARCH, TunePlan
from superconverge.tuning.probes import run_short
from superconverge.tuning.resumable import recipe_folder
from superconverge.tuning.setup import RecipeSetup
from superconverge.tuning.stages import evidence
from superconverge.tuning.trials import JOIN_WAIT_S, SEARCHED, STOPPED, TrialError, TrialStudy

logger = logging.getLogger(__name__)
Search = Callable[[RecipeSetup, Any], tuple[TunePlan, float]]
Finish = Callable[[RecipeSetup, TunePlan, float, "DataSource | None", Any], TunePlan]
FIRST_ATTEMPT = "final_run/first_attempt"  # the final-run record every rank must agree on


@dataclass
class RecipeJob:
    """One `tune` call's arguments, checked and turned into data sources, and the two halves of
    the recipe (`search`, `finish`), ready to run in any role."""

    common: dict[str, Any]  # RecipeSetup's fields from model_fn to options
    request: Any
    test: DataSource | None
    made_with: dict[str, Any]  # the settings the journal and the study check
    trials: TrialStudy | None
    families: tuple[Any, ...]
    budget: float
    search: Search
    finish: Finish

    def setup(self, journal: Journal) -> RecipeSetup:
        return RecipeSetup(
            **self.common,
            journal=journal,
            budget=SearchBudget(0, self.budget),
            trials=self.trials,
            families=self.families,
        )

    def run_spec(self, setup: RecipeSetup) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return lambda spec: run_short(setup.short_run_from(spec))

    # ------------------------------------------------------------------ roles
    def coordinate(
        self,
        out_dir: str | Path | None,
        resume: bool,
        overwrite: bool,
        command: Sequence[str] | None,
        world: int = 1,
    ) -> TunePlan:
        """The search (trials in the study, if any) and the final run: a single process, a
        study's coordinator, or rank 0 of `world` ranks."""
        # the ranks the final run trains on: a resume on another number would train another
        # per-rank batch from the checkpoint (a single-process resume of a 2-rank run was
        # refused for a --batch-size its user never gave)
        made_with = {**self.made_with, "world_size": world} if world > 1 else self.made_with
        with recipe_folder(
            out_dir, made_with, resume=resume, overwrite=overwrite, command=command
        ) as journal:
            setup = self.setup(journal)
            if self.trials is not None:
                self.trials.create(self.made_with, command)
            try:
                with alone():
                    plan, short_loss = self.search(setup, self.request)
                if self.trials is not None:
                    self.trials.publish_plan(plan.to_json())
                    self.trials.set_state(SEARCHED)
            except BaseException:
                if self.trials is not None:  # the workers stop waiting for trials
                    self.trials.set_state(STOPPED)
                raise
            finally:
                if self.trials is not None:  # whatever failed, no beat outlives the search
                    self.trials.stop_beating()
            if world > 1:  # the account too: every rank's plan.compute is the search's
                broadcast_from_rank0(
                    (plan.to_json(), short_loss, journal.get(FIRST_ATTEMPT), setup.budget)
                )
                plan = per_rank(plan, world)
            plan = self.finish(setup, plan, short_loss, self.test, out_dir)
            journal.keep_replaced = plan.results.get("status") == "diverged"
            return plan

    def follow(self, out_dir: str | Path | None, world: int) -> TunePlan:
        """A rank > 0 under torchrun: the study's trials while rank 0 searches (when there is
        a study), then the final run with the others. Writes nothing."""
        setup = self.setup(Journal(None, self.made_with))
        if self.trials is not None:
            self.trials.open(wait=JOIN_WAIT_S)
            self.trials.check_settings(self.made_with)
            with alone():
                self.trials.serve(self.run_spec(setup))
        text, short_loss, first_attempt, budget = broadcast_from_rank0(None)
        if first_attempt is not None:
            setup.journal.records[FIRST_ATTEMPT] = first_attempt
        setup = replace(setup, budget=budget)  # rank 0's account: it searched, this rank did not
        plan = per_rank(TunePlan.from_json(text), world)
        return self.finish(setup, plan, short_loss, self.test, out_dir)

    def join(self) -> TunePlan:
        """A worker of the study: its trials until the coordinator's search is over; returns
        the plan the coordinator chose (not trained here: no results, no history)."""
        trials = self.trials
        if trials is None:  # tune checks this first
            raise ValueError("join=True needs study: the storage URL of the study")
        trials.open(wait=JOIN_WAIT_S)
        trials.check_settings(self.made_with)
        count = trials.serve(self.run_spec(self.setup(Journal(None, self.made_with))))
        text = trials.plan()
        if text is None:  # the coordinator left the search without a plan
            raise TrialError(
                f"worker {trials.worker} stopped after {count} trial(s): the coordinator "
                "stopped before its search was over (see its output)"
            )
        logger.info("the coordinator's search is over; this worker ran %d trial(s)", count)
        return TunePlan.from_json(text)


def per_rank(plan: TunePlan, world: int) -> TunePlan:
    """The plan for each of `world` ranks: the search's batch shared out (global batch kept
    when `world` divides it, else the LR bounds scaled by the new global batch)."""
    if world <= 1:
        return plan
    share = max(1, plan.batch_size // world)
    if plan.policy == SEARCH:  # the final run's rise finds its LR at the global batch it has
        note = (
            f"on {world} ranks (DDP): batch {share} per rank, global {share * world}; the LR is "
            "found by the final run's rise at that batch"
        )
        record = evidence("ranks", note, "the final run's global batch", 0.0)
        return replace(plan, batch_size=share, evidence=[*plan.evidence, record])
    scale = share * world / plan.batch_size
    if scale != 1.0:
        logger.warning(
            "%d ranks do not divide batch %d: %d per rank, global batch %d, LR bounds x %.3g",
            world,
            plan.batch_size,
            share,
            share * world,
            scale,
        )
    note = (
        f"on {world} ranks (DDP): batch {share} per rank, global {share * world} (the search's "
        f"{plan.batch_size} on one process), LR bounds x {scale:.3g}"
    )
    return replace(
        plan,
        batch_size=share,
        max_lr=plan.max_lr * scale,
        min_lr=plan.min_lr * scale,
        evidence=[*plan.evidence, evidence("ranks", note, "the final run's global batch", 0.0)],
    )
