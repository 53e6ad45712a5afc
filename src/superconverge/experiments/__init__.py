"""Reproductions of published comparisons: `superconverge reproduce NAME`."""

EXPERIMENTS = {
    "mnist-clr": "CLR vs Adam vs SGD on MNIST (the published Keras comparison), plus 1cycle and the recipe",
}

__all__ = ["EXPERIMENTS"]
