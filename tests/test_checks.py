"""NumPy scalars are numbers at every entry point, as torch takes them, and what is saved from
them stays JSON and ``weights_only`` loadable."""

import collections
import json

import numpy as np
import pytest
import torch
from torch import nn

import superconverge as sc
from superconverge._checks import check_count, check_number, plain
from superconverge.training import EarlyStopping

LOSS = nn.functional.cross_entropy


def _blobs(n, seed):
    generator = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 3, (n,), generator=generator)
    centres = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]])
    inputs = centres[targets] + torch.randn(n, 2, generator=generator)
    return torch.utils.data.TensorDataset(inputs, targets)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))


def test_plain_makes_numpy_scalars_python_numbers_and_leaves_the_rest():
    assert type(plain(np.int64(32))) is int and plain(np.int64(32)) == 32
    assert type(plain(np.float32(0.5))) is float and plain(np.float32(0.5)) == 0.5
    assert type(plain(np.float64(0.1))) is float  # a float subclass, made plain for the reprs
    assert plain((np.float32(0.5), 0.25)) == (0.5, 0.25)
    assert [type(v) for v in plain([np.float32(0.5), np.int64(2)])] == [float, int]
    assert plain(slice(np.float32(0.5), np.float32(1.0))) == slice(0.5, 1.0)
    moms = collections.namedtuple("moms", "high low")
    given = moms(0.95, 0.85)
    assert plain(given) is given  # nothing to convert: left as it is
    assert plain(moms(np.float32(0.5), 0.25)) == moms(0.5, 0.25)
    tensor, flag = torch.tensor(1.0), np.bool_(True)
    assert plain(tensor) is tensor and plain(flag) is flag and plain(True) is True
    assert check_count("steps", np.int64(3)) == 3 and check_number("lr", np.float32(0.5)) == 0.5
    with pytest.raises(TypeError, match=r"steps must be an integer, got np\.float32\(3\.0\)"):
        check_count("steps", np.float32(3))
    with pytest.raises(ValueError, match="lr must be a finite number"):
        check_number("lr", np.float32("nan"))


@pytest.mark.parametrize(
    "build",
    [
        lambda n, f: sc.one_cycle(n(100), max_lr=f(0.1), momentum=(f(0.95), f(0.85))),
        lambda n, f: sc.fastai_one_cycle(n(100), f(0.1), warmup_fraction=f(0.25)),
        lambda n, f: sc.smith_one_cycle(n(100), f(0.1), min_lr=f(0.01)),
        lambda n, f: sc.cyclic(f(0.01), f(0.1), n(10), gamma=f(1.0), total_steps=n(100)),
        lambda n, f: sc.piecewise_constant([f(0.1), f(0.01)], boundaries=[n(50)]),
        lambda n, f: sc.constant(f(0.1), momentum=f(0.9), total_steps=n(100)),
    ],
)
def test_schedules_take_numpy_scalars_and_equal_the_python_numbers_plan(build):
    numpy_plan = build(np.int64, np.float64)
    assert numpy_plan == build(int, float)
    assert json.loads(numpy_plan.to_json()) == json.loads(build(int, float).to_json())
    assert sc.Plan.from_json(build(np.int32, np.float32).to_json()).lr(3) > 0


def test_lr_find_trainer_and_scheduler_take_numpy_scalars(tmp_path):
    data = _blobs(96, 0)
    result = sc.lr_find(_model(), LOSS, data, batch_size=np.int64(16), start_lr=np.float32(1e-4),
                        end_lr=np.float64(1.0), num_steps=np.int64(20))  # fmt: skip
    assert len(result.lrs) == 20 and result.lrs[0] == pytest.approx(1e-4)
    json.loads(result.to_json())

    trainer = sc.Trainer(_model(), LOSS, data, _blobs(32, 1), batch_size=np.int64(16),
                         weight_decay=np.float32(1e-4), max_grad_norm=np.float64(5.0),
                         callbacks=[EarlyStopping(patience=np.int64(2))], out_dir=tmp_path,
                         progress=False)  # fmt: skip
    history = trainer.fit_one_cycle(np.int64(2), (np.float32(0.01), np.float32(0.1)),
                                    momentum=(np.float64(0.95), np.float32(0.85)))  # fmt: skip
    assert history.status == "completed" and history.steps == 12
    json.loads((tmp_path / "history.json").read_text())  # no numpy scalar in what is saved
    payload = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert payload is not None

    optimizer = torch.optim.SGD(_model().parameters(), lr=0.1, momentum=0.9)
    scheduler = sc.HyperparamScheduler(optimizer, sc.one_cycle(10, 0.1), max_lr=np.float32(0.2))
    assert scheduler.get_last_lr() == pytest.approx([0.2 / 25])


@pytest.mark.slow
def test_tune_takes_numpy_scalars_and_saves_python_numbers(tmp_path):
    plan = sc.tune(_model, _blobs(192, 0), _blobs(64, 1), epochs=np.int64(2),
                   batch_size=np.int64(32), optimizer="sgd", budget=np.float32(0.5),
                   weight_decays=[np.float64(1e-4)], momentum=(np.float32(0.95), np.float32(0.85)),
                   out_dir=tmp_path)  # fmt: skip
    # 2 epochs asked for + 1 from the budget's half a run (the in-run search lengthens the run)
    assert plan.batch_size == 32 and type(plan.batch_size) is int and plan.epochs == 3
    assert type(plan.epochs) is int
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["batch_size"] == 32 and saved["momentum"] == pytest.approx([0.95, 0.85])
