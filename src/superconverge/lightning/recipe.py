"""`tune_module`: the whole recipe (`superconverge.tune`) over a ``LightningModule``.

The module's own ``training_step`` is the loss: the final run (and, searching by short runs,
every range test and short run) calls it on a batch (its ``self.log`` calls are silenced), so a
module written for Lightning needs no separate model and loss function. At `tune`'s default the
LR is searched inside the final run (AdamW at weight decay 0.1, or the optimizer given); with
``RecipeSettings(lr_search="short_runs")`` the recipe chooses the optimizer (SGD or AdamW), the
LR bounds, weight decay and momentum by short runs. The module's ``configure_optimizers`` is
not called. The validation loss is ``training_step``'s loss on the validation data in eval
mode, without gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from superconverge.batches import ModelCannotRunHere
from superconverge.lightning.callback import _loss_of, _NoLogging, training_step
from superconverge.pytorch.snapshot import kept_global_rng
from superconverge.tuning.plan import TunePlan
from superconverge.tuning.recipe import check_model_fn, tune


class StepLoss(nn.Module):
    """A ``LightningModule`` as a model whose output is its ``training_step`` loss."""

    def __init__(self, module: pl.LightningModule) -> None:
        super().__init__()
        self.module = module

    def forward(self, batch: Any) -> torch.Tensor:
        with _NoLogging(self.module):
            try:
                output = training_step(self.module, batch, 0)
                if output is None:
                    raise ValueError(
                        f"{type(self.module).__name__}.training_step returned None (it skipped "
                        "the batch); tune_module reads its loss on every batch it is given"
                    )
                return _loss_of(output)
            except RuntimeError as error:
                if "is not attached to a `Trainer`" not in str(error):
                    raise
                name = type(self.module).__name__
                raise ModelCannotRunHere(
                    f"{name}.training_step needs Lightning's Trainer ({error}), and tune_module "
                    "runs it without one: it must compute and return the loss from the batch "
                    "alone (automatic optimization: no self.optimizers(), self.trainer or "
                    "manual_backward); train such a module in a Trainer with the OneCycle "
                    "callback instead"
                ) from error


def _first_tensor(batch: Any) -> torch.Tensor:
    """The batch's first tensor: its rows count the samples."""
    if isinstance(batch, torch.Tensor):
        return batch
    values = batch.values() if isinstance(batch, Mapping) else batch
    if isinstance(values, (tuple, list)) or isinstance(batch, Mapping):
        for value in values:
            if isinstance(value, torch.Tensor):
                return value
            if isinstance(value, (tuple, list, Mapping)):
                return _first_tensor(value)
    raise TypeError(f"a batch holds no tensor to count its samples, got {type(batch).__name__}")


def whole_batch(batch: Any) -> tuple[dict[str, Any], torch.Tensor]:
    """The batch hook of `tune_module`: the whole batch goes to ``training_step``; its first
    tensor stands in for the targets (it only counts the samples)."""
    return {"batch": batch}, _first_tensor(batch)


def step_loss(outputs: torch.Tensor, targets: Any) -> torch.Tensor:
    """The loss function of `tune_module`: the model's output is already the loss."""
    return outputs


def _check_module(module: Any) -> None:
    """What `module_fn` built: a LightningModule with a ``training_step`` of its own (a plain
    module, or one without it, was blamed on the data: "the model cannot take the training
    inputs (train_data)", "training_step returned None (it skipped the batch)")."""
    if not isinstance(module, pl.LightningModule):
        raise TypeError(
            f"module_fn must return a LightningModule (whose training_step returns the loss), "
            f"got {type(module).__name__}; for a plain torch module use superconverge.tune "
            "with its loss_fn"
        )
    if type(module).training_step is pl.LightningModule.training_step:
        raise TypeError(
            f"module_fn must return a LightningModule with a training_step that returns the "
            f"loss; {type(module).__name__} has none of its own"
        )


def tune_module(
    module_fn: Callable[[], pl.LightningModule],
    train_data: Any,
    val_data: Any,
    *,
    epochs: int,
    **options: Any,
) -> TunePlan:
    """`superconverge.tune` with a ``LightningModule``'s ``training_step`` as the loss.

    Args:
        module_fn: builds a fresh module (each short run starts from one).
        train_data, val_data: what `tune` takes: ``Dataset``s (the recipe chooses the batch
            size), DataLoaders (their own batch size) or loader factories; batches are whatever
            ``training_step`` expects.
        epochs: as `tune`'s (at its default the final run trains more: the budget's samples).
        options: `tune`'s other keyword arguments (``optimizer``, ``budget``, ``out_dir``,
            ``test_data``, ``seed``, ...); ``loss_fn``, ``batch_fn`` and ``metrics`` are set
            here (test results hold the loss only).

    Returns:
        The `TunePlan`; ``plan.trainer.model.module`` is the trained ``LightningModule``. To
        train it again inside Lightning with the chosen values: the plan's optimizer and weight
        decay in ``configure_optimizers`` and ``OneCycle(max_lr=plan.max_lr,
        min_lr=plan.min_lr, momentum=plan.momentum)``; or, as `tune`'s default final run did
        (the LR searched in its rise), ``OneCycle("search")``.
    """
    taken = sorted({"loss_fn", "batch_fn", "metrics"} & set(options))
    if taken:
        raise TypeError(f"tune_module sets {', '.join(taken)} itself (training_step is the loss)")
    check_model_fn(module_fn, "module_fn", "LightningModule")  # each run needs its own
    with kept_global_rng():  # building it draws from torch's generator: the caller's stays
        _check_module(module_fn())

    def model_fn() -> StepLoss:
        return StepLoss(module_fn())

    return tune(
        model_fn,
        train_data,
        val_data,
        epochs=epochs,
        loss_fn=step_loss,
        batch_fn=whole_batch,
        metrics={},
        **options,
    )
