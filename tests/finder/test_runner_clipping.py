"""The range test clips gradients as the run it is for: clipped updates tolerate higher LRs."""

import pytest
import torch
from torch import nn

import superconverge as sc
from superconverge.data.datasets import ArrayData


def _task():
    torch.manual_seed(0)
    x = torch.randn(512, 20)
    y = (x[:, :10].sum(1) > 0).long()
    return ArrayData(x, y), (lambda: nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 2)))


def _norms(optimizer):
    """The total gradient norm of each update `optimizer` makes from now on."""
    norms = []

    def record(opt, args, kwargs):
        grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

    optimizer.register_step_pre_hook(record)
    return norms


def test_a_clipped_sweep_clips_every_update_and_restores_the_model():
    data, make = _task()
    torch.manual_seed(1)
    model = make()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    norms = _norms(optimizer)
    kwargs = {"optimizer": optimizer, "batch_size": 32, "num_steps": 30}
    free = sc.lr_find(model, nn.functional.cross_entropy, data, **kwargs)
    unclipped, norms[:] = list(norms), []
    clipped = sc.lr_find(model, nn.functional.cross_entropy, data, max_grad_norm=0.05, **kwargs)
    assert min(unclipped) > 0.05  # the same sweep without clipping: larger updates
    assert len(norms) >= 10 and max(norms) == pytest.approx(0.05, rel=1e-4)
    assert clipped.settings["max_grad_norm"] == 0.05 and free.settings["max_grad_norm"] is None
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_the_trainers_range_test_clips_as_its_fit_does():
    data, make = _task()
    torch.manual_seed(1)
    trainer = sc.Trainer(make(), nn.functional.cross_entropy, data, batch_size=32,
                         max_grad_norm=0.05)  # fmt: skip
    norms = _norms(trainer.optimizer)
    assert trainer.lr_find(num_steps=20).settings["max_grad_norm"] == 0.05
    assert len(norms) >= 10 and max(norms) == pytest.approx(0.05, rel=1e-4)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "1"])
def test_a_bad_max_grad_norm_is_named(bad):
    data, make = _task()
    with pytest.raises((ValueError, TypeError), match=r"max_grad_norm"):
        sc.lr_find(make(), nn.functional.cross_entropy, data, max_grad_norm=bad)
