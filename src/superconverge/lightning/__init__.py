"""PyTorch Lightning front end (``pip install superconverge[lightning]``): the `OneCycle`
callback runs the LR range test before fitting, then trains with 1cycle and cyclical momentum.

`HyperparamScheduler` is a torch ``LRScheduler`` too, so ``configure_optimizers`` may also
return it directly (``{"scheduler": s, "interval": "step"}``).
"""

from superconverge.lightning.callback import OneCycle

__all__ = ["OneCycle"]
