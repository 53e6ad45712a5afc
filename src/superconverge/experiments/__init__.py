"""Reproductions of published comparisons: `superconverge reproduce NAME`."""

EXPERIMENTS = {
    "mnist-clr": "CLR vs Adam vs SGD on MNIST (the published Keras comparison), plus 1cycle and the recipe",
    "cifar10-superconvergence": "one LR cycle vs piecewise-constant, constant and Adam on the CIFAR-10 archive, plus the recipe",
}
MODULES = {
    "mnist-clr": "superconverge.experiments.mnist_clr",
    "cifar10-superconvergence": "superconverge.experiments.cifar_superconvergence",
}

__all__ = ["EXPERIMENTS", "MODULES"]
