import pytest
import torch

from superconverge.losses import LOSSES, loss_name, resolve_loss


def test_names_resolve_to_torch_losses_and_back():
    for name, fn in LOSSES.items():
        assert resolve_loss(name) is fn and loss_name(fn) == name
    own = lambda outputs, targets: (outputs - targets).abs().max()  # noqa: E731
    assert resolve_loss(own) is own and loss_name(own) == "custom"  # a plan cannot hold it
    assert float(resolve_loss("mse")(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0]))) == 2.5


def test_bad_losses_are_named():
    with pytest.raises(ValueError, match="loss must be one of cross_entropy, mse"):
        resolve_loss("hinge")
    with pytest.raises(TypeError, match="loss_fn must be callable, got 3"):
        resolve_loss(3)
