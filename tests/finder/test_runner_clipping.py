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


def test_a_clipped_sweep_reaches_higher_lrs_and_records_its_norm():
    data, make = _task()
    torch.manual_seed(1)
    model = make()
    before = [p.detach().clone() for p in model.parameters()]
    kwargs = {"batch_size": 32, "num_steps": 60}
    free = sc.lr_find(model, nn.functional.cross_entropy, data, **kwargs)
    clipped = sc.lr_find(model, nn.functional.cross_entropy, data, max_grad_norm=0.01, **kwargs)
    assert clipped.settings["max_grad_norm"] == 0.01 and free.settings["max_grad_norm"] is None
    # with every update's norm at most 0.01, the loss moves later: a higher lowest-loss LR
    assert clipped.suggestions["minimum"] > 3 * free.suggestions["minimum"]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_the_trainers_range_test_clips_as_its_fit_does():
    data, make = _task()
    torch.manual_seed(1)
    trainer = sc.Trainer(make(), nn.functional.cross_entropy, data, batch_size=32,
                         max_grad_norm=0.5)  # fmt: skip
    assert trainer.lr_find(num_steps=20).settings["max_grad_norm"] == 0.5


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "1"])
def test_a_bad_max_grad_norm_is_named(bad):
    data, make = _task()
    with pytest.raises((ValueError, TypeError), match=r"max_grad_norm"):
        sc.lr_find(make(), nn.functional.cross_entropy, data, max_grad_norm=bad)
