"""The range test and 1cycle for Hugging Face ``Trainer``s and ``PreTrainedModel``s."""

from __future__ import annotations

import inspect
import json
import logging
import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import torch
import transformers
from transformers.trainer import SCHEDULER_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from superconverge._checks import check_flag, check_max_lr, check_momentum
from superconverge._display import as_given
from superconverge._files import write_text_atomically
from superconverge.data.sources import is_one_number
from superconverge.finder.result import RangeTestResult
from superconverge.finder.sweep import check_sweep_arguments
from superconverge.huggingface.callback import unused_scheduler_arguments
from superconverge.pytorch.external_loop import (
    Cycle,
    LoaderGenerators,
    check_cycle_settings,
    check_has_momentum,
    check_run_length,
    sweep,
    warn_if_group_lrs_differ,
)
from superconverge.pytorch.scheduler import HyperparamScheduler
from superconverge.pytorch.snapshot import TrainingSnapshot
from superconverge.schedules import Plan, one_cycle
from superconverge.training.edge import (
    EdgeSearch,
    EdgeSettings,
    changed_constants,
    check_search_request,
    search_host,
)
from superconverge.training.history import History

logger = logging.getLogger(__name__)

# Fine-tuning a pretrained transformer: Hugging Face reports range-test suggestions around 1e-3
# where 1e-5 works (about 100x). A documented cap, not our measurement: on our tiny BERT
# (docs/integrations.md) the suggestion was already below the best fine-tuning LR.
# `lr_find(..., fine_tuning=True)` divides by it and says so
FINE_TUNING_DIVISOR = 10.0
LR_FIND_FILE = "lr_find.json"  # beside the Trainer's checkpoints: a resumed run reuses max_lr
# in each checkpoint: the cycle's length and max_lr, so that a resume into another cycle is said
CYCLE_FILE = "one_cycle.json"


def _model_loss(model: torch.nn.Module, batch: Any) -> torch.Tensor:
    """The model's own loss: ``model(**batch).loss`` (the batch must hold ``labels``)."""
    if not isinstance(batch, Mapping):
        raise TypeError(
            f"batches must be dicts of model inputs (with 'labels'), got {type(batch).__name__}; "
            "pass compute_loss=... for other batches"
        )
    output = model(**batch)
    loss = output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
    if loss is None:
        raise ValueError(
            "the model returned no loss: the batches need 'labels' (or pass compute_loss=...)"
        )
    return loss  # type: ignore[no-any-return]


def _check_batches(train_data: object) -> None:
    """`train_data` must be batches: a map-style ``Dataset`` (what ``Trainer(train_dataset=...)``
    takes) yields single samples, which reached the model unbatched and failed deep inside it."""
    is_samples = isinstance(train_data, torch.utils.data.Dataset) and not isinstance(
        train_data, torch.utils.data.IterableDataset
    )
    # a `datasets.Dataset` (its columns) or a list of sample dicts (one label each): samples too
    # (a user's list failed inside BERT: "not enough values to unpack (expected 2, got 1)")
    is_samples = is_samples or hasattr(train_data, "column_names") or _sample_dicts(train_data)
    if is_samples or not isinstance(train_data, Iterable):
        what = "a Dataset of single samples" if is_samples else "not iterable"
        raise TypeError(
            f"train_data must be an iterable of batches (a DataLoader of dicts), got "
            f"{type(train_data).__name__} ({what}): pass DataLoader(dataset, batch_size=..., "
            "collate_fn=...), or a Trainer's own trainer.get_train_dataloader()"
        )


def _sample_dicts(data: object) -> bool:
    """A list or tuple of dicts whose label is one number: samples, not batches."""
    if not isinstance(data, (list, tuple)) or not data or not isinstance(data[0], Mapping):
        return False
    return is_one_number(data[0].get("labels", data[0].get("label")))


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {key: _to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(value, device) for value in batch)
    return batch


def lr_find(
    model: torch.nn.Module,
    train_data: Iterable[Any],
    *,
    optimizer: torch.optim.Optimizer | None = None,
    compute_loss: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 1.0,
    num_steps: int = 100,
    mode: str = "exp",
    smoothing: float = 0.98,
    diverge_factor: float = 4.0,
    accumulation_steps: int = 1,
    rule: str = "minimum",
    fine_tuning: bool = False,
    prepare: Callable[[Any], Any] | None = None,
    max_grad_norm: float | None = None,
) -> RangeTestResult:
    """The LR range test on a ``PreTrainedModel`` (or any module) with dict batches.

    The sweep, its stop rules and the analysis are `superconverge.lr_find`'s; each step is one
    optimizer update on `accumulation_steps` batches, the loss is the model's own
    (``model(**batch).loss``) unless `compute_loss` is given. Afterwards the weights, buffers,
    modes, gradients, the optimizer's state, every global RNG and the loader's own generators
    are exactly as before, also after an exception.

    Fine-tuning: Hugging Face declined a finder because on pretrained transformers the curve's
    max_lr lies far above the LRs that fine-tune well; on our tiny BERT it did not
    (docs/integrations.md), so this is a documented, conservative cap. ``fine_tuning=True`` divides max_lr and min_lr by
    `FINE_TUNING_DIVISOR` and adds a note; without it, the result's notes carry a warning.

    Args:
        model: the model to probe (left untouched).
        train_data: an iterable of batches (a ``DataLoader`` of dicts), cycled if short; not a
            ``Dataset`` of single samples (wrap it in a ``DataLoader``).
        optimizer: used as is (its momentum/β1, weight decay). None: AdamW(β=(0.9, 0.999),
            weight_decay=0), the ``Trainer``'s default.
        compute_loss: ``compute_loss(model, batch) -> scalar tensor`` for other batches.
        start_lr, end_lr, num_steps, mode, smoothing, diverge_factor, rule: as in
            `superconverge.lr_find` (end_lr defaults to 1: transformers diverge far below 10).
        accumulation_steps: batches per optimizer update.
        fine_tuning: the model is pretrained and is being fine-tuned (see above).
        prepare: called on each batch before the model (default: move tensors to the model's
            device); `OneCycleTrainer` passes its ``_prepare_inputs``.
        max_grad_norm: clip the gradients' total norm to this before each update, as the
            ``Trainer`` does (``TrainingArguments.max_grad_norm``, 1.0 by default; the sweep
            probes the run it is for: clipped updates take higher LRs); None or 0: no clipping.
            `OneCycleTrainer` passes its ``args.max_grad_norm``.

    Returns:
        A `RangeTestResult` (``settings["framework"] == "huggingface"``).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_batches(train_data)
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer or None (AdamW), got {optimizer!r}"
        )
    for name, function in (("compute_loss", compute_loss), ("prepare", prepare)):
        if function is not None and not callable(function):
            raise TypeError(f"{name} must be a function or None, got {function!r}")
    check_flag("fine_tuning", fine_tuning)
    if max_grad_norm is not None and (
        isinstance(max_grad_norm, bool)
        or not isinstance(max_grad_norm, (int, float))
        or not math.isfinite(max_grad_norm)
        or max_grad_norm < 0
    ):
        raise ValueError(
            f"max_grad_norm must be a finite number >= 0 or None, got {max_grad_norm!r}"
        )
    if (
        isinstance(accumulation_steps, bool)
        or not isinstance(accumulation_steps, int)
        or (accumulation_steps < 1)
    ):
        raise ValueError(f"accumulation_steps must be an integer >= 1, got {accumulation_steps!r}")
    check_sweep_arguments(
        start_lr, end_lr, num_steps, mode, smoothing, diverge_factor, rule, "one_cycle", None
    )
    loss_of = compute_loss or _model_loss
    device = next(model.parameters()).device
    move = prepare or (lambda batch: _to_device(batch, device))
    trainable = [p for p in model.parameters() if p.requires_grad]
    sweeper = optimizer or torch.optim.AdamW(trainable, lr=start_lr, weight_decay=0.0)
    # before the first iter(train_data): creating a DataLoader iterator draws from the RNGs
    snapshot = TrainingSnapshot(model, sweeper)
    generators = LoaderGenerators(train_data)
    try:
        batches = Cycle(train_data, "train_data")
        model.train()

        def train_step() -> float:
            total = 0.0
            for _ in range(accumulation_steps):
                loss = loss_of(model, move(next(batches)))
                torch.autograd.backward(loss / accumulation_steps)
                total += float(loss.detach())
            if max_grad_norm:  # after the whole accumulation, as the Trainer clips
                torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
            return total / accumulation_steps

        result = sweep(
            sweeper,
            train_step,
            start_lr=start_lr,
            end_lr=end_lr,
            num_steps=num_steps,
            mode=mode,
            smoothing=smoothing,
            diverge_factor=diverge_factor,
            rule=rule,
            settings={
                "framework": "huggingface",
                "accumulation_steps": accumulation_steps,
                "world_size": 1,
                "fine_tuning": fine_tuning,
                "max_grad_norm": max_grad_norm or None,
            },
        )
    finally:
        snapshot.restore()
        generators.restore()
    return _for_fine_tuning(result) if fine_tuning else _warn_about_fine_tuning(result)


def _for_fine_tuning(result: RangeTestResult) -> RangeTestResult:
    if result.max_lr is None:
        return result
    max_lr = result.max_lr / FINE_TUNING_DIVISOR
    min_lr = None if result.min_lr is None else result.min_lr / FINE_TUNING_DIVISOR
    note = (
        f"fine-tuning: max_lr is the curve's {result.max_lr:.3g} / {FINE_TUNING_DIVISOR:g} "
        "(pretrained transformers fine-tune best far below the range test's suggestion; "
        "docs/integrations.md)"
    )
    return replace(
        result,
        max_lr=max_lr,
        min_lr=min_lr,
        reason=f"{result.reason}; {note}",
        notes=(*result.notes, note),
    )


def _warn_about_fine_tuning(result: RangeTestResult) -> RangeTestResult:
    note = (
        "if this model is a large pretrained transformer being fine-tuned, this max_lr may be "
        "too high (Hugging Face reports ~100x; docs/integrations.md): fine_tuning=True "
        f"divides it by {FINE_TUNING_DIVISOR:g}"
    )
    return replace(result, notes=(*result.notes, note))


# what OneCycleTrainer's one_cycle_settings and lr_find_settings may hold: the functions'
# keywords less those it passes itself (max_lr, momentum and fine_tuning are its own arguments)
ONE_CYCLE_KEYS = ("min_lr", "final_lr", "warmup_fraction", "shape", "three_phase")
SWEEP_KEYS = ("start_lr", "end_lr", "num_steps", "mode", "smoothing", "diverge_factor", "rule")
LR_FIND_KEYS = (*SWEEP_KEYS, "accumulation_steps")


def one_cycle_scheduler(
    num_training_steps: int,
    optimizer: torch.optim.Optimizer,
    *,
    max_lr: float,
    momentum: tuple[float, float] | None = (0.95, 0.85),
    **one_cycle_settings: Any,
) -> HyperparamScheduler:
    """1cycle for a ``Trainer``: the arguments of ``Trainer.create_scheduler(num_training_steps,
    optimizer)`` plus the plan's; β1 (AdamW) or momentum (SGD) cycles from `momentum`.

    Example:
        >>> model = torch.nn.Linear(2, 1)
        >>> optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        >>> scheduler = one_cycle_scheduler(100, optimizer, max_lr=1e-3)
        >>> optimizer.param_groups[0]["betas"][0], scheduler.get_last_lr()
        (0.95, [4e-05])
    """
    # named as create_scheduler names them: one_cycle would say "total_steps" and print the
    # whole optimizer for arguments given the other way round
    if isinstance(num_training_steps, bool) or not isinstance(num_training_steps, int):
        raise TypeError(
            "num_training_steps must be an integer (create_scheduler's order: "
            f"num_training_steps, optimizer), got {type(num_training_steps).__name__}"
        )
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    unknown = sorted(set(one_cycle_settings) - set(ONE_CYCLE_KEYS))
    if unknown:
        raise TypeError(
            f"one_cycle_scheduler: unknown settings {unknown}; allowed: {', '.join(ONE_CYCLE_KEYS)}"
        )
    try:
        plan = one_cycle(num_training_steps, max_lr, momentum=momentum, **one_cycle_settings)
    except ValueError as error:
        raise ValueError(str(error).replace("total_steps", "num_training_steps")) from error
    return HyperparamScheduler(optimizer, plan)


def _settings(name: str, given: object, allowed: tuple[str, ...]) -> dict[str, Any]:
    """A dict of settings whose keys are all in `allowed`; unknown keys are named."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise TypeError(f"{name} must be a dict or None, got {given!r}")
    unknown = sorted(str(key) for key in given if key not in allowed)
    if unknown:
        raise ValueError(f"{name}: unknown keys {unknown}; allowed: {', '.join(allowed)}")
    return dict(given)


class OneCycleTrainer(transformers.Trainer):
    """A ``transformers.Trainer`` that trains with 1cycle and cyclical β1 (or momentum).

    ``max_lr=None`` runs `lr_find` on the Trainer's own train dataloader, optimizer settings and
    loss before training (the model and every RNG are restored) and uses its max_lr; the result
    is kept in `lr_find_result` and written to ``output_dir/lr_find.json`` and into each
    ``checkpoint-N`` folder, so that ``train(resume_from_checkpoint=...)`` continues the same
    cycle without a new range test, also into another output_dir (a resume that finds none
    warns: a new range test would give another max_lr).
    The scheduler is `HyperparamScheduler`: ``get_last_lr()`` logs the real LR, and its state
    (one integer) is saved with each checkpoint.

    ``max_lr="search"`` makes the cycle's rise the range test, as `Trainer.fit_one_cycle(epochs,
    "search")` does (`superconverge.training.edge`): no sweep before training; the LR rises
    exponentially from 1e-4 while the model trains on the Trainer's batches, each update's loss
    (the mean over the processes) is smoothed, and past the edge the weights and optimizer state
    copied at the LR of the lowest loss / 6 come back and Smith's descent follows. `lr_search`
    says where and why; the scheduler's state in each checkpoint (``scheduler.pt``) carries the
    search and its plan, so a resume continues it.

    Args:
        max_lr: the peak LR; None: the range test's suggestion; ``"search"``: searched in the
            run's rise (above; one_cycle_settings and lr_find_settings do not apply).
        fine_tuning: passed to `lr_find` (the model is pretrained: divide its max_lr); with
            max_lr given or ``"search"`` no range test runs, and it is refused.
        momentum: ``(high, low)`` of β1/momentum over the cycle, or None (needed for optimizers
            without momentum, e.g. ``optim="adafactor"``).
        one_cycle_settings: more arguments of `superconverge.one_cycle`: min_lr, final_lr,
            warmup_fraction, shape, three_phase.
        lr_find_settings: more arguments of `lr_find`: start_lr, end_lr, num_steps, mode,
            smoothing, diverge_factor, rule, accumulation_steps (max_lr=None only, as
            fine_tuning).
        search: the constants of ``max_lr="search"`` (`superconverge.training.EdgeSettings`).
        *args, **kwargs: the ``Trainer``'s. The plan replaces the Trainer's scheduler:
            ``lr_scheduler_type``, ``warmup_steps``, ``lr_scheduler_kwargs`` and
            ``learning_rate`` of its ``TrainingArguments`` are not used (a warning says so
            when they are set; learning_rate: when it is not the default 5e-5). Under
            ``hyperparameter_search`` a trial's ``learning_rate`` is that trial's max_lr
            (refused with ``"search"`` and ``None``, which choose it themselves).

    Raises:
        ValueError, TypeError: an invalid setting or an unknown key, or a scheduler passed in
            ``optimizers=(optimizer, scheduler)`` (it would replace the 1cycle), when the
            Trainer is built;
            an optimizer without momentum while `momentum` is set, before the range test.
    """

    def __init__(
        self,
        *args: Any,
        max_lr: float | str | None = None,
        fine_tuning: bool = False,
        momentum: tuple[float, float] | None = (0.95, 0.85),
        one_cycle_settings: dict[str, Any] | None = None,
        lr_find_settings: dict[str, Any] | None = None,
        search: EdgeSettings | None = None,
        **kwargs: Any,
    ) -> None:
        # every setting now, before the Trainer's set-up, the range test and the first update
        searches = _check_search(max_lr, search, one_cycle_settings, lr_find_settings)
        peak = None if searches or isinstance(max_lr, str) else max_lr
        check_max_lr(peak, optional=True, searches=True)
        check_flag("fine_tuning", fine_tuning)
        _check_range_test_settings(max_lr, fine_tuning, lr_find_settings)
        momentum = check_momentum(momentum)
        cycle = _settings("one_cycle_settings", one_cycle_settings, ONE_CYCLE_KEYS)
        check_cycle_settings(peak, momentum=momentum, **cycle)
        sweep = _settings("lr_find_settings", lr_find_settings, LR_FIND_KEYS)
        defaults = inspect.signature(lr_find).parameters
        values = {key: sweep.get(key, defaults[key].default) for key in SWEEP_KEYS}
        check_sweep_arguments(**values, policy="one_cycle", val_every=None)
        super().__init__(*args, **kwargs)
        if self.lr_scheduler is not None:  # from optimizers=(optimizer, scheduler)
            raise ValueError(
                "optimizers: OneCycleTrainer sets the LR itself, so its scheduler must be None, "
                f"got {type(self.lr_scheduler).__name__}: pass optimizers=(optimizer, None), or "
                "a plain Trainer for a scheduler of your own"
            )
        self._warn_about_unused_scheduler_arguments()
        self.max_lr = None if peak is None else float(peak)
        self._max_lr_before_trial: float | None = None  # while a trial's learning_rate is max_lr
        self._trial_sets_max_lr = False
        self._built_learning_rate = self.args.learning_rate  # one set later is said (train)
        # max_lr="search": its constants; its state lives in the scheduler once training starts
        self.searches, self.search_settings = searches, search
        self.search_history = History()  # the search's notes and edge
        self._resumed_from: Path | None = None  # the checkpoint train() resumes from
        self._past_end_said = False  # a resumed search longer than its plan: said at the resume
        self.fine_tuning, self.momentum = fine_tuning, momentum
        self.one_cycle_settings, self.lr_find_settings = cycle, sweep
        self.lr_find_result: RangeTestResult | None = None

    def _warn_about_unused_scheduler_arguments(self) -> None:
        """The 1cycle plan is the scheduler: TrainingArguments that shape the Trainer's own
        (``get_scheduler``'s type, warm-up and kwargs) are not used, and a user who set them
        expects them to act."""
        unused = unused_scheduler_arguments(self.args, "linear")
        if unused:
            warnings.warn(
                f"OneCycleTrainer: TrainingArguments {', '.join(unused)} are not used: the 1cycle "
                "plan sets the LR (its peak: max_lr=..., or a hyperparameter_search trial's "
                "learning_rate; its warm-up: one_cycle_settings={'warmup_fraction': ...})",
                stacklevel=3,
            )

    def _say_a_learning_rate_set_since(self) -> None:
        """Hugging Face's step after a search, ``setattr(trainer.args, "learning_rate",
        best.hyperparameters["learning_rate"])`` then ``train()``, trained at the max_lr given
        to the trainer, without a word (a reviewer's check): say which LR the cycle uses."""
        lr = self.args.learning_rate
        if lr == self._built_learning_rate or self.max_lr == lr:
            return
        self._built_learning_rate = lr  # said once per change
        warnings.warn(
            f"OneCycleTrainer: TrainingArguments.learning_rate is {lr:g} (set after the trainer "
            f"was built: a hyperparameter_search's best run?), and the cycle's max_lr "
            f"{'is searched' if self.max_lr is None else f'is {self.max_lr:g}'}: the cycle "
            f"does not read learning_rate; set trainer.max_lr = {lr:g} to train at it",
            stacklevel=3,
        )

    def _hp_search_setup(self, trial: Any) -> None:
        """A ``hyperparameter_search`` trial's ``learning_rate`` is the cycle's max_lr (a user's
        check: with ``hp_space(plan)`` every trial trained at the same peak, and ``BestRun``
        named an LR no trial used); with ``"search"`` or a range test it has no use: refused."""
        super()._hp_search_setup(trial)
        if self._trial_sets_max_lr:  # the last trial's: the max_lr from before the search again
            self.max_lr, self._trial_sets_max_lr = self._max_lr_before_trial, False
        if self.hp_search_backend is None or trial is None:
            self._say_a_learning_rate_set_since()  # a run of its own (after a search, too)
            return
        params = trial if isinstance(trial, Mapping) else getattr(trial, "params", None) or {}
        if "learning_rate" not in params:
            return
        self._refuse_a_trials_learning_rate(self.args.learning_rate)
        self._max_lr_before_trial, self._trial_sets_max_lr = self.max_lr, True
        self.max_lr = float(check_max_lr(self.args.learning_rate))

    def _refuse_a_trials_learning_rate(self, learning_rate: Any) -> None:
        """A trial's learning_rate where no max_lr is given: the run would not use it."""
        if self.max_lr is not None:
            return
        asked = "max_lr='search' finds" if self.searches else "max_lr=None: the range test sets"
        raise ValueError(
            f"OneCycleTrainer: the trial sets learning_rate={float(learning_rate):g}, "
            f"which this run does not use ({asked} the cycle's peak); give "
            "OneCycleTrainer(max_lr=...) (the trial's learning_rate then is each trial's "
            "max_lr), or leave learning_rate out of hp_space"
        )

    def _trial_learning_rate(self, trial: Any) -> Any:
        """The learning_rate a ``hyperparameter_search`` trial will set, read as Hugging Face's
        ``_hp_search_setup`` reads the trial's values (Optuna: ``hp_space(trial)``, which
        suggests the same values again; Ray and W&B: the trial is the dict), or None."""
        if self.hp_search_backend is None or trial is None:
            return None
        params = trial if isinstance(trial, Mapping) else self.hp_space(trial)
        return params.get("learning_rate") if isinstance(params, Mapping) else None

    def train(self, resume_from_checkpoint: Any = None, *args: Any, **kwargs: Any) -> Any:
        # the run's updates, known now: a run too short is said before the range test
        updates = self.args.max_steps if self.args.max_steps > 0 else self._epochs_updates()
        self._resumed_from = self._checkpoint_of(resume_from_checkpoint)
        if updates is not None:
            self._check_run_length(updates)
        scheduler_state = _saved_scheduler(self._resumed_from)  # read once, for both checks
        self._check_resumed_mode(self._resumed_from, scheduler_state)
        self._check_resumed_search(updates, scheduler_state)
        if self.max_lr is None and not self.searches:  # a range test runs first: a trial's
            # learning_rate is refused before its time (reading it calls an Optuna hp_space
            # once more, as Hugging Face does again; only where the range test would run)
            trial = kwargs.get("trial", args[0] if args else None)
            if (learning_rate := self._trial_learning_rate(trial)) is not None:
                self._refuse_a_trials_learning_rate(learning_rate)
            saved = Path(str(self.args.output_dir)) / LR_FIND_FILE
            found = self._saved_range_test(resume_from_checkpoint)
            if found is not None:
                self.lr_find_result = RangeTestResult.from_json(found.read_text())
            else:
                self.lr_find_result = self.run_lr_find()
                if self.is_world_process_zero():
                    saved.parent.mkdir(parents=True, exist_ok=True)
                    write_text_atomically(saved, self.lr_find_result.to_json())
            if self.lr_find_result.max_lr is None:
                raise RuntimeError(
                    f"the range test gave no max_lr: {self.lr_find_result.reason}; pass max_lr"
                )
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _check_resumed_mode(self, checkpoint: Path | None, state: dict[str, Any] | None) -> None:
        """Refuse a checkpoint of the other kind of cycle, before the range test: a fixed cycle's
        ``scheduler.pt`` holds only its step, so ``max_lr="search"`` on it jumped the rise to that
        step (a user's check: update 80 at LR 10, then 1e9, without a word); a search's holds
        the search and its plan, which a cycle at a max_lr given or from a range test replaced
        by its own, silently. `state`: the checkpoint's ``scheduler.pt`` (`_saved_scheduler`)."""
        if state is None:
            return
        saved_search = "search" in state
        if saved_search == self.searches:
            return
        step = state.get("step_count")
        if saved_search:
            edge = (state.get("search") or {}).get("edge")
            found = (
                f"max_lr {edge['max_lr']:.3g} found at update {edge['step']}"
                if isinstance(edge, dict) and isinstance(edge.get("max_lr"), (int, float))
                else "its edge not found yet"
            )
            holds = f"a max_lr='search' run (scheduler.pt holds the search and its plan: {found})"
            fix = "resume with max_lr='search' to continue that search"
        else:
            holds = f"a cycle at a fixed max_lr (scheduler.pt holds only {{'step_count': {step}}})"
            fix = "resume with the first run's max_lr=... to continue its cycle"
        asked = (
            "max_lr='search'"
            if self.searches
            else "max_lr=None (a range test)"
            if self.max_lr is None
            else f"max_lr={self.max_lr:g}"
        )
        raise ValueError(
            f"OneCycleTrainer({asked}) cannot resume from {checkpoint}: it was written by {holds}, "
            f"which this cycle cannot continue; {fix}, or train without resume_from_checkpoint "
            "for a new cycle"
        )

    def _check_resumed_search(self, updates: int | None, state: dict[str, Any] | None) -> None:
        """Say when a resumed search's checkpoint was made for another run (a user's check:
        resumed with num_train_epochs 4 after 3, the saved 96-update plan went on and updates
        96..127 trained at its final LR, said only mid-run; another momentum was dropped): the
        search and its plan come from ``scheduler.pt``, so the checkpoint's settings are used."""
        self._past_end_said = False
        search = state.get("search") if state is not None and self.searches else None
        if not isinstance(search, dict):
            return
        steps, momentum = search.get("total_steps"), search.get("momentum")
        momentum = None if momentum is None else tuple(momentum)
        changed = []
        if isinstance(steps, int) and updates is not None and steps != updates:
            changed.append(
                f"its plan has {steps} updates, this run's {updates} (num_train_epochs, "
                "max_steps, batch size or accumulation changed)"
            )
        if momentum != self.momentum:
            changed.append(f"momentum {momentum!r} there, {self.momentum!r} here")
        constants = changed_constants(search.get("settings"), self.search_settings)
        if constants:
            changed.append(f"search=EdgeSettings: {', '.join(constants)}")
        if not changed:
            return
        what = ""
        if isinstance(steps, int) and updates is not None and updates > steps:
            self._past_end_said = True  # not again mid-run, at update `steps`
            what = f"; past update {steps} the LR holds the plan's final value"
        elif isinstance(steps, int) and updates is not None:
            what = f"; the run stops at update {updates}, before the plan anneals"
        warnings.warn(
            f"OneCycleTrainer: the checkpoint's search was made for another run ({'; '.join(changed)}):"
            f" a resumed search continues the checkpoint's plan, whose settings are used{what}; "
            "resume with the settings the search was made for, or train without "
            "resume_from_checkpoint for a new search",
            stacklevel=3,
        )

    def _saved_range_test(self, resume_from_checkpoint: Any) -> Path | None:
        """The range test a resumed run continues: ``lr_find.json`` in the checkpoint's folder
        (written with each checkpoint), else beside it (the run's output_dir). Without it a
        new range test would run on the starting weights (the checkpoint loads after it) and
        give the resumed cycle another max_lr: that is warned about."""
        checkpoint = self._checkpoint_of(resume_from_checkpoint)
        if checkpoint is None:
            return None
        candidates = [Path(str(self.args.output_dir)) / LR_FIND_FILE]
        if checkpoint:
            folder = Path(str(checkpoint))
            candidates = [folder / LR_FIND_FILE, folder.parent / LR_FIND_FILE]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        warnings.warn(
            f"OneCycleTrainer: resuming from {checkpoint} without its range test (no "
            f"{LR_FIND_FILE} in {' or '.join(str(c.parent) for c in candidates)}): a new one "
            "runs on the starting weights, so the resumed cycle's max_lr may differ from the "
            "checkpoint's; pass max_lr=... (the first run's) to continue its cycle exactly",
            stacklevel=3,
        )
        return None

    def _checkpoint_of(self, resume_from_checkpoint: Any) -> Path | None:
        """The checkpoint folder `train(resume_from_checkpoint=...)` resumes from, or None."""
        if not resume_from_checkpoint:
            return None
        checkpoint = resume_from_checkpoint
        if isinstance(checkpoint, bool):  # True: the Trainer's last checkpoint in output_dir
            checkpoint = get_last_checkpoint(str(self.args.output_dir))  # type: ignore[no-untyped-call]
            if checkpoint is None:  # the Trainer refuses it itself: said before any sweep
                raise ValueError(
                    f"resume_from_checkpoint=True: no checkpoint-N folder in {self.args.output_dir}"
                    " to resume from; train without it, or name the checkpoint's folder"
                )
        folder = Path(str(checkpoint))
        if not folder.is_dir():  # a typo: said before a range test ran and wrote lr_find.json
            raise ValueError(
                f"resume_from_checkpoint={str(checkpoint)!r} is not a folder; name a "
                f"checkpoint-N folder (resume_from_checkpoint=True: the last in output_dir)"
            )
        return folder

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        if not self.is_world_process_zero():
            return
        folder = Path(self._get_output_dir(trial=trial))
        checkpoint = folder / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        if not checkpoint.is_dir():
            return
        # the range test goes into each checkpoint: a resume from it, wherever it was moved,
        # continues the same cycle
        if self.lr_find_result is not None:
            write_text_atomically(checkpoint / LR_FIND_FILE, self.lr_find_result.to_json())
        scheduler = self.lr_scheduler
        if isinstance(scheduler, HyperparamScheduler) and not isinstance(
            scheduler, _SearchScheduler
        ):
            cycle = {"total_steps": scheduler.plan.total_steps, "max_lr": scheduler.plan.max_lr,
                     "settings": self._cycle_settings()}  # fmt: skip
            write_text_atomically(checkpoint / CYCLE_FILE, json.dumps(cycle))

    def _check_resumed_cycle(self, total_steps: int | None, max_lr: float | None) -> None:
        """Say when the run resumed from a checkpoint whose cycle had another length or max_lr
        (a user's check: 2 epochs saved, resumed with 3 or with max_lr x10, went on at another
        LR without a word): the plan is rebuilt for this run, as the Trainer rebuilds its own
        scheduler, so the LR jumps at the resume instead of continuing the saved cycle."""
        path = None if self._resumed_from is None else self._resumed_from / CYCLE_FILE
        try:
            saved = json.loads(path.read_text()) if path is not None and path.is_file() else None
        except (OSError, ValueError):
            saved = None
        if not isinstance(saved, dict):
            return
        steps, peak = saved.get("total_steps"), saved.get("max_lr")
        changed = []
        if (steps, peak) != (total_steps, max_lr) and all(
            isinstance(v, (int, float)) for v in (steps, peak, total_steps, max_lr)
        ):
            changed.append(
                f"the checkpoint's cycle has {steps} updates at max_lr {peak:.3g}, this run's "
                f"{total_steps} at max_lr {max_lr:.3g} (num_train_epochs, max_steps, batch size, "
                "accumulation or max_lr changed)"
            )
        # and the other settings (a user's check: momentum and warmup_fraction changed the
        # LR and β1 at the resume without a word); a checkpoint of an older version keeps none
        before, now = saved.get("settings"), self._cycle_settings()
        if isinstance(before, dict):
            others = [f"{name} {as_given(before[name])!r} → {as_given(now[name])!r}"
                      for name in now if name in before and before[name] != now[name]]  # fmt: skip
            if others:
                changed.append(f"the checkpoint's cycle had other settings ({', '.join(others)})")
        if not changed:
            return
        warnings.warn(
            f"OneCycleTrainer: {' and '.join(changed)}: the plan is rebuilt for this run (its "
            "settings are used), so the LR jumps at the resume instead of continuing the saved "
            "cycle; resume with the settings the cycle was made for to continue it exactly",
            stacklevel=3,
        )

    def _cycle_settings(self) -> dict[str, Any]:
        """The cycle's settings besides its length and max_lr, the defaults filled in, as a
        checkpoint's ``one_cycle.json`` keeps them (JSON: momentum as a list)."""
        defaults = inspect.signature(one_cycle).parameters
        momentum = None if self.momentum is None else [float(m) for m in self.momentum]
        settings = {key: self.one_cycle_settings.get(key, defaults[key].default)
                    for key in ONE_CYCLE_KEYS}  # fmt: skip
        return {"momentum": momentum, **settings}

    def training_step(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        loss = super().training_step(model, inputs, *args, **kwargs)
        scheduler = self.lr_scheduler
        if isinstance(scheduler, _SearchScheduler) and scheduler.search.searching:
            # read once the update is made; an update the Trainer skipped (fp16's scaler found
            # an overflow: no scheduler step) leaves its losses behind: the next one drops them
            if scheduler.losses_step != self.state.global_step:
                scheduler.losses, scheduler.losses_step = [], self.state.global_step
            scheduler.losses.append(loss.detach().float())
        return loss

    @property
    def lr_search(self) -> dict[str, Any] | None:
        """With ``max_lr="search"``, once found: where the rise found its edge, the max_lr it
        chose, the step whose weights came back and why (as `History.lr_search`)."""
        if isinstance(self.lr_scheduler, _SearchScheduler):
            return self.lr_scheduler.search.edge
        return None

    def run_lr_find(self) -> RangeTestResult:
        """`lr_find` with this Trainer's data, collator, loss and optimizer: the one passed as
        ``optimizers=(optimizer, None)``, else the one ``create_optimizer`` builds from
        ``TrainingArguments`` (``optim``, betas, weight decay and its no-decay groups), built
        for the sweep and dropped after it, so that training builds its own as usual (a sweep
        with AdamW gave an SGD run AdamW's LR)."""
        model = self.model
        if not isinstance(model, torch.nn.Module):
            raise RuntimeError("OneCycleTrainer needs a model to run the range test on")
        built_here = self.optimizer is None
        optimizer = self.create_optimizer() if self.optimizer is None else self.optimizer
        try:
            check_has_momentum(optimizer, self.momentum, "OneCycleTrainer")  # before the sweep
            return self._sweep(model, optimizer)
        finally:
            if built_here:
                self.optimizer = None

    def _sweep(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> RangeTestResult:
        args = self.args

        def loss_of(module: torch.nn.Module, batch: Any) -> torch.Tensor:
            loss = self.compute_loss(module, batch)
            return loss[0] if isinstance(loss, tuple) else loss

        settings = {
            "accumulation_steps": args.gradient_accumulation_steps,
            "max_grad_norm": args.max_grad_norm,
            **self.lr_find_settings,
        }
        result = lr_find(
            model,
            self.get_train_dataloader(),
            optimizer=optimizer,
            compute_loss=loss_of,
            fine_tuning=self.fine_tuning,
            prepare=self._prepare_inputs,
            **settings,
        )
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # each rank swept its own shard: rank 0's result for all, or the ranks train with
            # different max_lrs and their copies of the model drift apart (a user's check:
            # 0.0272 and 0.0120, different final weights)
            shared = [result.to_dict() if self.is_world_process_zero() else None]
            torch.distributed.broadcast_object_list(shared, src=0)
            result = RangeTestResult.from_dict(cast(dict[str, Any], shared[0]))
        if self.is_world_process_zero():
            logger.warning("OneCycleTrainer range test: %s", result.summary().replace("\n", "; "))
        return result

    def _epochs_updates(self) -> int | None:
        """The updates of a run set by ``num_train_epochs``, as the Trainer counts them
        (``set_initial_training_values``): ceil(epochs x batches / accumulation); None where
        the train loader has no length (the Trainer then needs max_steps, and says so)."""
        try:
            batches = len(self.get_train_dataloader())
        except (TypeError, ValueError, NotImplementedError):
            return None
        accumulation = self.args.gradient_accumulation_steps
        per_epoch = max(-(-batches // accumulation), 1)
        return math.ceil(self.args.num_train_epochs * per_epoch)

    def _check_run_length(self, total_steps: int) -> None:
        if self.searches:
            if total_steps < 4:
                raise ValueError(
                    f"OneCycleTrainer(max_lr='search') needs at least 4 optimizer updates; the "
                    f"Trainer runs {total_steps}: raise num_train_epochs or max_steps"
                )
            return
        check_run_length(
            int(total_steps),
            self.one_cycle_settings.get("warmup_fraction", 0.3),
            "OneCycleTrainer",
            "the Trainer",
            three_phase=self.one_cycle_settings.get("three_phase", False),
        )

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> Any:
        if self.lr_scheduler is not None:
            return self.lr_scheduler
        max_lr = self.max_lr
        if max_lr is None and not self.searches:
            if self.lr_find_result is None or self.lr_find_result.max_lr is None:
                raise RuntimeError("OneCycleTrainer: no max_lr (call train(), not this)")
            max_lr = self.lr_find_result.max_lr
        target = optimizer or self.optimizer
        if target is None:
            raise RuntimeError("OneCycleTrainer: create the optimizer before the scheduler")
        check_has_momentum(target, self.momentum, "OneCycleTrainer")
        warn_if_group_lrs_differ(target, "OneCycleTrainer")
        self._check_run_length(num_training_steps)
        if self.searches:
            search = EdgeSearch(num_training_steps, self.momentum, self.search_settings)
            self.search_history = History()  # a new train(): the last one's notes are not its own
            self.lr_scheduler = _SearchScheduler(target, search, self)  # type: ignore[assignment]
        else:
            assert max_lr is not None
            cycle = one_cycle_scheduler(
                num_training_steps,
                target,
                max_lr=max_lr,
                momentum=self.momentum,
                **self.one_cycle_settings,
            )
            self._check_resumed_cycle(cycle.plan.total_steps, cycle.plan.max_lr)
            self.lr_scheduler = cycle  # type: ignore[assignment]
        self._created_lr_scheduler = True
        return self.lr_scheduler


def _check_search(max_lr: object, search: object, *settings: object) -> bool:
    """Whether `max_lr` asks for the in-run search (`check_search_request`); the cycle and sweep
    settings that the search makes its own are refused with it."""
    cycle, sweep = settings
    given = [name for name, value in (("one_cycle_settings", cycle), ("lr_find_settings", sweep))
             if value]  # fmt: skip
    return check_search_request(
        max_lr, search, "OneCycleTrainer", " and ".join(given),
        "the cycle and its rise (its constants: search=EdgeSettings(...))",
    )  # fmt: skip


def _saved_scheduler(checkpoint: Path | None) -> dict[str, Any] | None:
    """A checkpoint's ``scheduler.pt`` when a superconverge scheduler wrote it, else None
    (none, unreadable: the Trainer's own load says why, or another scheduler's, which
    loading refuses by name)."""
    path = None if checkpoint is None else checkpoint / SCHEDULER_NAME
    if path is None or not path.is_file():
        return None
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception:  # unreadable: the Trainer's own load says why
        return None
    return state if isinstance(state, dict) and "step_count" in state else None


def _check_range_test_settings(max_lr: object, fine_tuning: bool, sweep: object) -> None:
    """`fine_tuning` and `lr_find_settings` shape the range test, which runs only with
    ``max_lr=None``: with a max_lr given or searched they did nothing, without a word (a user's
    check: ``max_lr="search", fine_tuning=True`` searched the same max_lr as without it)."""
    given = [name for name, value in (("fine_tuning=True", fine_tuning),
                                      ("lr_find_settings", sweep)) if value]  # fmt: skip
    if max_lr is None or not given:
        return
    instead = (
        "the search finds max_lr in the run's rise, without a range test"
        if max_lr == "search"
        else f"max_lr={max_lr!r} is given, so no range test runs"
    )
    raise ValueError(
        f"OneCycleTrainer: {' and '.join(given)} apply to the range test (max_lr=None) only; "
        f"{instead}: leave {' and '.join(given)} unset, or pass max_lr=None for the range test"
    )


class _SearchScheduler(HyperparamScheduler):
    """`OneCycleTrainer(max_lr="search")`'s scheduler: the Trainer steps it after each update,
    and it hands that update's loss (the mean of its micro-batches', averaged over the processes)
    to the search, which at its edge restores a copy and gives it the descent. Its state holds
    the search and the plan, so that a checkpoint's ``scheduler.pt`` resumes both."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, search: EdgeSearch, trainer: OneCycleTrainer
    ) -> None:
        self.search, self._trainer = search, trainer
        self.losses: list[torch.Tensor] = []  # the update's micro-batch losses, until read
        self.losses_step = -1  # the Trainer's global_step they were collected at
        super().__init__(optimizer, search.rise_plan())

    def step(self, epoch: None = None) -> None:  # type: ignore[override]
        super().step(epoch)
        trainer = getattr(self, "_trainer", None)  # None in torch's first step, from __init__
        if trainer is None or not self.search.searching or not self.losses:
            return
        losses, self.losses = self.losses, []
        if len(losses) < trainer.args.gradient_accumulation_steps:
            # an epoch's last update, with fewer micro-batches: the Trainer divides its losses
            # by their count (or the model by their items), so it reads up to the accumulation
            # times higher than a full one; the search skips it (every rank alike)
            return
        # their mean: the Trainer divides each by the accumulation, or not (a model that takes
        # **kwargs): either way every full update reads alike
        loss = trainer.accelerator.reduce(torch.stack(losses).mean(), reduction="mean")
        args = trainer.args
        host = search_host(
            self, trainer.search_history, module=trainer.model, optimizer=self.optimizer,
            scaler=getattr(trainer.accelerator, "scaler", None), world_size=args.world_size,
            rank=args.process_index, device=args.device,
        )  # fmt: skip
        found = self.search.observe(host, self.step_count - 1, float(loss))
        if found and trainer.is_world_process_zero():
            logger.warning("OneCycleTrainer %s", trainer.search_history.notes[-1])

    def state_dict(self) -> dict[str, Any]:
        return {"step_count": self.step_count, "search": self.search.state_dict(),
                "plan": self.plan.to_dict()}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if isinstance(state, dict) and "search" in state:  # a checkpoint's: search and plan
            self.search = EdgeSearch.from_state(state["search"])
            self.plan = Plan.from_dict(state["plan"])
            trainer = getattr(self, "_trainer", None)
            if trainer is not None:
                trainer.search_history.lr_search = self.search.edge
                if getattr(trainer, "_past_end_said", False):  # said at the resume
                    self.past_end_said()
            state = {"step_count": state.get("step_count")}
        super().load_state_dict(state)
