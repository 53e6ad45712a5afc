import pytest
import torch
from torch import nn

from superconverge.pytorch.optimizers import build_optimizer, freeze_groups, optimizer_step


def _one_step(max_grad_norm=None, scaler_enabled=False):
    torch.manual_seed(0)
    model = nn.Linear(3, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    loss = (model(torch.ones(1, 3)) * 100).sum()  # gradient 100 per weight: norm 173.2
    scaler = torch.amp.GradScaler("cpu", enabled=scaler_enabled)
    before = model.weight.detach().clone()
    scaler.scale(loss).backward()
    optimizer_step(optimizer, scaler, model.parameters(), max_grad_norm)
    return model.weight.detach() - before, model


def test_a_plain_step_follows_the_gradient_and_clears_it():
    change, model = _one_step()
    assert change.tolist() == [[-100.0, -100.0, -100.0]] and model.weight.grad is None


def test_clipping_limits_the_gradient_norm():
    change, _ = _one_step(max_grad_norm=1.0)
    assert change.norm().item() == pytest.approx(1.0, rel=1e-5)


def test_an_enabled_scaler_unscales_before_clipping_and_stepping():
    change, _ = _one_step(max_grad_norm=1.0, scaler_enabled=True)
    assert change.norm().item() == pytest.approx(1.0, rel=1e-5)


def test_freeze_groups_keeps_batchnorm_trainable():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Linear(2, 1))
    groups = [list(child.parameters()) for child in model.children()]
    freeze_groups(model, groups, -1, train_bn=True)
    assert [p.requires_grad for g in groups for p in g] == [False, False, True, True, True, True]
    freeze_groups(model, groups, 0, train_bn=True)
    assert all(p.requires_grad for g in groups for p in g)
    with pytest.raises(ValueError, match=r"n must be in \[-3, 3\], got 4"):
        freeze_groups(model, groups, 4, train_bn=True)


def test_build_optimizer_rejects_a_callable_that_returns_no_optimizer():
    with pytest.raises(TypeError, match="optimizer callable must return"):
        build_optimizer(lambda groups: None, [nn.Parameter(torch.zeros(1))])


def test_a_callables_weight_decay_is_its_own_unless_one_is_given():
    # a user's check: tune compared weight decays on an optimizer callable that never saw them
    # (every candidate trained the same run) and reported one as chosen
    params = [nn.Parameter(torch.zeros(2))]

    def own(groups):
        return torch.optim.SGD(groups, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)

    assert build_optimizer(own, params).param_groups[0]["weight_decay"] == 5e-4  # left alone
    given = build_optimizer(own, params, weight_decay=0.1)
    assert given.param_groups[0]["weight_decay"] == 0.1 and given.defaults["weight_decay"] == 0.1
    assert build_optimizer(own, params, weight_decay=0.0).param_groups[0]["weight_decay"] == 0.0
    assert build_optimizer("adamw", params).param_groups[0]["weight_decay"] == 0.0  # names: 0


def test_a_callable_of_the_wrong_shape_is_named_before_it_is_called():
    with pytest.raises(
        TypeError, match=r"one argument, the param groups .* got <lambda>\(params, lr\)"
    ):
        build_optimizer(lambda params, lr: torch.optim.SGD(params, lr=lr), [])
    build_optimizer(
        lambda groups, lr=0.1: torch.optim.SGD(groups, lr=lr), [nn.Parameter(torch.zeros(1))]
    )


def test_an_optimizer_without_weight_decay_takes_none_and_is_named_when_one_is_asked():
    # a review's check: Trainer(optimizer=lambda g: Rprop(g), weight_decay=0.0) was refused
    params = [nn.Parameter(torch.zeros(2))]
    rprop = build_optimizer(lambda groups: torch.optim.Rprop(groups, lr=0.01), params, 0.0)
    assert "weight_decay" not in rprop.param_groups[0]
    with pytest.raises(TypeError, match="built Rprop, whose param groups have no weight_decay"):
        build_optimizer(lambda groups: torch.optim.Rprop(groups, lr=0.01), params, 0.1)


def test_an_optimizer_instance_is_refused_with_the_class_or_lambda_to_pass():
    # a PyTorch user's habit: the message was "must be a name or a callable, got AdamW (" and
    # the optimizer's multi-line repr, with no word of what to pass instead
    import superconverge as sc

    model = nn.Linear(2, 3)
    data = (torch.randn(16, 2), torch.randint(0, 3, (16,)))
    instance = torch.optim.AdamW(model.parameters(), lr=1e-3)
    expected = (
        r"optimizer must be a name or a callable of the param groups, got an instance of AdamW: .*"
        r"pass optimizer=torch\.optim\.AdamW or lambda groups: torch\.optim\.AdamW\(groups, \.\.\.\)"
    )
    with pytest.raises(TypeError, match=expected):
        sc.Trainer(model, nn.functional.cross_entropy, data, optimizer=instance, progress=False)
    with pytest.raises(TypeError, match=expected):
        sc.tune(lambda: nn.Linear(2, 3), data, data, epochs=1, optimizer=instance)
