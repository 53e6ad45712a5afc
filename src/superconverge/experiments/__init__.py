"""Reproductions of published comparisons: `superconverge reproduce NAME`."""

EXPERIMENTS = {
    "mnist-clr": "CLR vs Adam vs SGD on MNIST (the published Keras comparison), plus 1cycle and the recipe",
    "cifar10-superconvergence": "one LR cycle vs piecewise-constant, constant and Adam on the CIFAR-10 archive, plus the recipe",
    "cifar10-full": "the same contenders on the full CIFAR-10 as published: 40k train / 10k val / 10k test, batch 32",
    "cifar10-data-size": "one LR cycle vs piecewise-constant with 4x its updates (8x on a GPU) on 10k-50k training images, seeds' mean and sd (Smith & Topin, Table 1)",
}
MODULES = {
    "mnist-clr": "superconverge.experiments.mnist_clr",
    "cifar10-superconvergence": "superconverge.experiments.cifar_superconvergence",
    "cifar10-full": "superconverge.experiments.cifar_full",
    "cifar10-data-size": "superconverge.experiments.cifar_data_size",
}

__all__ = ["EXPERIMENTS", "MODULES"]
