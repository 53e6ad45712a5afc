"""`Trainer`: fit_one_cycle and friends on any PyTorch model, with exact resume."""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from superconverge import schedules
from superconverge.data.datasets import ArrayData
from superconverge.data.loader import ArrayLoader, Augment
from superconverge.pytorch.distributed import world as process_world
from superconverge.pytorch.optimizers import (
    OptimizerSpec,
    build_optimizer,
    check_optimizer_spec,
    default_splitter,
    regroup,
)
from superconverge.pytorch.scheduler import (
    HyperparamScheduler,
    get_momentum,
    momentum_key,
    set_weight_decay,
    spread_max_lr,
)
from superconverge.pytorch.snapshot import TrainingSnapshot
from superconverge.schedules import Plan
from superconverge.training.checkpoint import (
    FORMAT_VERSION,
    check_signature,
    load_checkpoint,
    model_signature,
    rng_state,
    save_atomically,
    set_rng_state,
)
from superconverge.training.history import History

logger = logging.getLogger(__name__)

METRICS = ("accuracy",)
PRECISIONS = ("auto", "32", "bf16", "fp16")
POLICIES = ("smith", "torch", "fastai")
CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
SMOOTHING = 0.98  # the loss smoothing of the range test, for the divergence check
WARMUP_STEPS = 10  # no divergence verdict before the smoothed loss has settled
DEFAULT_BATCH_SIZE = 64

MaxLR = float | Sequence[float] | slice


class Callback:
    """Hooks into the training loop; override what you need. `trainer` is the running Trainer."""

    def on_fit_start(self, trainer: Trainer, history: History) -> None: ...

    def on_step_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None: ...

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None: ...

    def on_fit_end(self, trainer: Trainer, history: History) -> None: ...


def _overrides(callback: Callback, name: str) -> bool:
    return getattr(type(callback), name) is not getattr(Callback, name)


class TensorBoardLogger(Callback):
    """Writes the per-step loss and LR and the per-epoch metrics for TensorBoard.

    Needs the ``tensorboard`` package (``pip install superconverge[tensorboard]``).
    """

    def __init__(self, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError(
                "TensorBoardLogger needs tensorboard: pip install 'superconverge[tensorboard]'"
            ) from error
        self.writer = SummaryWriter(str(log_dir))

    def on_step_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        self.writer.add_scalar("train/loss_step", float(loss), step)
        self.writer.add_scalar("train/lr", trainer.scheduler_lr(), step)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        for key, value in record.items():
            if key != "epoch" and math.isfinite(value):
                self.writer.add_scalar(f"epoch/{key}", value, int(record["epoch"]))
        self.writer.flush()

    def on_fit_end(self, trainer: Trainer, history: History) -> None:
        self.writer.close()


def scale_lr_for_batch(max_lr: float, reference_batch: int, batch: int) -> float:
    """The linear scaling rule (Goyal et al., arXiv:1706.02677): the LR grows with the batch.

    Under DDP the batch that matters is the global one (per-rank batch x world size); an LR
    found with a range test at the same global batch needs no scaling.

    Example:
        >>> scale_lr_for_batch(0.1, 128, 512)
        0.4
    """
    if reference_batch < 1 or batch < 1:
        raise ValueError(f"batch sizes must be >= 1, got {reference_batch!r} and {batch!r}")
    return max_lr * batch / reference_batch


class Trainer:
    """Trains a PyTorch model with 1cycle (and any other plan), the way fastai users expect.

    Args:
        model: any ``nn.Module``.
        loss_fn: ``loss_fn(outputs, targets) -> scalar tensor``.
        train_data: an `ArrayData` (served by an `ArrayLoader`), an `ArrayLoader`, or any
            iterable of ``(inputs, targets)`` batches with ``len()``.
        val_data: the same kinds, or None.
        optimizer: ``"sgd"`` (momentum cycled by the plan), ``"adam"``, ``"adamw"``, or a
            callable ``params -> Optimizer`` receiving the param groups.
        weight_decay: L2 penalty (SGD, Adam) or decoupled decay (AdamW), >= 0.
        metrics: validation metrics; ``"accuracy"`` for classification.
        device: ``"auto"`` (CUDA when available), or a device.
        precision: ``"auto"`` (bf16 autocast on CUDA when supported, else fp32), ``"32"``,
            ``"bf16"``, or ``"fp16"`` (with a grad scaler).
        batch_size: batch size when `train_data` is an `ArrayData` (default 64).
        callbacks: `Callback` objects.
        out_dir: where checkpoints (``checkpoint.pt``, ``best.pt``) and ``history.csv`` go.
        seed: seeds the batch order and the initial RNG state of a fit.
        splitter: ``model -> list of param lists`` for param groups (default: top-level children).
        accumulation_steps: micro-batches per optimizer step.
        max_grad_norm: clip the gradient norm to this value, or None.
        augment: an `Augment` for image batches when `train_data` is an `ArrayData`.
        diverge_factor: stop when the smoothed loss exceeds this multiple of its minimum.
        sync_every: steps between reading losses from the device, and so between divergence
            checks (None: 8 on the CPU, 25 on CUDA, where each read waits for the GPU).
        progress: ``"auto"`` (bars when stderr is a terminal), True or False.
        overwrite: allow replacing a checkpoint already in `out_dir`.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[..., torch.Tensor],
        train_data: Any,
        val_data: Any = None,
        *,
        optimizer: str | Callable[..., torch.optim.Optimizer] = "sgd",
        weight_decay: float = 0.0,
        metrics: Sequence[str] = ("accuracy",),
        device: str | torch.device = "auto",
        precision: str = "auto",
        batch_size: int | None = None,
        callbacks: Sequence[Callback] = (),
        out_dir: str | Path | None = None,
        seed: int = 0,
        splitter: Callable[[nn.Module], list[list[nn.Parameter]]] | None = None,
        accumulation_steps: int = 1,
        max_grad_norm: float | None = None,
        augment: Augment | None = None,
        diverge_factor: float = 4.0,
        sync_every: int | None = None,
        progress: bool | str = "auto",
        overwrite: bool = False,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {loss_fn!r}")
        check_optimizer_spec(optimizer)
        _check_weight_decay(weight_decay)
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"metrics must be among {', '.join(METRICS)}, got {unknown}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if (
            isinstance(accumulation_steps, bool)
            or not isinstance(accumulation_steps, int)
            or accumulation_steps < 1
        ):
            raise ValueError(
                f"accumulation_steps must be an integer >= 1, got {accumulation_steps!r}"
            )
        if max_grad_norm is not None and not (
            isinstance(max_grad_norm, (int, float)) and max_grad_norm > 0
        ):
            raise ValueError(f"max_grad_norm must be > 0 or None, got {max_grad_norm!r}")
        if not isinstance(diverge_factor, (int, float)) or diverge_factor <= 1:
            raise ValueError(f"diverge_factor must be > 1, got {diverge_factor!r}")
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be Callback objects, got {callback!r}")

        self.rank, self.world_size = process_world()
        self.device = _resolve_device(device)
        self.precision = _resolve_precision(precision, self.device)
        self.seed = int(seed)
        self.module = model.to(self.device)
        if self.device.type == "cuda" and any(p.dim() == 4 for p in model.parameters()):
            # channels_last: faster convolutions on GPUs with tensor cores
            self.module = self.module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.model: nn.Module = self.module
        if self.world_size > 1:
            device_ids = [self.device] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.module, device_ids=device_ids)
        self.loss_fn = loss_fn
        self.metrics = tuple(metrics)
        self.train_loader = self._loader(
            train_data, "train_data", batch_size, shuffle=True, augment=augment
        )
        self.val_loader = (
            None
            if val_data is None
            else self._loader(
                val_data,
                "val_data",
                max(batch_size or DEFAULT_BATCH_SIZE, 256),
                shuffle=False,
                augment=None,
            )
        )
        self.callbacks = list(callbacks)
        self._step_callbacks = [c for c in self.callbacks if _overrides(c, "on_step_end")]
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.overwrite = overwrite
        self._written: set[Path] = set()
        self.accumulation_steps = accumulation_steps
        self.max_grad_norm = max_grad_norm
        self.diverge_factor = float(diverge_factor)
        if sync_every is not None and (
            isinstance(sync_every, bool) or not isinstance(sync_every, int) or sync_every < 1
        ):
            raise ValueError(f"sync_every must be an integer >= 1 or None, got {sync_every!r}")
        # reading a loss waits for the GPU; on the CPU it is cheap but still a few calls a step
        default_sync = 25 if self.device.type == "cuda" else 8
        self.sync_every = sync_every if sync_every is not None else default_sync
        self.progress = _use_progress(progress) and self.rank == 0
        self.weight_decay = float(weight_decay)
        self.param_groups = (splitter or default_splitter)(self.module)
        if not self.param_groups or not any(p.requires_grad for g in self.param_groups for p in g):
            raise ValueError("model has no trainable parameters")
        self._optimizer_spec = optimizer
        self.optimizer = self._make_optimizer(optimizer)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None
        self.scheduler: HyperparamScheduler | None = None
        self.history: History | None = None
        self.best_val_loss = math.inf
        self.last_range_test: Any = None

    # ----------------------------------------------------------------- set-up helpers
    def _loader(
        self, data: Any, name: str, batch_size: int | None, shuffle: bool, augment: Augment | None
    ) -> Any:
        if (
            isinstance(data, tuple)
            and len(data) == 2
            and all(isinstance(t, torch.Tensor) for t in data)
        ):
            data = ArrayData(*data)
        if isinstance(data, ArrayData):
            if len(data) == 0:
                raise ValueError(f"{name} is empty (0 samples)")
            return ArrayLoader(
                data, batch_size or DEFAULT_BATCH_SIZE, shuffle=shuffle, seed=self.seed,
                device=self.device, augment=augment, rank=self.rank, world_size=self.world_size,
            )  # fmt: skip
        if isinstance(data, ArrayLoader):
            if batch_size is not None and name == "train_data":
                data.batch_size = batch_size
            return data
        if not isinstance(data, Iterable) or not hasattr(data, "__len__"):
            raise TypeError(
                f"{name} must be ArrayData, an ArrayLoader or a sized iterable of batches"
            )
        if len(data) == 0:  # type: ignore[arg-type]
            raise ValueError(f"{name} is empty (0 batches)")
        return data

    def _make_optimizer(self, optimizer: OptimizerSpec) -> torch.optim.Optimizer:
        """One param group: per-group work costs time on every step (`_split_groups` splits)."""
        params = [p for group in self.param_groups for p in group]
        return build_optimizer(optimizer, [{"params": params}], self.weight_decay)

    # ----------------------------------------------------------------- freezing
    def freeze_to(self, n: int, *, train_bn: bool = True) -> None:
        """Freeze the first `n` param groups (negative counts from the end); with `train_bn`,
        BatchNorm layers stay trainable, as in fastai (their statistics adapt to the new task)."""
        count = len(self.param_groups)
        index = n if n >= 0 else count + n
        if not 0 <= index <= count:
            raise ValueError(f"n must be in [-{count}, {count}], got {n!r}")
        bn_params = set()
        if train_bn:
            for module in self.module.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):  # noqa: SLF001
                    bn_params |= {id(p) for p in module.parameters(recurse=False)}
        for position, group in enumerate(self.param_groups):
            for param in group:
                param.requires_grad_(position >= index or id(param) in bn_params)

    def freeze(self, *, train_bn: bool = True) -> None:
        """Freeze every group but the last (the head)."""
        self.freeze_to(-1, train_bn=train_bn)

    def unfreeze(self) -> None:
        self.freeze_to(0)

    # ----------------------------------------------------------------- public fitting API
    def lr_find(self, **kwargs: Any) -> Any:
        """The LR range test on this trainer's model, optimizer and data (all restored after)."""
        from superconverge.finder.runner import lr_find

        kwargs.setdefault("optimizer", self.optimizer)
        kwargs.setdefault("device", self.device)
        result = lr_find(self.model, self.loss_fn, self.train_loader, **kwargs)
        self.last_range_test = result
        return result

    def fit_one_cycle(
        self,
        epochs: int,
        max_lr: MaxLR | None = None,
        *,
        policy: str = "smith",
        min_lr: float | None = None,
        final_lr: float | None = None,
        momentum: tuple[float, float] | None = (0.95, 0.85),
        weight_decay: float | None = None,
        warmup_fraction: float | None = None,
    ) -> History:
        """Train for `epochs` with the 1cycle policy and cyclical momentum.

        Args:
            epochs: passes over the training data (>= 1).
            max_lr: the peak LR; a per-group list or ``(low, high)`` pair for discriminative
                LRs; None runs the LR range test first and uses its ``max_lr``.
            policy: ``smith`` (the paper: linear cycle, then annihilation), ``torch``
                (``OneCycleLR``'s cosine curve) or ``fastai`` (``fit_one_cycle``'s curve).
            min_lr, final_lr: absolute LRs; defaults per policy (see the schedules).
            momentum: ``(high, low)``; None leaves the optimizer's momentum alone (needed for
                optimizers without momentum).
            weight_decay: overrides the trainer's weight decay for this fit.
            warmup_fraction: the rise's share (torch and fastai policies).
        """
        _check_epochs(epochs)
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        notes = []
        if max_lr is None:
            result = self.lr_find()
            if result.max_lr is None:
                raise ValueError(
                    f"max_lr: the range test found none ({result.reason}); pass max_lr"
                )
            max_lr = result.max_lr
            notes.append(f"max_lr {result.max_lr:.3g} from the range test: {result.reason}")
            if self.rank == 0:
                logger.info("fit_one_cycle: %s", notes[-1])
        peak, groups = self._peak(max_lr)
        total = epochs * self.steps_per_epoch
        kwargs: dict[str, Any] = {"min_lr": min_lr, "final_lr": final_lr, "momentum": momentum}
        if warmup_fraction is not None:
            if policy == "smith":
                raise ValueError(
                    "warmup_fraction applies to the torch and fastai policies; "
                    "smith has equal halves"
                )
            kwargs["warmup_fraction"] = warmup_fraction
        builders: dict[str, Callable[..., Plan]] = {
            "smith": schedules.smith_one_cycle,
            "torch": schedules.one_cycle,
            "fastai": schedules.fastai_one_cycle,
        }
        builder = builders[policy]
        plan = builder(total, peak, **kwargs)
        return self.fit(epochs, plan, max_lr=groups, weight_decay=weight_decay, notes=notes)

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
        _check_epochs(epochs)
        size = step_size if step_size is not None else 2 * self.steps_per_epoch
        plan = schedules.cyclic(base_lr, max_lr, size, mode=mode, gamma=gamma, momentum=momentum,
                                total_steps=epochs * self.steps_per_epoch)  # fmt: skip
        return self.fit(epochs, plan, weight_decay=weight_decay)

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
        """fastai's fine-tuning: train the head on a frozen body with 1cycle for `freeze_epochs`,
        then unfreeze and train everything for `epochs` with LRs spread from
        ``base_lr / 2 / lr_mult`` (first group) to ``base_lr / 2`` (head)."""
        _check_epochs(epochs)
        self.freeze()
        first = self.fit_one_cycle(freeze_epochs, base_lr, policy=policy, **kwargs)
        if first.status != "completed":
            self.unfreeze()
            return first
        self.unfreeze()
        half = base_lr / 2
        second = self.fit_one_cycle(epochs, (half / lr_mult, half), policy=policy, **kwargs)
        second.notes.insert(
            0, f"after {freeze_epochs} frozen epoch(s): {first.epochs[-1] if first.epochs else {}}"
        )
        return second

    def fit(
        self,
        epochs: int,
        plan: Plan,
        *,
        max_lr: Any = None,
        weight_decay: float | None = None,
        notes: Sequence[str] = (),
    ) -> History:
        """Train for `epochs` following any `Plan` (cyclic, piecewise constant, constant, ...)."""
        _check_epochs(epochs)
        if not isinstance(plan, Plan):
            raise TypeError(f"plan must be a superconverge Plan, got {plan!r}")
        if weight_decay is not None:
            _check_weight_decay(weight_decay)
        self._check_shapes()
        self._check_out_dir()
        if weight_decay is not None:
            set_weight_decay(self.optimizer, weight_decay)
        total = epochs * self.steps_per_epoch
        if plan.total_steps is not None and plan.total_steps < total:
            warnings.warn(
                f"the plan has {plan.total_steps} steps and the fit {total}; "
                "the last values are held",
                stacklevel=2,
            )
        if max_lr is None:
            max_lr = plan.max_lr  # one LR for every group: clears scales of an earlier fit
        self.scheduler = HyperparamScheduler(self.optimizer, plan, max_lr=max_lr)
        history = History(plan=plan.to_dict(), notes=list(notes))
        if isinstance(self.train_loader, ArrayLoader):
            self.train_loader.load_state_dict({**self.train_loader.state_dict(), "batch_index": 0})
        return self._run(history, start_epoch=0, epochs=epochs)

    # ----------------------------------------------------------------- evaluation
    def evaluate(self, data: Any = None) -> dict[str, float]:
        """Loss and metrics on `data` (default: the validation data), reduced across ranks."""
        loader = self.val_loader if data is None else self._loader(data, "data", 256, False, None)
        if loader is None:
            raise ValueError("data must be given when the trainer has no val_data")
        was_training = self.model.training
        self.model.eval()
        totals = torch.zeros(3, dtype=torch.float64, device=self.device)
        with torch.no_grad(), self._autocast():
            for inputs, targets in loader:
                inputs, targets = self._to_device(inputs), self._to_device(targets)
                outputs = self.model(inputs)
                count = len(targets)
                totals[0] += self.loss_fn(outputs, targets).double() * count
                if "accuracy" in self.metrics and outputs.ndim == 2 and targets.ndim == 1:
                    totals[1] += (outputs.argmax(1) == targets).sum()
                totals[2] += count
        self.model.train(was_training)
        if self.world_size > 1:
            torch.distributed.all_reduce(totals)
        loss, correct, count = totals.tolist()
        out = {"loss": loss / count}
        if "accuracy" in self.metrics:
            out["accuracy"] = correct / count
        return out

    def predict(self, data: Any) -> torch.Tensor:
        """Model outputs for every input of `data` (batches of ``(inputs, targets)`` or an
        `ArrayData`), concatenated on the CPU."""
        loader = self._loader(data, "data", 256, False, None)
        self.model.eval()
        outputs = []
        with torch.no_grad(), self._autocast():
            for inputs, _ in loader:
                outputs.append(self.model(self._to_device(inputs)).float().cpu())
        return torch.cat(outputs)

    # ----------------------------------------------------------------- checkpoints
    @classmethod
    def resume(cls, path: str | Path, model: nn.Module, loss_fn: Callable[..., torch.Tensor],
               train_data: Any, val_data: Any = None, **kwargs: Any) -> History:  # fmt: skip
        """Continue an interrupted fit from its last checkpoint and return the finished History.

        Give the same model architecture, data and trainer options as the original run; on the
        CPU with deterministic settings the final weights equal an uninterrupted run's.
        """
        payload = load_checkpoint(path)
        check_signature(payload["signature"], model, path)
        kwargs.setdefault("overwrite", True)  # continuing the same run may replace its checkpoint
        trainer = cls(model, loss_fn, train_data, val_data, **kwargs)
        trainer.load_checkpoint(path, payload)
        assert trainer.history is not None and trainer.scheduler is not None
        fit = payload["fit"]
        return trainer._run(trainer.history, start_epoch=fit["epochs_done"], epochs=fit["epochs"])

    def load_checkpoint(self, path: str | Path, payload: dict[str, Any] | None = None) -> None:
        """Load weights, optimizer, scheduler, loader position, RNG and history."""
        payload = payload if payload is not None else load_checkpoint(path)
        check_signature(payload["signature"], self.module, path)
        self.module.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        plan = Plan.from_dict(payload["plan"])
        self.scheduler = HyperparamScheduler(self.optimizer, plan)  # lr_scale came with the groups
        self.scheduler.load_state_dict(payload["scheduler"])
        if isinstance(self.train_loader, ArrayLoader) and payload.get("loader") is not None:
            self.train_loader.load_state_dict(payload["loader"])
        if self.scaler is not None and payload.get("scaler") is not None:
            self.scaler.load_state_dict(payload["scaler"])
        self.history = History.from_dict(payload["history"])
        self.best_val_loss = float(payload.get("best_val_loss", math.inf))
        set_rng_state(payload["rng"])

    def _payload(self, history: History, epochs: int, epochs_done: int) -> dict[str, Any]:
        assert self.scheduler is not None
        return {
            "format": FORMAT_VERSION,
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "plan": self.scheduler.plan.to_dict(),
            "fit": {"epochs": epochs, "epochs_done": epochs_done},
            "loader": self.train_loader.state_dict()
            if isinstance(self.train_loader, ArrayLoader)
            else None,
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "rng": rng_state(),
            "history": history.to_dict(),
            "best_val_loss": self.best_val_loss,
            "signature": model_signature(self.module),
        }

    def _check_out_dir(self) -> None:
        if self.out_dir is None or self.overwrite or self.rank != 0:
            return
        for name in (CHECKPOINT, BEST):
            path = self.out_dir / name
            if path.exists() and path not in self._written:
                raise FileExistsError(
                    f"out_dir {self.out_dir} already holds {name} from another run; pass "
                    "overwrite=True, choose another out_dir, or Trainer.resume() it"
                )

    def _save(self, name: str, payload: dict[str, Any]) -> None:
        if self.out_dir is None or self.rank != 0:
            return
        path = save_atomically(payload, self.out_dir / name)
        self._written.add(path)

    # ----------------------------------------------------------------- the loop
    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.train_loader) // self.accumulation_steps)

    def scheduler_lr(self) -> float:
        return float(self.scheduler.last_lr) if self.scheduler is not None else math.nan

    def _to_device(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            if value.device != self.device:
                value = value.to(self.device, non_blocking=True)
            if self.device.type == "cuda" and value.dim() == 4 and value.is_floating_point():
                value = value.contiguous(memory_format=torch.channels_last)
            return value
        return value

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if self.precision == "fp16":
            return torch.autocast(self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    def _first_batch(self) -> tuple[Any, Any]:
        loader = self.train_loader
        if isinstance(loader, ArrayLoader):  # no iteration: the loader's position stays put
            return loader.inputs[:2], loader.targets[:2]
        batch = next(iter(loader))
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise TypeError(
                f"train_data must yield (inputs, targets) pairs, got {type(batch).__name__}"
            )
        return batch[0], batch[1]

    def _check_shapes(self) -> None:
        """Run one forward pass in eval mode so that shape errors surface before any step."""
        inputs, targets = self._first_batch()
        inputs, targets = self._to_device(inputs), self._to_device(targets)
        was_training = self.model.training
        self.module.eval()
        try:
            with torch.no_grad(), self._autocast():
                try:
                    outputs = self.module(inputs)
                except Exception as error:
                    raise ValueError(
                        "the model cannot take the training inputs of shape "
                        f"{tuple(inputs.shape)}: {error}"
                    ) from error
                try:
                    with warnings.catch_warnings():
                        # torch only warns when MSE-style losses broadcast mismatched shapes
                        warnings.filterwarnings(
                            "error", message=".*(size|shape).*", category=UserWarning
                        )
                        loss = self.loss_fn(outputs, targets)
                except Exception as error:
                    raise ValueError(
                        f"model outputs of shape {tuple(outputs.shape)} and targets of shape "
                        f"{tuple(targets.shape)} ({targets.dtype}) do not fit loss_fn: {error}"
                    ) from error
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError(
                    f"loss_fn must return a scalar tensor, got shape {getattr(loss, 'shape', loss)}"
                )
        finally:
            self.module.train(was_training)

    def _run(self, history: History, *, start_epoch: int, epochs: int) -> History:
        assert self.scheduler is not None
        self.history = history
        history.status = "running"
        self._smooth: dict[str, float] = {"average": 0.0, "best": math.inf, "count": 0}
        for callback in self.callbacks:
            callback.on_fit_start(self, history)
        if start_epoch == 0:
            torch.manual_seed(self.seed)  # dropout and friends start from the same state each fit
        last_good = TrainingSnapshot(self.module, self.optimizer, self.scaler, rng=False)
        try:
            for epoch in range(start_epoch, epochs):
                record = self._train_epoch(epoch, epochs, history)
                if history.status == "diverged":
                    last_good.restore_training_state()
                    self._warn_divergence(history)
                    break
                if self.val_loader is not None:
                    metrics = self.evaluate()
                    record |= {"val_loss": metrics["loss"]}
                    record |= {f"val_{k}": v for k, v in metrics.items() if k != "loss"}
                history.epochs.append(record)
                if self.rank == 0:
                    self._log_epoch(record, epochs)
                last_good = TrainingSnapshot(self.module, self.optimizer, self.scaler, rng=False)
                done = epoch + 1 == epochs
                if done:
                    history.status = "completed"
                payload = (
                    self._payload(history, epochs, epoch + 1) if self.out_dir is not None else None
                )
                if payload is not None:
                    self._save(CHECKPOINT, payload)
                    val_loss = record.get("val_loss", math.nan)
                    if math.isfinite(val_loss) and val_loss < self.best_val_loss:
                        self.best_val_loss = val_loss
                        payload["best_val_loss"] = val_loss
                        self._save(BEST, payload)
                    if self.rank == 0:
                        history.to_csv(self.out_dir / "history.csv")  # type: ignore[operator]
                for callback in self.callbacks:
                    callback.on_epoch_end(self, record)
            else:
                history.status = "completed"
        except KeyboardInterrupt:
            history.status = "interrupted"
            history.message = "interrupted; the last epoch checkpoint is intact"
            raise
        finally:
            for callback in self.callbacks:
                callback.on_fit_end(self, history)
            if self.out_dir is not None and self.rank == 0:
                (self.out_dir / "history.json").write_text(history.to_json())
        return history

    def _train_epoch(self, epoch: int, epochs: int, history: History) -> dict[str, float]:
        assert self.scheduler is not None
        model, optimizer, scheduler, scaler = (
            self.model,
            self.optimizer,
            self.scheduler,
            self.scaler,
        )
        loss_fn, accumulation = self.loss_fn, self.accumulation_steps
        scales = [group.get("lr_scale", 1.0) for group in optimizer.param_groups]
        fixed_momenta = (
            [get_momentum(g) for g in optimizer.param_groups]
            if scheduler.plan.momentum is None
            else None
        )
        has_momentum = [momentum_key(g) is not None for g in optimizer.param_groups]
        single = len(scales) == 1 and scales[0] == 1.0 and has_momentum[0]
        step_lrs, step_momenta = history.step_lrs, history.step_momenta
        step_callbacks = self._step_callbacks
        batches = len(self.train_loader)
        bar = _progress_bar(batches, f"epoch {epoch + 1}/{epochs}") if self.progress else None
        pending: list[torch.Tensor] = []
        micro_losses: list[torch.Tensor] = []
        first_step = len(history.step_losses)
        samples = epoch_steps = 0
        postfix_every = max(1, 20 // self.sync_every)
        start = time.perf_counter()
        model.train()
        loader = self.train_loader
        index = loader.batch_index if isinstance(loader, ArrayLoader) else 0
        # per-step work is kept to what the step needs: every microsecond shows on small models
        move = not (
            isinstance(loader, ArrayLoader)
            and loader.device == self.device
            and self.device.type == "cpu"
        )
        plain = (
            self.precision == "32" and self.world_size == 1 and scaler is None and accumulation == 1
        )
        for inputs, targets in loader:
            if move:
                inputs, targets = self._to_device(inputs), self._to_device(targets)
            index += 1
            samples += len(targets)
            if plain:
                loss = loss_fn(model(inputs), targets)
                loss.backward()  # type: ignore[no-untyped-call]
            else:
                stepping = index % accumulation == 0 or index == batches
                sync_context = (
                    model.no_sync()  # type: ignore[operator]
                    if self.world_size > 1 and not stepping
                    else contextlib.nullcontext()
                )
                with sync_context:
                    with self._autocast():
                        loss = loss_fn(model(inputs), targets)
                    scaled = loss / accumulation if accumulation > 1 else loss
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()  # type: ignore[no-untyped-call]
                if not stepping:
                    micro_losses.append(loss.detach())
                    continue
            if self.max_grad_norm is not None:
                if scaler is not None:
                    scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.max_grad_norm)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if micro_losses:
                micro_losses.append(loss.detach())
                step_loss = torch.stack(micro_losses).mean()
                micro_losses = []
            else:
                step_loss = loss.detach()
            lr, momentum = scheduler.last_lr, scheduler.last_momentum
            if single:  # the common case, without a list comprehension per step
                step_lrs.append([lr])
                step_momenta.append(fixed_momenta or [momentum])
            else:
                step_lrs.append([lr * s for s in scales])
                step_momenta.append(
                    fixed_momenta or [momentum if m else None for m in has_momentum]
                )
            if step_callbacks:
                for callback in step_callbacks:
                    callback.on_step_end(self, scheduler.step_count, step_loss)
            scheduler.step()
            epoch_steps += 1
            pending.append(step_loss)
            if len(pending) >= self.sync_every:
                if not self._flush(pending, history):
                    break
                pending = []
                if bar is not None:
                    bar.update(self.sync_every * accumulation)
                    if epoch_steps % postfix_every == 0:  # formatting costs more than the step
                        bar.set_postfix(
                            loss=f"{history.step_losses[-1]:.4f}", lr=f"{lr:.3g}", refresh=False
                        )
        if pending and history.status != "diverged":
            self._flush(pending, history)
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - start
        train_loss = math.fsum(history.step_losses[first_step:]) / max(1, epoch_steps)
        return {
            "epoch": float(epoch + 1),
            "train_loss": train_loss,
            "seconds": seconds,
            "samples_per_s": samples * self.world_size / seconds if seconds > 0 else math.nan,
            "lr": float(scheduler.last_lr),
        }

    def _flush(self, pending: list[torch.Tensor], history: History) -> bool:
        """Read pending losses from the device and check for divergence; False stops the epoch."""
        if self.world_size > 1:
            stacked = torch.stack(pending).double()
            torch.distributed.all_reduce(stacked)
            values = (stacked / self.world_size).tolist()
        elif len(pending) == 1 or self.device.type == "cpu":
            values = [loss.item() for loss in pending]  # no stacking: cheaper for a few values
        else:
            values = torch.stack(pending).tolist()  # one wait for the GPU instead of many
        for value in values:
            history.step_losses.append(value)
            if not self._still_good(value, history):
                return False
        return True

    def _still_good(self, value: float, history: History) -> bool:
        step = len(history.step_losses) - 1
        state = self._smooth
        lr = history.step_lrs[step][-1] if step < len(history.step_lrs) else math.nan
        if not math.isfinite(value):
            history.status = "diverged"
            history.message = self._divergence_message(step, lr, f"the loss became {value}")
            return False
        state["count"] += 1
        state["average"] = SMOOTHING * state["average"] + (1 - SMOOTHING) * value
        smoothed = state["average"] / (1 - SMOOTHING ** state["count"])
        if state["count"] > WARMUP_STEPS:
            state["best"] = min(state["best"], smoothed)
            if 0 < state["best"] < smoothed / self.diverge_factor:
                history.status = "diverged"
                history.message = self._divergence_message(
                    step,
                    lr,
                    f"the smoothed loss {smoothed:.3g} passed {self.diverge_factor:g}x "
                    f"its minimum {state['best']:.3g}",
                )
                return False
        return True

    def _divergence_message(self, step: int, lr: float, what: str) -> str:
        assert self.scheduler is not None
        peak = self.scheduler.plan.max_lr or lr
        text = f"max_lr {peak:.3g} diverged at step {step} (lr {lr:.3g}): {what}; "
        if self.last_range_test is not None and self.last_range_test.max_lr is not None:
            text += f"the range test suggested {self.last_range_test.max_lr:.3g}; "
        text += f"try a lower max_lr (e.g. {peak / 3:.3g}); the last good weights were restored"
        return text

    def _warn_divergence(self, history: History) -> None:
        if self.rank == 0:
            warnings.warn(history.message, RuntimeWarning, stacklevel=3)
            logger.warning(history.message)

    def _log_epoch(self, record: dict[str, float], epochs: int) -> None:
        if not self.progress and not logger.isEnabledFor(logging.INFO):
            return  # nobody reads it: skip the formatting (short epochs pay for it)
        parts = [f"epoch {int(record['epoch'])}/{epochs}", f"train_loss {record['train_loss']:.4f}"]
        parts += [f"{k} {v:.4f}" for k, v in record.items() if k.startswith("val_")]
        parts.append(f"{record['samples_per_s']:.0f} samples/s")
        message = ", ".join(parts)
        logger.info(message)
        if self.progress:
            print(message, file=sys.stderr)

    def _peak(self, max_lr: MaxLR) -> tuple[float, Any]:
        """The plan's peak LR and the per-group spec for the scheduler."""
        if isinstance(max_lr, (int, float)) and not isinstance(max_lr, bool):
            if not math.isfinite(max_lr) or max_lr <= 0:
                raise ValueError(f"max_lr must be a finite number > 0, got {max_lr!r}")
            return float(max_lr), float(max_lr)
        peaks = spread_max_lr(max_lr, len(self.param_groups))
        self._split_groups()
        return max(peaks), max_lr

    def _split_groups(self) -> None:
        """One optimizer group per splitter group (discriminative LRs), keeping the state."""
        if len(self.optimizer.param_groups) != len(self.param_groups):
            self.optimizer = regroup(
                self.optimizer, self._optimizer_spec, self.param_groups, self.weight_decay
            )


def _check_epochs(epochs: object) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")


def _check_weight_decay(value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {value!r}")


def _resolve_device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available")
    return resolved


def _resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16"
        return "32"
    return precision


def _use_progress(progress: bool | str) -> bool:
    if progress == "auto":
        return sys.stderr.isatty()
    if not isinstance(progress, bool):
        raise ValueError(f"progress must be 'auto', True or False, got {progress!r}")
    return progress


def _progress_bar(total: int, description: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, leave=False, mininterval=0.5, dynamic_ncols=True)
