"""PyTorch Lightning front end (``pip install superconverge[lightning]``): the `OneCycle`
callback runs the LR range test before fitting, then trains with 1cycle and cyclical momentum;
`tune_module` runs the whole recipe over a ``LightningModule`` (its ``training_step`` is the loss).

`HyperparamScheduler` is a torch ``LRScheduler`` too, so ``configure_optimizers`` may also
return it directly (``{"scheduler": s, "interval": "step"}``).
"""

try:  # one line naming the extra, as TensorBoardLogger, MLflowLogger and Keras say theirs
    import lightning.pytorch  # noqa: F401
except ModuleNotFoundError as error:
    if (error.name or "").partition(".")[0] != "lightning":
        raise
    raise ImportError(
        "superconverge.lightning needs Lightning: pip install 'superconverge[lightning]'"
    ) from error

from superconverge.lightning.callback import OneCycle
from superconverge.lightning.recipe import tune_module

__all__ = ["OneCycle", "tune_module"]
