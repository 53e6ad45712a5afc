"""Hugging Face Transformers front end (``pip install superconverge[huggingface]``).

`lr_find` runs the range test on a ``PreTrainedModel`` with dict batches and the model's own
loss; `one_cycle_scheduler` is a ``Trainer.create_scheduler``-compatible 1cycle (LR and β1);
`OneCycleTrainer` is a ``Trainer`` that uses it, running the range test first when no max_lr
is given. `OneCycleCallback` gives a plain ``Trainer`` the same 1cycle (LR and β1) as a
callback. `HyperparamScheduler` is a torch ``LRScheduler``, so
``Trainer(optimizers=(optimizer, HyperparamScheduler(optimizer, plan)))`` works as well.
"""

try:  # one line naming the extra, as TensorBoardLogger, MLflowLogger and Keras say theirs
    import transformers  # noqa: F401
except ModuleNotFoundError as error:
    if (error.name or "").partition(".")[0] != "transformers":
        raise
    raise ImportError(
        "superconverge.huggingface needs Transformers: pip install 'superconverge[huggingface]'"
    ) from error

from superconverge.huggingface.callback import OneCycleCallback
from superconverge.huggingface.trainer import (
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
