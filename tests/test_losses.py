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


def test_a_loss_name_where_a_callable_is_needed_says_which_callable(tmp_path):
    # a user's check: tune(..., loss_fn="cross_entropy") (the CLI takes names) failed as "model
    # outputs ... do not fit loss_fn: 'str' object is not callable", blaming the shapes
    import superconverge as sc
    from superconverge.data import load

    digits = load("digits")
    expected = (r"loss_fn must be callable, got 'cross_entropy' \(a name, as the CLI's --loss "
                r"takes it\): pass superconverge.losses.resolve_loss\('cross_entropy'\) or "
                r"torch.nn.functional.cross_entropy")  # fmt: skip
    model = torch.nn.Linear(64, 10)
    with pytest.raises(TypeError, match=expected):
        sc.tune(lambda: model, digits.train, digits.val, loss_fn="cross_entropy", epochs=1,
                out_dir=tmp_path / "t")  # fmt: skip
    assert not (tmp_path / "t").exists()
    with pytest.raises(TypeError, match=expected):
        sc.Trainer(model, "cross_entropy", digits.train)
    with pytest.raises(TypeError, match=expected):
        sc.lr_find(model, "cross_entropy", digits.train)
