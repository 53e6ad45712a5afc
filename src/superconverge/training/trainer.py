"""`Trainer`: fit_one_cycle and friends on any PyTorch model, with exact resume.

The Trainer holds what outlives a fit (model, optimizer, data, options); each fit runs as a
`FitLoop` (training/loop.py). Devices and precision: training/device.py; callbacks:
training/callbacks.py; checkpoints and the run folder: training/checkpoint.py.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from superconverge import schedules
from superconverge._checks import check_count, check_momentum, plain_arguments
from superconverge._warnings import user_stacklevel
from superconverge.batches import BatchFn, check_batch_fn
from superconverge.data.loader import Augment, SampleOrder, resolve_device
from superconverge.data.sources import (
    LoaderOptions,
    check_dataset_options,
    has_position,
    naming_batched_streams,
)
from superconverge.metrics import MetricsSpec, resolve_metrics
from superconverge.pytorch.distributed import world as process_world
from superconverge.pytorch.optimizers import (
    OPTIMIZERS,
    MaxLR,
    build_optimizer,
    default_splitter,
    for_max_lr,
    freeze_groups,
    regroup,
)
from superconverge.pytorch.scheduler import HyperparamScheduler, set_lr_scales, set_weight_decay
from superconverge.pytorch.snapshot import kept_global_rng
from superconverge.schedules import Plan
from superconverge.training.callbacks import Callback
from superconverge.training.checkpoint import (
    CHECKPOINT,
    RunFolder,
    check_signature,
    holding,
    load_checkpoint,
    match_saved_settings,
    restore_fit,
)
from superconverge.training.device import (
    autocast,
    batch_mover,
    grad_scaler,
    place_model,
    resolve_precision,
    to_device,
)
from superconverge.training.edge import EdgeSearch, EdgeSettings, check_edge_settings
from superconverge.training.evaluation import evaluate_data, predict_data
from superconverge.training.history import History
from superconverge.training.inputs import (
    check_callbacks,
    check_fit_arguments,
    check_fit_data,
    check_model_on_batch,
    check_one_cycle_arguments,
    check_trainable,
    check_trainer_arguments,
    trainer_loaders,
)
from superconverge.training.loop import FitLoop
from superconverge.training.plans import (
    check_one_cycle_length,
    fine_tune,
    finish_fine_tune,
    one_cycle_plan,
    range_test_max_lr,
    warn_if_short,
)
from superconverge.training.progress import resolve_interval, resolve_progress, tell

logger = logging.getLogger(__name__)


class Trainer:
    """Trains a PyTorch model with 1cycle (and any other plan), the way fastai users expect.

    Args:
        model: any ``nn.Module``.
        loss_fn: ``loss_fn(outputs, targets) -> scalar tensor``.
        train_data: any data `superconverge.data.as_source` takes: `ArrayData` (the fast path),
            a map-style ``Dataset``, a factory ``make_loader(batch_size)``, a stream with
            `steps_per_epoch`, or a sized iterable of batches (your ``DataLoader``); batches are
            ``(inputs, targets)`` pairs or dicts, anything else goes through `batch_fn`.
        val_data: the same kinds, or None; a stream is read to its end at each evaluation
            (an endless one needs `val_steps`).
        optimizer: ``"sgd"`` (momentum cycled by the plan), ``"adam"``, ``"adamw"``,
            ``"nadamw"``, or a callable ``fn(param_groups) -> Optimizer``.
        weight_decay: L2 penalty (SGD, Adam) or decoupled decay (AdamW), >= 0; None (the
            default): 0 for a named optimizer, a callable's own; a number is set on the
            groups a callable built.
        metrics: validation metrics (`superconverge.metrics`): ``"auto"``, built-in names
            (``accuracy``, ``top5``, ``mse``, ``mae``; each reported only where it applies),
            callables ``fn(outputs, targets) -> number`` or a dict ``{"name": fn or name}``.
        device: ``"auto"`` (CUDA when available), or a device.
        precision: ``"auto"`` (bf16 autocast on CUDA when supported, else fp32), ``"32"``,
            ``"bf16"``, or ``"fp16"`` (with a grad scaler).
        batch_size: what the trainer asks of its data (default 64; your loader keeps its own).
        callbacks: `Callback` objects (a list, or one).
        out_dir: where checkpoints (``checkpoint.pt``, ``best.pt``) and ``history.csv`` go.
        seed: seeds the batch order and the initial RNG state of a fit.
        splitter: ``model -> list of param lists`` for param groups (default: top-level children).
        accumulation_steps: micro-batches per optimizer step.
        max_grad_norm: clip the gradient norm to this value, or None.
        augment: an `Augment` for image batches when `train_data` is an `ArrayData`.
        diverge_factor: stop when the smoothed loss exceeds this multiple of its minimum (read
            as at least 1% of the fit's first loss), or of the fit's first loss.
        sync_every: steps between reading losses from the device, and so between divergence
            checks (None: 8 on the CPU, 25 on CUDA, where each read waits for the GPU).
        progress: ``"auto"`` (a bar in a terminal or Jupyter, else a line every
            `progress_interval` s; nothing under ``--quiet``), ``"bar"`` (or True), ``"lines"``,
            ``"off"`` (or False): `superconverge.training.progress`.
        progress_interval: seconds between two progress lines; None:
            ``$SUPERCONVERGE_PROGRESS_INTERVAL``, else 30.
        overwrite: allow replacing a checkpoint already in `out_dir`: another run's, or that of
            an earlier fit of this trainer (a second ``fit_one_cycle`` is refused without it;
            ``trainer.overwrite = True`` allows it later).
        batch_fn: ``batch -> (inputs, targets)`` for batches that are neither pairs nor dicts
            (one hook for the range test, the loop and the recipe: `superconverge.batches`).
        steps_per_epoch: batches per epoch of a stream (required) or a loader factory.
        val_steps: batches per evaluation of a `val_data` stream (required if it is endless).
        num_workers, collate_fn: the ``DataLoader``'s, for a ``Dataset`` (workers persistent,
            memory pinned on CUDA).

    Raises:
        TypeError: an argument of the wrong type. ValueError: an argument out of range.

    ``scaler`` is a ``torch.amp.GradScaler``, enabled for fp16 only; ``history`` is the History
    of the latest fit (also while it runs).
    """

    @plain_arguments
    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[..., torch.Tensor],
        train_data: Any,
        val_data: Any = None,
        *,
        optimizer: str | Callable[..., torch.optim.Optimizer] = "sgd",
        weight_decay: float | None = None,
        metrics: MetricsSpec = "auto",
        device: str | torch.device = "auto",
        precision: str = "auto",
        batch_size: int | None = None,
        callbacks: Sequence[Callback] | Callback = (),
        out_dir: str | Path | None = None,
        seed: int = 0,
        splitter: Callable[[nn.Module], list[list[nn.Parameter]]] | None = None,
        accumulation_steps: int = 1,
        max_grad_norm: float | None = None,
        augment: Augment | None = None,
        diverge_factor: float = 4.0,
        sync_every: int | None = None,
        progress: bool | str = "auto",
        progress_interval: float | None = None,
        overwrite: bool = False,
        batch_fn: BatchFn | None = None,
        steps_per_epoch: int | None = None,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        val_steps: int | None = None,
    ) -> None:
        callbacks = check_callbacks(callbacks)
        check_trainer_arguments(
            model=model,
            loss_fn=loss_fn,
            optimizer=optimizer,
            weight_decay=weight_decay,
            metrics=metrics,
            batch_size=batch_size,
            callbacks=callbacks,
            accumulation_steps=accumulation_steps,
            max_grad_norm=max_grad_norm,
            diverge_factor=diverge_factor,
            sync_every=sync_every,
            seed=seed,
        )
        self.rank, self.world_size = process_world()
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.autocast = autocast(self.device, self.precision)
        self.scaler = grad_scaler(self.device, self.precision)
        self.seed = int(seed)
        self.module, self.model = place_model(model, self.device, self.world_size)
        self.loss_fn = loss_fn
        self.metrics = resolve_metrics(metrics, loss_fn)
        self.batch_fn = check_batch_fn(batch_fn)
        # workers asked of tensors or the user's own loader did nothing, unsaid (tune refused)
        loading = LoaderOptions(num_workers=num_workers, collate_fn=collate_fn)
        check_dataset_options(loading, (train_data, val_data), "Trainer")
        self._loader, self.train_loader, self.val_loader = trainer_loaders(
            train_data,
            val_data,
            batch_size,
            augment=augment,
            steps_per_epoch=steps_per_epoch,
            options=loading,
            seed=self.seed,
            device=self.device,
            rank=self.rank,
            world=self.world_size,
            batch_fn=batch_fn,
            val_steps=val_steps,
        )
        self.move_batch = batch_mover(self.train_loader, self.device)  # None: no call per batch
        self.callbacks = list(callbacks)
        self._batch_size = batch_size  # as given: None lets a resume take the run's
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.run_folder = (
            None
            if self.out_dir is None
            else RunFolder(self.out_dir, overwrite=overwrite, writer=self.rank == 0)
        )
        self._overwrite = overwrite
        self.accumulation_steps = accumulation_steps
        self.max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)
        self.diverge_factor = float(diverge_factor)
        # reading a loss waits for the GPU; on the CPU it is cheap but still a few calls a step
        self.sync_every = sync_every or (25 if self.device.type == "cuda" else 8)
        self.progress = resolve_progress(progress) if self.rank == 0 else "off"
        self.progress_interval = resolve_interval(progress_interval)
        self.weight_decay = None if weight_decay is None else float(weight_decay)
        self.param_groups = (splitter or default_splitter)(self.module)
        check_trainable(self.param_groups)
        self._optimizer_spec = optimizer
        # one param group: per-group work costs time on every step (`for_max_lr` splits)
        params = [p for group in self.param_groups for p in group]
        self.optimizer = build_optimizer(optimizer, [{"params": params}], self.weight_decay)
        self.history: History | None = None
        # the fit that follows the current one (fine_tune's second phase), saved in checkpoints
        self.then: dict[str, Any] | None = None
        self.last_range_test: Any = None
        self._tested_state: tuple[tuple[int, bool], ...] | None = None  # `_weights_state` then
        self._fit: FitLoop | None = None
        self._next_search: EdgeSearch | None = None  # the search the next `fit` runs

    @property
    def overwrite(self) -> bool:
        """Whether a fit may replace the checkpoints already in `out_dir` (settable)."""
        return self._overwrite

    @overwrite.setter
    def overwrite(self, value: bool) -> None:
        self._overwrite = value
        if self.run_folder is not None:
            self.run_folder.overwrite = value

    # ----------------------------------------------------------------- freezing
    def freeze_to(self, n: int, *, train_bn: bool = True) -> None:
        """Freeze the first `n` param groups (negative counts from the end); with `train_bn`,
        BatchNorm layers stay trainable, as in fastai (their statistics adapt to the new task)."""
        freeze_groups(self.module, self.param_groups, n, train_bn=train_bn)

    def freeze(self, *, train_bn: bool = True) -> None:
        """Freeze every group but the last (the head)."""
        self.freeze_to(-1, train_bn=train_bn)

    def unfreeze(self) -> None:
        self.freeze_to(0)

    # ----------------------------------------------------------------- public fitting API
    def lr_find(self, **kwargs: Any) -> Any:
        """The LR range test on this trainer's model, optimizer, gradient clipping and data (all
        restored after)."""
        from superconverge.finder.runner import lr_find

        kwargs.setdefault("optimizer", self.optimizer)
        kwargs.setdefault("device", self.device)
        kwargs.setdefault("batch_fn", self.batch_fn)
        kwargs.setdefault("max_grad_norm", self.max_grad_norm)  # the sweep clips as the fit does
        result = lr_find(self.model, self.loss_fn, self.train_loader, **kwargs)
        self.last_range_test, self._tested_state = result, self._weights_state()
        return result

    def _weights_state(self) -> tuple[tuple[int, bool], ...]:
        """Each parameter's and buffer's in-place write count and whether it trains: equal
        before and after anything that changed the weights or froze them (a fit, a checkpoint
        loaded, the user's own writes) only where nothing did."""
        tensors = [*self.module.parameters(), *self.module.buffers()]
        return tuple((t._version, t.requires_grad) for t in tensors)  # noqa: SLF001 - autograd's

    def _range_test_max_lr(self) -> tuple[float, str]:
        """`fit_one_cycle(max_lr=None)`'s max_lr: the user's own `lr_find()` where the weights
        are still those it tested (a second one, at the default settings, redid its work and
        could disagree with what the user had chosen, e.g. num_steps=200), else a new one."""
        if self.last_range_test is not None and self._tested_state == self._weights_state():
            max_lr, note = range_test_max_lr(self.last_range_test)
            return max_lr, note.replace("the range test", "the range test run before (lr_find)")
        return range_test_max_lr(self.lr_find())

    @plain_arguments
    def fit_one_cycle(
        self,
        epochs: int,
        max_lr: MaxLR | str | None = None,
        *,
        policy: str = "smith",
        min_lr: float | None = None,
        final_lr: float | None = None,
        momentum: tuple[float, float] | None = (0.95, 0.85),
        weight_decay: float | None = None,
        warmup_fraction: float | None = None,
        backoff: int = 0,
        search: EdgeSettings | None = None,
    ) -> History:
        """Train for `epochs` with the 1cycle policy and cyclical momentum.

        Args:
            epochs: passes over the training data (>= 1).
            max_lr: the peak LR; a per-group list or ``(low, high)`` pair for discriminative
                LRs; None uses the ``max_lr`` of the LR range test (the one `lr_find` ran
                before, where the weights have not changed since; else a new one); ``"search"``
                makes the cycle's rise the range test: the LR rises exponentially while the
                network trains, until the loss stops falling; the weights from the LR of the
                lowest loss / 6 come back and the descent runs from there (`training.edge`;
                Smith's policy only, with its own min_lr and final_lr).
            policy: ``smith`` (the paper: linear cycle, then annihilation), ``torch``
                (``OneCycleLR``'s cosine curve) or ``fastai`` (``fit_one_cycle``'s curve).
            min_lr, final_lr: absolute LRs; defaults per policy (see the schedules).
            momentum: ``(high, low)``; None leaves the optimizer's momentum alone (needed for
                optimizers without momentum).
            weight_decay: overrides the trainer's weight decay for this fit.
            warmup_fraction: the rise's share (torch and fastai policies).
            backoff: divergences and stalls (an epoch's mean training loss 1.5x the best
                epoch's) answered by restoring the epoch's first weights and running it again
                at half the LR (and the rest); 0: stop at the first divergence, last good
                weights restored, and no stall check.
            search: the constants of ``max_lr="search"`` (`training.edge.EdgeSettings`: where
                the rise starts, its edge rules, the divisor, the copies of the weights and the
                share of the machine's memory they may take); None: the measured defaults.
        """
        check_one_cycle_arguments(epochs, policy)
        check_edge_settings(search)
        if isinstance(max_lr, str):
            return self._fit_search(
                epochs, max_lr, policy, (min_lr, final_lr, warmup_fraction), momentum,
                weight_decay, backoff, search,
            )  # fmt: skip
        if search is not None:
            raise ValueError(
                f"search sets the constants of max_lr='search'; got it with max_lr={max_lr!r}"
            )
        check_one_cycle_length(policy, epochs, self.steps_per_epoch, momentum, warmup_fraction)
        if self.run_folder is not None:
            self.run_folder.check_free()  # before the range test's time is spent
        notes = []
        if max_lr is None:
            max_lr, note = self._range_test_max_lr()
            notes.append(note)
            if self.rank == 0:
                tell(f"fit_one_cycle: {note}", logger)
        self.optimizer, peak, groups = for_max_lr(
            self.optimizer, self._optimizer_spec, self.param_groups, self.weight_decay, max_lr
        )
        total = epochs * self.steps_per_epoch
        plan = one_cycle_plan(policy, total, peak, min_lr, final_lr, momentum, warmup_fraction)
        return self.fit(
            epochs, plan, max_lr=groups, weight_decay=weight_decay, notes=notes, backoff=backoff
        )

    def _fit_search(
        self,
        epochs: int,
        max_lr: str,
        policy: str,
        fixed: tuple[float | None, ...],
        momentum: tuple[float, float] | None,
        weight_decay: float | None,
        backoff: int,
        settings: EdgeSettings | None = None,
    ) -> History:
        """`fit_one_cycle(max_lr="search")`: the rise searches the peak (`training.edge`)."""
        if max_lr != "search":
            raise ValueError(
                f"max_lr must be a number, a per-group list or pair, None (a range test first) "
                f"or 'search' (the rise searches it), got {max_lr!r}"
            )
        if policy != "smith":
            raise ValueError(
                f"max_lr='search' descends as Smith's 1cycle does: policy must be 'smith', got "
                f"{policy!r}"
            )
        named = zip(("min_lr", "final_lr", "warmup_fraction"), fixed, strict=True)
        given = [f"{name}={value!r}" for name, value in named if value is not None]
        if given:
            raise ValueError(
                f"max_lr='search' sets the cycle's LRs and its rise from what it finds; "
                f"leave {', '.join(given)} unset"
            )
        search = EdgeSearch(epochs * self.steps_per_epoch, check_momentum(momentum), settings)
        self._next_search = search  # the fit below runs it
        return self.fit(epochs, search.rise_plan(), weight_decay=weight_decay, backoff=backoff)

    @plain_arguments
    def fit_cyclic(
        self,
        epochs: int,
        base_lr: float,
        max_lr: float,
        *,
        step_size: int | None = None,
        mode: str = "triangular",
        gamma: float = 1.0,
        momentum: tuple[float, float] | None = (0.95, 0.85),
        weight_decay: float | None = None,
    ) -> History:
        """Cyclical LRs (arXiv:1506.01186); `step_size` (half a cycle) defaults to 2 epochs."""
        check_count("epochs", epochs)
        size = step_size if step_size is not None else 2 * self.steps_per_epoch
        total = epochs * self.steps_per_epoch
        plan = schedules.cyclic(
            base_lr, max_lr, size, mode=mode, gamma=gamma, momentum=momentum, total_steps=total
        )
        return self.fit(epochs, plan, weight_decay=weight_decay)

    @plain_arguments
    def fine_tune(
        self,
        epochs: int,
        base_lr: float = 2e-3,
        *,
        freeze_epochs: int = 1,
        lr_mult: float = 100.0,
        policy: str = "fastai",
        **kwargs: Any,
    ) -> History:
        """fastai's fine-tuning: the head on a frozen body for `freeze_epochs` (1cycle), then all
        groups for `epochs`, LRs from ``base_lr / 2 / lr_mult`` (first) to ``base_lr / 2``.
        With the ``fastai`` policy the curves are fastai's: 99% warm-up in the frozen phase,
        then 30% warm-up from a fifth of each group's peak (``warmup_fraction`` / ``min_lr`` in
        `kwargs` replace them); `kwargs` go to both `fit_one_cycle` calls."""
        check_count("epochs", epochs)
        return fine_tune(self, epochs, base_lr, freeze_epochs, lr_mult, policy, kwargs)

    @plain_arguments
    def fit(
        self,
        epochs: int,
        plan: Plan,
        *,
        max_lr: Any = None,
        weight_decay: float | None = None,
        notes: Sequence[str] = (),
        backoff: int = 0,
    ) -> History:
        """Train for `epochs` following any `Plan` (cyclic, piecewise constant, constant, ...);
        `backoff` as for `fit_one_cycle`."""
        edge, self._next_search = self._next_search, None  # fit_one_cycle(max_lr="search")'s
        check_fit_arguments(epochs, plan, weight_decay, backoff)
        check_fit_data(self.train_loader, self.val_loader, self.batch_fn, self.check_batch)
        self._check_ranks_agree(epochs, plan, edge is not None)
        # the fit seeds torch (`FitLoop.run`); the caller's generator is given back after it
        # one writer per out_dir, from this check to the last save
        with kept_global_rng(), holding(self.run_folder):
            if self.run_folder is not None:
                self.run_folder.check_free()
            if weight_decay is not None:
                set_weight_decay(self.optimizer, weight_decay)
            warn_if_short(plan, epochs * self.steps_per_epoch)
            if max_lr is None:
                max_lr = plan.max_lr  # one LR for every group: clears scales of an earlier fit
                if max_lr is None:  # a plan in LRs (the search's rise): clears them here
                    set_lr_scales(self.optimizer, [1.0] * len(self.optimizer.param_groups))
            scheduler = HyperparamScheduler(self.optimizer, plan, max_lr=max_lr)
            self.history = History(plan=plan.to_dict(), notes=list(notes))
            loader = self.train_loader
            if has_position(loader) and loader.batch_index != 0:  # keeps a batch peeked at 0
                loader.load_state_dict({**loader.state_dict(), "batch_index": 0})
            return self._run(
                FitLoop(self, scheduler, self.history, epochs=epochs, backoff=backoff, edge=edge)
            )

    # ----------------------------------------------------------------- evaluation
    @plain_arguments
    def evaluate(self, data: Any = None, *, steps: int | None = None) -> dict[str, float]:
        """Loss and metrics on `data` (default: the validation data), reduced across ranks; a
        stream is read to its end, or `steps` batches (an endless one needs them)."""
        return evaluate_data(self, self._loader, data, steps)

    def predict(self, data: Any) -> torch.Tensor:
        """Model outputs for every input of `data` (any kind the trainer takes), concatenated on
        the CPU; a stream is read to its end. Under torchrun the ranks share the work on data
        the trainer splits (tensors, a ``Dataset``) and each rank returns every output, in the
        data's order: call it on every rank (not ``if rank == 0``: the ranks gather). A loader
        of your own is read as it is, so a ``DistributedSampler`` in it gives each rank its
        own part."""
        return predict_data(self, self._loader, data)

    def close(self) -> None:
        """Stop the DataLoader worker processes of the training and validation data now (a
        ``Dataset`` with `num_workers`); they start again if the trainer trains or evaluates
        again. `tune` closes each of its runs' trainers, so no two runs' workers live at once."""
        for loader in (self.train_loader, self.val_loader):
            close = getattr(loader, "close", None)
            if callable(close):
                close()

    # ----------------------------------------------------------------- checkpoints
    @classmethod
    @plain_arguments
    def resume(
        cls,
        path: str | Path,
        model: nn.Module,
        loss_fn: Callable[..., torch.Tensor],
        train_data: Any,
        val_data: Any = None,
        **kwargs: Any,
    ) -> History:
        """Continue an interrupted fit from its last checkpoint and return the finished History.

        Give the same model architecture, data and trainer options as the original run; on the
        CPU with deterministic settings the final weights equal an uninterrupted run's. The run
        goes on in the checkpoint's folder (its ``checkpoint.pt``, ``best.pt`` and history are
        updated each epoch, so a second crash loses only the epoch it interrupts) unless
        `out_dir` is given (None: write nothing); from another file (``best.pt``, a copy under
        another name) it writes nothing unless `out_dir` is given, so that file's folder keeps
        its run. `path` may be the run's folder (its ``checkpoint.pt``).
        """
        if Path(path).is_dir():  # the out_dir the run was given
            path = Path(path) / CHECKPOINT
        payload = load_checkpoint(path)
        check_signature(payload["signature"], model, path)
        if Path(path).name == CHECKPOINT:  # the run's own last epoch: its run goes on there
            kwargs.setdefault("out_dir", Path(path).parent)
        kwargs.setdefault("overwrite", True)  # continuing the same run may replace its checkpoint
        if "optimizer" not in kwargs:  # the checkpoint names it, as it gives the batch size (a
            # user's check: "pass optimizer='adamw'" for a run the checkpoint says was AdamW)
            saved = (payload.get("settings") or {}).get("optimizer")
            named = [name for name, (built, _) in OPTIMIZERS.items() if built.__name__ == saved]
            groups = payload["optimizer"]["param_groups"]
            decoupled = bool(groups and groups[0].get("decoupled_weight_decay"))
            if named and (named[0] != "nadamw" or decoupled):  # torch's NAdam is not ours
                kwargs["optimizer"] = named[0]
        trainer = cls(model, loss_fn, train_data, val_data, **kwargs)
        return trainer.resume_from(path, payload)

    def resume_from(self, path: str | Path, payload: dict[str, Any] | None = None) -> History:
        """Continue the fit saved in `path` on this trainer (built like the one that saved it)
        and return the finished History; a `fine_tune` stopped in its frozen phase goes on to
        its second phase, as the uninterrupted call would have. It writes where this trainer
        writes: nowhere for a trainer built without `out_dir` (`Trainer.resume` goes on in the
        checkpoint's folder by default)."""
        payload = payload if payload is not None else load_checkpoint(path)
        then = payload.get("then")
        if self.run_folder is not None:
            self.run_folder.continue_run()
        with kept_global_rng(), holding(self.run_folder):  # the checkpoint's RNG: the fit's own
            self.then = then
            try:
                history = self._run(self.load_checkpoint(path, payload))
            finally:
                self.then = None
        if then is None:
            return history
        return finish_fine_tune(self, history, then)

    def load_checkpoint(self, path: str | Path, payload: dict[str, Any] | None = None) -> FitLoop:
        """Load weights, optimizer, loader position, RNG and history; return the interrupted
        fit, ready to continue with ``.run()``."""
        payload = payload if payload is not None else load_checkpoint(path)
        check_signature(payload["signature"], self.module, path)
        match_saved_settings(
            payload,
            path,
            optimizer=self.optimizer,
            batch_size=self._batch_size,
            loader=self.train_loader,
            steps_per_epoch=lambda: self.steps_per_epoch,
            world_size=self.world_size,
        )
        self._match_saved_groups(payload, path)
        loader = self.train_loader if has_position(self.train_loader) else None
        state = restore_fit(payload, path, self.module, self.optimizer, loader, self.scaler)
        self.history = state.history
        saved = payload.get("callbacks") or {}
        taken = set()
        for callback in self.callbacks:  # those that keep state in checkpoints get it back
            key = getattr(callback, "checkpoint_key", None)
            if key is not None and key in saved:
                cast(Any, callback).load_state_dict(saved[key])
                taken.add(key)
        left = [key for key in saved if key not in taken]
        if left and self.rank == 0:  # the interrupted fit's callbacks, not given to this one
            names = payload.get("callback_names") or {}
            named = ", ".join(f"{names.get(key, key)} ({key!r})" for key in left)
            warnings.warn(
                f"{path} holds the state of {named}, which none of this Trainer's callbacks "
                "takes: the resumed fit goes on without it and ends otherwise than the "
                "interrupted one would have (a WeightAverage's mean so far is dropped); pass "
                "the interrupted fit's callbacks (callbacks=[...]) to continue them",
                RuntimeWarning,
                stacklevel=user_stacklevel(),
            )
        edge = payload.get("edge")
        # the search's copies go to it, not kept for the run's length with the payload
        copies = payload.pop("edge_copies", None)
        return FitLoop(
            self,
            state.scheduler,
            state.history,
            epochs=state.epochs,
            start_epoch=state.epochs_done,
            best_val_loss=state.best_val_loss,
            # the back-offs the fit had left (a checkpoint from before they were saved: none)
            backoff=int(payload.get("backoff_left", 0)),
            edge=None if edge is None else EdgeSearch.from_state(edge, copies),
        )

    def _match_saved_groups(self, payload: dict[str, Any], path: str | Path) -> None:
        """Rebuild what a fit with discriminative LRs (or `fine_tune`) changed on the trainer
        that saved `payload`: the frozen parameters and one optimizer group per param group."""
        frozen = set(payload.get("frozen", ()))
        if frozen:
            for index, param in enumerate(self.module.parameters()):
                param.requires_grad_(index not in frozen)
        saved = len(payload["optimizer"]["param_groups"])
        if saved == len(self.optimizer.param_groups):
            return
        if saved != len(self.param_groups):
            raise ValueError(
                f"the checkpoint {path} was trained with {saved} optimizer parameter groups; "
                f"this trainer's splitter gives {len(self.param_groups)}: pass the splitter the "
                "run was trained with (Trainer(..., splitter=...))"
            )
        self.optimizer = regroup(
            self.optimizer, self._optimizer_spec, self.param_groups, self.weight_decay
        )

    def _check_ranks_agree(self, epochs: int, plan: Plan, searches: bool) -> None:
        """Under torchrun, every rank's fit must take the same steps at the same LRs: ranks
        given other epochs, data of another size, another batch or max_lr hung, aborted in
        gloo with "collective mismatch", or trained replicas apart (a user's check). One
        gather of five numbers names the difference before any step."""
        if self.world_size < 2:
            return
        names = ("epochs", "steps per epoch", "planned steps", "max_lr", "max_lr='search'", "seed")
        # the seed orders a loader built here: ranks seeded apart read overlapping samples (a
        # user's check with seed=rank: 74 of 100 read in an epoch, 26 twice); a loader of the
        # user's own orders itself
        seed = self.seed if isinstance(self.train_loader, SampleOrder) else -1
        mine = torch.tensor(
            [epochs, self.steps_per_epoch, plan.total_steps or -1, plan.max_lr or -1.0, searches,
             seed],
            dtype=torch.float64,
            device=self.device,
        )  # fmt: skip
        every = [torch.empty_like(mine) for _ in range(self.world_size)]
        torch.distributed.all_gather(every, mine)
        values = torch.stack(every).cpu()
        differ = [
            f"{name}: "
            + ", ".join(f"rank {r} {_agreed(values[r, i].item())}" for r in range(len(values)))
            for i, name in enumerate(names)
            if not bool((values[:, i] == values[0, i]).all())
        ]
        if differ:
            raise ValueError(
                "the ranks of this torchrun would train different runs, and hang or drift apart: "
                + "; ".join(differ)
                + " (give every rank the same data size, batch size, epochs, max_lr and seed)"
            )

    # ----------------------------------------------------------------- the loop
    def _run(self, fit: FitLoop) -> History:
        self._fit = fit
        try:
            return fit.run()
        finally:
            self._fit = None
            if self.run_folder is not None:
                self.run_folder.end_run()  # a later fit is another run

    def checkpoint_settings(self) -> dict[str, Any]:
        """What a resume must match, saved in each checkpoint (`match_saved_settings`)."""
        loader = self.train_loader
        return {
            "steps_per_epoch": self.steps_per_epoch,
            "batch_size": loader.batch_size if has_position(loader) else self._batch_size,
            "optimizer": type(self.optimizer).__name__,
            "world_size": self.world_size,  # a resume in another world is named as such
        }

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.train_loader) // self.accumulation_steps)

    def scheduler_lr(self) -> float:
        """The LR of the step a callback's `after_batch` is told of (NaN outside a fit)."""
        return self._fit.lr if self._fit is not None else math.nan

    def check_batch(self, inputs: Any, targets: Any) -> int | None:
        """One forward pass in eval mode, so that a bad label or NaN input (named), a model whose
        outputs do not fit the targets or the loss, or a metric that raises, fails before any
        step; returns the model's number of classes, if any."""
        inputs, targets = to_device(inputs, self.device), to_device(targets, self.device)
        with naming_batched_streams(self.train_loader):
            return check_model_on_batch(
                self.module, self.loss_fn, self.metrics, self.autocast, inputs, targets
            )


def _agreed(value: float) -> str:
    """A number of `Trainer._check_ranks_agree`'s gather as a message shows it (-1: none)."""
    return "none" if value == -1 else f"{value:g}"
