"""PyTorch Lightning front end (``pip install superconverge[lightning]``): the `OneCycle`
callback runs the LR range test before fitting, then trains with 1cycle and cyclical momentum;
`tune_module` runs the whole recipe over a ``LightningModule`` (its ``training_step`` is the loss).

`HyperparamScheduler` is a torch ``LRScheduler`` too, so ``configure_optimizers`` may also
return it directly (``{"scheduler": s, "interval": "step"}``).
"""

from superconverge._checks import import_extra

import_extra("lightning.pytorch", "superconverge.lightning", "Lightning", "lightning")

from superconverge.lightning.callback import OneCycle  # noqa: E402 - after the check
from superconverge.lightning.recipe import tune_module  # noqa: E402

__all__ = ["OneCycle", "tune_module"]
