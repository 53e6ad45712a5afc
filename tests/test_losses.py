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


def test_a_class_where_an_instance_is_needed_says_the_call_to_make():
    # loss_fn=nn.CrossEntropyLoss (the class, callable too) failed as "model outputs ... do not
    # fit loss_fn: Boolean value of Tensor with more than one value is ambiguous"; model=nn.Linear
    # as "model must be a torch.nn.Module, got type"
    import superconverge as sc

    data = (torch.randn(16, 4), torch.arange(16) % 3)
    loss = r"loss_fn must be a loss, got the class CrossEntropyLoss: CrossEntropyLoss\(\)"
    with pytest.raises(TypeError, match=loss):
        sc.Trainer(torch.nn.Linear(4, 3), torch.nn.CrossEntropyLoss, data, progress=False)
    with pytest.raises(TypeError, match=loss):
        sc.lr_find(torch.nn.Linear(4, 3), torch.nn.CrossEntropyLoss, data)
    with pytest.raises(TypeError, match=loss):
        sc.tune(lambda: torch.nn.Linear(4, 3), data, data, epochs=1,
                loss_fn=torch.nn.CrossEntropyLoss)  # fmt: skip
    model = r"model must be a torch.nn.Module, got the class Linear: Linear\(\.\.\.\)"
    with pytest.raises(TypeError, match=model):
        sc.Trainer(torch.nn.Linear, torch.nn.functional.cross_entropy, data, progress=False)
    with pytest.raises(TypeError, match=model):
        sc.lr_find(torch.nn.Linear, torch.nn.functional.cross_entropy, data)
