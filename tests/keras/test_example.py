"""The Keras example script runs end to end (on tiny MNIST files of the real IDX format)."""

import importlib.util
from pathlib import Path

from tests.data.conftest import make_mnist

EXAMPLE = Path(__file__).parents[2] / "examples" / "keras_mnist_clr.py"


def test_example_prints_the_three_accuracies(tmp_path, capsys):
    make_mnist(tmp_path / "mnist", train=96, test=40)
    spec = importlib.util.spec_from_file_location("keras_mnist_clr", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    accuracies = module.main(["--data-dir", str(tmp_path / "mnist"), "--scaling", "unit"])
    assert set(accuracies) == {"CyclicSGD", "Adam", "SGD"}
    assert all(0.0 <= value <= 1.0 for value in accuracies.values())
    printed = capsys.readouterr().out
    assert "96 training, 40 test images" in printed
    assert "CyclicSGD: test accuracy" in printed and "published 0.9664" in printed
    assert module.cnn().count_params() == 40_558
