"""Hugging Face Transformers front end (``pip install superconverge[huggingface]``).

`lr_find` runs the range test on a ``PreTrainedModel`` with dict batches and the model's own
loss; `one_cycle_scheduler` is a ``Trainer.create_scheduler``-compatible 1cycle (LR and β1);
`OneCycleTrainer` is a ``Trainer`` that uses it, running the range test first when no max_lr
is given. `OneCycleCallback` gives a plain ``Trainer`` the same 1cycle (LR and β1) as a
callback. `HyperparamScheduler` is a torch ``LRScheduler``, so
``Trainer(optimizers=(optimizer, HyperparamScheduler(optimizer, plan)))`` works as well.
"""

from superconverge._checks import import_extra

import_extra("transformers", "superconverge.huggingface", "Transformers", "huggingface")

from superconverge.huggingface.callback import OneCycleCallback  # noqa: E402 - after the check
from superconverge.huggingface.trainer import (  # noqa: E402
    FINE_TUNING_DIVISOR,
    OneCycleTrainer,
    lr_find,
    one_cycle_scheduler,
)

__all__ = [
    "FINE_TUNING_DIVISOR",
    "OneCycleCallback",
    "OneCycleTrainer",
    "lr_find",
    "one_cycle_scheduler",
]
