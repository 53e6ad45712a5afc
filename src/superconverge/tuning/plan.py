"""`TunePlan`, the recipe's declared result, and the run folder it is saved to.

A run folder holds ``plan.json`` (the chosen values, the evidence, the final run's results),
``history.json`` (the final run) and ``range_tests.json`` (one range test per weight decay):
everything `superconverge report` needs. `save_run` writes them, each atomically; `load_run`
reads them back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from superconverge._checks import check_choice, plain_arguments
from superconverge._files import write_text_atomically
from superconverge._json import (
    check_fields,
    check_parts,
    decode_nonfinite,
    encode_nonfinite,
    reject_unknown_keys,
)
from superconverge.batches import BatchFn
from superconverge.data.loader import Augment
from superconverge.diagnostics.verdicts import diagnose
from superconverge.finder.result import RangeTestResult
from superconverge.losses import CUSTOM, LOSSES
from superconverge.metrics import MetricsSpec
from superconverge.pytorch.distributed import world as process_world
from superconverge.pytorch.optimizers import OptimizerSpec
from superconverge.pytorch.snapshot import kept_global_rng
from superconverge.training.averaging import WeightAverage
from superconverge.training.callbacks import Callback
from superconverge.training.checkpoint import CHECKPOINT, load_checkpoint
from superconverge.training.edge import (
    EARLIER_CONSTANTS,
    EdgeSettings,
    search_constants,
    search_from_constants,
)
from superconverge.training.history import History
from superconverge.training.plans import POLICIES
from superconverge.training.progress import tell
from superconverge.training.trainer import Trainer

logger = logging.getLogger(__name__)

# the policy of a plan whose final run searches its max_lr (`fit_one_cycle(max_lr="search")`)
SEARCH = "search"
# the search's constants of a "search" plan written before plans recorded them: the defaults
# then (max_lr = the lowest loss's LR / 4 until 2026-12-03's divisor change, on every edge; the
# rest as now)
EARLIER_SEARCH: dict[str, Any] = {"divisor": 4.0, "plateau_factor": 1.0}
# objects, not data: kept on the plan for callers, never written to plan.json
_NOT_SAVED = ("history", "range_tests", "trainer")
# the parts of a plan's results, compute and evidence that its readers (the report, the CLI's
# lines, the notebook view) take apart, as tune writes them: a hand-edited "test": [1] was
# "AttributeError: 'list' object has no attribute 'items'" in `superconverge report`
_RESULTS = {
    "status": str,
    "final_val_loss": float | None,
    "final_val_accuracy": float | None,
    "final_val_metrics": dict[str, float | None],
    "verdict": dict[str, Any],
    "test": dict[str, float | None],
    "weight_average": dict[str, Any] | None,
    "train_seconds": float,
}
_VERDICT = {"kind": str, "explanation": str, "next_step": str, "evidence": dict[str, Any]}
_AVERAGE = {
    "steps": int,
    "kept": str,
    "val_loss_average": float | None,
    "val_loss_last": float | None,
    "gain": float | None,
    "noise": float | None,
}
_COMPUTE = {
    "budget": float,
    "search_samples": int,
    "final_run_samples": int,
    "handed_to_final_run_samples": int,
    "x_final_run": float,
    "floor_samples": int | None,
}
_COMPUTE_READ = ("budget", "search_samples", "final_run_samples", "x_final_run")
_STEP = {"step": str, "why": str, "seconds": float, "samples": int}
REQUIRED_RUN_FILES = ("plan.json", "history.json")  # a fit --plan folder has no range tests
RUN_FILES = (*REQUIRED_RUN_FILES, "range_tests.json")


@dataclass
class TunePlan:
    """The chosen hyper-parameters, the evidence for each, and (after the final run) results.

    ``evidence`` holds one record per stage of the recipe (``step``, ``decision``, ``why``,
    ``seconds``, ``details``); ``results`` the final run's status, validation loss and accuracy,
    verdict, seconds and (with test data) test metrics. ``history``, ``range_tests`` and
    ``trainer`` are the final run's `History`, the range tests by label and the `Trainer` that
    ran it (for ``predict``/``evaluate``): objects, not saved by `to_json` (see `save_run`).
    """

    epochs: int
    batch_size: int
    max_lr: float
    min_lr: float
    weight_decay: float
    momentum: tuple[float, float] | float | None
    policy: str = "smith"
    seed: int = 0
    optimizer: str | None = "sgd"  # a name from OPTIMIZERS; None: the caller's own callable
    # a "search" plan's in-run search constants, all of them (`training.edge.search_constants`):
    # the re-run searches as the tune run did, whatever the defaults are by then; {} otherwise
    search: dict[str, Any] = field(default_factory=dict)
    # the final run's weights averaged over its last `weight_average` of steps and kept where
    # that lowers the validation loss (`WeightAverage`); None: not averaged (plans before it)
    weight_average: float | None = None
    loss: str | None = None  # a name from superconverge.losses or module:function (CLI)
    data: str | None = None  # names for re-running from the CLI
    model: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    # how the CLI served the data, to serve it the same way again (num_workers, steps_per_epoch,
    # metrics, batch_fn and collate_fn entry points)
    data_options: dict[str, Any] = field(default_factory=dict)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    # what the recipe spent, in training samples: per stage, the search, the final run, the
    # budget it was given (`superconverge.tuning.budget.SearchBudget.summary`)
    compute: dict[str, Any] = field(default_factory=dict)
    # where it ran: torch threads and the cores the process may use, device, seed
    environment: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    history: History | None = field(default=None, repr=False, compare=False)
    range_tests: dict[str, RangeTestResult] = field(default_factory=dict, repr=False, compare=False)
    trainer: Trainer | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        """One line of a few hundred characters: the chosen values and the verdict."""
        from superconverge._display import short_plan

        return short_plan(self)

    def _repr_html_(self) -> str:
        """A small table for notebooks: the chosen values, each stage's decision, the results."""
        from superconverge._display import plan_html

        return plan_html(self)

    def to_dict(self) -> dict[str, Any]:
        """The saved fields (everything but `history`, `range_tests` and `trainer`) as JSON data."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NOT_SAVED}
        data: dict[str, Any] = encode_nonfinite(values)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TunePlan:
        """The plan in `data` (as `to_dict` writes it), each field's type checked: a
        ValueError names a missing field, an unknown one, or one of another type."""
        if not isinstance(data, dict):
            raise ValueError(f"a tune plan is a JSON object, got {type(data).__name__}")
        saved = [f.name for f in fields(cls) if f.name not in _NOT_SAVED]
        reject_unknown_keys(data, saved, "plan settings")
        check_fields(cls, data, "a tune plan")
        _check_parts(data)
        values = decode_nonfinite(data)
        if isinstance(values.get("momentum"), list):
            values["momentum"] = tuple(values["momentum"])
        if "policy" in values:  # its own choices: the search's too, which no Trainer policy is
            check_choice("policy", values["policy"], (*POLICIES, SEARCH))
        if values.get("policy") == SEARCH and "search" not in values:
            values["search"] = dict(EARLIER_SEARCH)  # as it searched when it was written
        search_from_constants(values.get("search", {}), "the plan's search")  # checked now
        average = values.get("weight_average")
        if average is not None and not 0 < average <= 1:  # a hand-edited 5 failed mid-fit
            raise ValueError(f"weight_average must be in (0, 1] or null, got {average!r}")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> TunePlan:
        return cls.from_dict(json.loads(text))

    def check_values(self) -> None:
        """A ValueError (TypeError for a wrong type) naming the first field whose value no run
        can train with: `from_dict` checks types, a hand-edited ``epochs: 0`` or ``max_lr: -1``
        was only found by the run (after `fit --force` had moved the earlier run aside)."""
        from superconverge._checks import (
            check_count,
            check_max_lr,
            check_momentum,
            check_non_negative,
            check_not_above,
            check_positive,
        )
        from superconverge.pytorch.optimizers import OPTIMIZERS

        check_count("epochs", self.epochs)
        check_count("batch_size", self.batch_size)
        if self.policy != SEARCH:  # a search plan's max_lr and min_lr are found again
            check_max_lr(self.max_lr)
            check_positive("min_lr", self.min_lr)
            check_not_above("min_lr", self.min_lr, "max_lr", self.max_lr)
        check_non_negative("weight_decay", self.weight_decay)
        if isinstance(self.momentum, (int, float)):  # one value, held
            check_momentum((self.momentum, self.momentum))
        else:
            check_momentum(self.momentum)
        if self.optimizer is not None:
            check_choice("optimizer", self.optimizer, tuple(OPTIMIZERS))
        world = (self.environment or {}).get("world_size", 1)
        if isinstance(world, bool) or not isinstance(world, int) or world < 1:
            raise ValueError(f"environment.world_size must be an integer >= 1, got {world!r}")

    def search_settings(self) -> EdgeSettings:
        """The in-run search's constants this plan records (`search`), as `EdgeSettings`;
        a ValueError names a bad one."""
        return search_from_constants(self.search, "the plan's search")

    def _loss(self, loss_fn: Callable[..., torch.Tensor] | None) -> Callable[..., torch.Tensor]:
        """`loss_fn`, else the loss the plan was tuned with (its training and validation loss
        would otherwise be another loss's: cross-entropy on a regression is 0 at every step)."""
        if loss_fn is not None:
            return loss_fn
        if self.loss is None:  # a plan written by hand, or before plans recorded their loss
            return nn.functional.cross_entropy
        if self.loss in LOSSES:
            return LOSSES[self.loss]
        if self.loss == CUSTOM:
            raise ValueError(
                "loss_fn must be given: the plan was tuned with your own loss function, which a "
                "plan cannot hold; pass it again"
            )
        raise ValueError(
            f"loss_fn must be given: the plan was tuned with {self.loss!r}, your own code, which "
            "plan.run does not import from a plan; pass the function again"
        )

    @kept_global_rng()  # it seeds torch for the run; the caller's generator is given back
    @plain_arguments
    def run(
        self,
        model_fn: Callable[[], nn.Module],
        train_data: Any,
        val_data: Any = None,
        *,
        test_data: Any = None,
        out_dir: str | Path | None = None,
        loss_fn: Callable[..., torch.Tensor] | None = None,
        augment: Augment | None = None,
        overwrite: bool = False,
        resume: bool = False,
        optimizer: OptimizerSpec | None = None,
        metrics: MetricsSpec = "auto",
        batch_fn: BatchFn | None = None,
        steps_per_epoch: int | None = None,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        backoff: int = 0,
        precision: str = "auto",
        device: str | torch.device = "auto",
        val_steps: int | None = None,
        test_steps: int | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> History:
        """Train with these settings (the recipe's final 1cycle run); fills ``results``,
        ``history`` and ``trainer``.

        The data are any kinds the `Trainer` takes, read the same way (`batch_fn`,
        `steps_per_epoch`, `num_workers`, `collate_fn`); `optimizer` defaults to the plan's
        (a plan made with a callable needs it again). ``results`` holds the final validation
        loss, every validation metric (``final_val_metrics``) and, with `test_data`, the test
        loss and metrics. With `resume`, a ``checkpoint.pt`` in `out_dir` saved by a run of these
        settings is continued from its last epoch instead of starting again. `backoff`: as for
        `Trainer.fit_one_cycle` (divergences answered by restoring and halving the LR); `precision`,
        `device` and `val_steps` as for `Trainer` (``device="auto"``: CUDA where there is one,
        whatever device the plan was tuned on); `test_steps`: batches of a `test_data` stream (as
        `Trainer.evaluate`'s `steps`). `loss_fn` defaults to the plan's loss when it is a
        built-in (``plan.loss``: "mse", ...; cross-entropy when the plan names none); a plan
        made with your own loss needs it again. A plan with a `weight_average` averages the
        run's last weights (`WeightAverage`, with `val_data` only) and keeps the average where
        its validation loss is lower: ``results["weight_average"]`` says which weights the model
        holds, and the final validation values are theirs. `callbacks`: more `Callback`s for
        the run's `Trainer` (after the plan's own).
        """
        loss_fn = self._loss(loss_fn)
        search = self.search_settings()
        if optimizer is None:
            if self.optimizer is None:
                raise ValueError(
                    "optimizer must be given: the plan was made with an optimizer callable, "
                    "which plan.json cannot name"
                )
            optimizer = self.optimizer
        averaging = None
        if self.weight_average is not None and val_data is not None:
            averaging = WeightAverage(self.weight_average)
        torch.manual_seed(self.seed)
        trainer = Trainer(
            model_fn(),
            loss_fn,
            train_data,
            val_data,
            batch_size=self.batch_size_here(),
            weight_decay=self.weight_decay,
            out_dir=out_dir,
            seed=self.seed,
            augment=augment,
            overwrite=overwrite,
            optimizer=optimizer,
            metrics=metrics,
            batch_fn=batch_fn,
            steps_per_epoch=steps_per_epoch,
            num_workers=num_workers,
            collate_fn=collate_fn,
            precision=precision,
            device=device,
            val_steps=val_steps,
            callbacks=[*([] if averaging is None else [averaging]), *callbacks],
        )
        start = time.perf_counter()
        momentum = self.momentum
        if isinstance(momentum, float):
            momentum = (momentum, momentum)
        checkpoint = None if out_dir is None else Path(out_dir) / CHECKPOINT
        if resume and checkpoint is not None and self.is_own_checkpoint(checkpoint):
            history = trainer.resume_from(checkpoint)
        elif self.policy == SEARCH:
            history = trainer.fit_one_cycle(
                self.epochs, "search", momentum=momentum, backoff=backoff, search=search
            )
        else:
            history = trainer.fit_one_cycle(
                self.epochs,
                self.max_lr,
                policy=self.policy,
                min_lr=self.min_lr,
                momentum=momentum,
                backoff=backoff,
            )
        if self.policy == SEARCH and history.lr_search is not None:  # what the rise found
            self.max_lr = float(history.lr_search["max_lr"])
            self.min_lr = self.max_lr / search.min_lr_divisor
        last = history.epochs[-1] if history.epochs else {}
        self.results = {
            "status": history.status,
            "final_val_loss": last.get("val_loss"),
            "final_val_accuracy": last.get("val_accuracy"),  # None unless a classification
            "final_val_metrics": {
                k[4:]: v for k, v in last.items() if k.startswith("val_") and k != "val_loss"
            },
            "verdict": diagnose(history).to_dict(),
            "train_seconds": time.perf_counter() - start,
        }
        if averaging is not None and averaging.outcome:  # the weights kept: their validation
            kept = averaging.outcome
            self.results["weight_average"] = {k: v for k, v in kept.items() if k != "val_metrics"}
            values: dict[str, float] = kept["val_metrics"]
            self.results["final_val_loss"] = values["loss"]
            self.results["final_val_accuracy"] = values.get("accuracy")
            self.results["final_val_metrics"] = {k: v for k, v in values.items() if k != "loss"}
            if kept.get("kept") == "average":
                _verdict_of_the_mean(self.results["verdict"], kept, history)
        trainer.close()  # the training workers stop before the test's start (a Dataset)
        if test_data is not None and history.status == "completed":
            self.results["test"] = trainer.evaluate(test_data, steps=test_steps)
        self.history, self.trainer = history, trainer
        return history

    def batch_size_here(self) -> int:
        """The batch size per process that trains this plan's global batch in this world: a
        plan tuned under torchrun records its batch per process and its world size
        (``environment["world_size"]``); its max_lr was found at their product. A refit in
        one process at the per-process batch halved the global batch at the same max_lr and
        reached 49% where the plan had 97% (a user's check)."""
        now = process_world()[1]
        # a plan without a recorded environment (tune's own, in the making; one built by
        # hand) is this world's; one recorded without a world size was tuned in one process
        then = int(self.environment.get("world_size", 1)) if self.environment else now
        if then == now:
            return self.batch_size
        total = self.batch_size * then
        if total % now:
            raise ValueError(
                f"the plan was tuned on {then} processes at batch {self.batch_size} each (a "
                f"global batch of {total}), which {now} processes cannot split evenly; run it "
                f"with torchrun --nproc_per_node {then}"
            )
        tell(
            f"plan: tuned on {then} processes at batch {self.batch_size} each; {now} here "
            f"train its global batch of {total} as {total // now} each",
            logger,
        )
        return total // now

    def is_own_checkpoint(self, path: Path) -> bool:
        """Whether the checkpoint at `path` is this plan's final run (its peak LR and epochs)."""
        if not path.is_file():
            return False
        saved = load_checkpoint(path)
        if saved["fit"]["epochs"] != self.epochs:
            return False
        if self.policy == SEARCH:  # its peak is the search's, before or after its edge
            if saved["plan"].get("policy") != "one_cycle_search":
                return False
            # searched with this plan's constants (a divisor changed since is another run)
            wanted = search_constants(self.search_settings())
            used = (saved.get("edge") or {}).get("settings") or {}
            if used:  # a checkpoint from before a constant existed searched as it then did
                used = {**EARLIER_CONSTANTS, **used}
            return all(wanted.get(name, value) == value for name, value in used.items())
        return bool(saved["plan"].get("max_lr") == self.max_lr)


def _verdict_of_the_mean(verdict: dict[str, Any], kept: dict[str, Any], history: Any) -> None:
    """The verdict, read on the epochs' validation curve, told that the model holds the mean
    of the descent's weights (an auditor's check: "overfitting ... train for fewer epochs" where
    the mean kept had a lower validation loss than every epoch)."""
    mean = float(kept["val_loss_average"])
    losses = [e["val_loss"] for e in history.epochs if e.get("val_loss") is not None]
    best = min(losses, default=math.inf)
    below = mean < best
    verdict["explanation"] += (
        f"; the model keeps the mean of the last {kept.get('steps', 0)} steps' weights, "
        f"validation loss {mean:.4g}"
        + (f", below every epoch's (best {best:.4g})" if below else "")
    )
    if verdict["kind"] == "overfitting" and below:
        verdict["next_step"] = (
            "the weights kept already undo it (their validation loss is below the best epoch's); "
            "for more, raise weight decay or add augmentation; fewer epochs would save compute"
        )


def save_run(
    folder: str | Path,
    plan: TunePlan,
    history: History | None = None,
    range_tests: dict[str, RangeTestResult] | None = None,
) -> None:
    """Write ``plan.json``, ``history.json`` and ``range_tests.json`` into `folder`, each
    atomically; `history` and `range_tests` default to the plan's own."""
    folder = Path(folder)
    history = plan.history if history is None else history
    tests = plan.range_tests if range_tests is None else range_tests
    write_text_atomically(folder / "plan.json", plan.to_json())
    if history is not None:
        write_text_atomically(folder / "history.json", history.to_json())
    saved = {label: result.to_dict() for label, result in tests.items()}
    write_text_atomically(folder / "range_tests.json", json.dumps(saved, allow_nan=False))


def _check_parts(data: dict[str, Any]) -> None:
    """The parts of a plan's (type-checked) `results`, `compute` and `evidence` that its readers
    take apart: a ValueError names the first that does not fit (``field results.test must be
    ...``) or is missing (``compute.search_samples missing``)."""
    results = data.get("results", {})
    check_parts(results, _RESULTS, "results")
    check_parts(results.get("verdict") or {}, _VERDICT, "results.verdict")
    check_parts(results.get("weight_average") or {}, _AVERAGE, "results.weight_average")
    compute = data.get("compute", {})
    check_parts(compute, _COMPUTE, "compute")
    missing = [f"compute.{key}" for key in _COMPUTE_READ if compute and key not in compute]
    if missing:  # an older plan has no compute at all; one with part of it was cut by hand
        raise ValueError(f"not a tune plan: {', '.join(missing)} missing")
    for index, step in enumerate(data.get("evidence", [])):
        check_parts(step, _STEP, f"evidence[{index}]")


def load_run(folder: str | Path) -> tuple[TunePlan, History, dict[str, RangeTestResult]]:
    """The plan, history and range tests saved by `save_run` (also set on the plan); a folder
    of `superconverge fit --plan` has no range tests (an empty dict).

    Raises:
        FileNotFoundError: `folder` lacks plan.json or history.json (named in the message).
    """
    folder = Path(folder)
    if folder.is_file():
        raise FileNotFoundError(f"{folder} is a file; give the run folder that holds it")
    missing = [name for name in REQUIRED_RUN_FILES if not (folder / name).is_file()]
    if missing:
        trainer = missing == ["plan.json"]  # history.json alone: a Trainer's out_dir
        raise FileNotFoundError(
            f"{folder} is not a tune or fit run folder: {', '.join(missing)} missing"
            + (
                "; a Trainer's out_dir holds its History alone: History.from_json(Path(folder, "
                "'history.json').read_text()) reads it, its .plot() draws it"
                if trainer
                else ""
            )
        )
    with _naming_the_file("plan.json"):
        plan = TunePlan.from_json((folder / "plan.json").read_text())
    with _naming_the_file("history.json"):
        history = History.from_json((folder / "history.json").read_text())
    tests = folder / "range_tests.json"
    with _naming_the_file("range_tests.json"):
        raw = json.loads(tests.read_text()) if tests.is_file() else {}
        if not isinstance(raw, dict):  # was "AttributeError: 'list' object has no attribute..."
            raise ValueError(f"it must hold a JSON object of range tests by label, got {raw!r:.40}")
        ranges = {label: RangeTestResult.from_dict(data) for label, data in raw.items()}
    plan.history, plan.range_tests = history, ranges
    return plan, history, plan.range_tests


@contextlib.contextmanager
def _naming_the_file(name: str) -> Iterator[None]:
    """A file of a run that does not read as its kind: a ValueError that names the file (and
    the error's kind, where it is not a ValueError)."""
    try:
        yield
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        kind = "" if isinstance(error, ValueError) else f"{type(error).__name__}: "
        raise ValueError(f"{name}: {kind}{error}") from error
