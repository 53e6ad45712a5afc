"""`WeightAverage`: the mean of the end of a fit's weights, kept where its validation loss is
lower, continued exactly by a resumed fit."""

import math

import pytest
import torch
from torch import nn

from superconverge.data import ArrayData
from superconverge.schedules import constant
from superconverge.training import Callback, Trainer, WeightAverage
from tests.training.test_callbacks import _InterruptAfter

LOSS = nn.functional.cross_entropy


def _data(seed, samples=64, shift=0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(samples, 4, generator=generator)
    return ArrayData(inputs, (inputs[:, 0] > 0).long() + shift * (torch.arange(samples) % 2))


def _trainer(callbacks, model=None, val=True, val_samples=64, **kwargs):
    torch.manual_seed(0)
    val_data = _data(1, val_samples) if val else None
    return Trainer(model or nn.Linear(4, 2), LOSS, _data(0), val_data,
                   batch_size=8, callbacks=callbacks, progress=False, **kwargs)  # fmt: skip


class StepWeights(Callback):
    """The parameters after every optimizer step, by step; a restarted epoch replaces its own."""

    def __init__(self):
        self.by_step = {}

    def after_batch(self, fit):
        self.by_step[fit.step] = [p.detach().clone() for p in fit.trainer.module.parameters()]


def _mean(weights):
    return [torch.stack(tensors).mean(0) for tensors in zip(*weights, strict=True)]


def _params(trainer):
    return [p.detach() for p in trainer.module.parameters()]


def test_the_average_is_the_mean_of_the_last_fractions_weights():
    steps, average = StepWeights(), WeightAverage(0.25, keep="always")
    trainer = _trainer([steps, average])
    trainer.fit(4, constant(0.5))  # 8 steps an epoch: the last 8 of 32 averaged
    expected = _mean([steps.by_step[s] for s in range(24, 32)])
    for got, want in zip(_params(trainer), expected, strict=True):
        torch.testing.assert_close(got, want)
    assert average.outcome == {"steps": 8, "kept": "average"}
    assert (
        trainer.history.notes[-1]
        == "WeightAverage: the model holds the mean of the last 8 steps' weights"
    )


def test_model_pt_holds_the_average_and_checkpoint_pt_the_trained_weights(tmp_path):
    steps, average = StepWeights(), WeightAverage(0.25, keep="always")
    trainer = _trainer([steps, average], out_dir=tmp_path)
    trainer.fit(4, constant(0.5))
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    expected = _mean([steps.by_step[s] for s in range(24, 32)])
    torch.testing.assert_close(list(saved.values()), expected)
    trained = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(t, s) for t, s in zip(trained.values(), steps.by_step[31], strict=True))


def test_better_keeps_the_average_only_where_its_gain_is_beyond_the_noise():
    # a high constant LR: the last weights bounce around, their mean does not (SWA's case)
    steps, average = StepWeights(), WeightAverage(0.5)
    trainer = _trainer([steps, average], val_samples=512)
    trainer.fit(4, constant(3.0))
    outcome = average.outcome
    assert outcome["kept"] == "average" and outcome["gain"] > outcome["noise"] > 0
    assert outcome["gain"] == pytest.approx(outcome["val_loss_last"] - outcome["val_loss_average"])
    assert trainer.evaluate()["loss"] == pytest.approx(outcome["val_loss_average"])
    assert outcome["val_metrics"]["loss"] == outcome["val_loss_average"]
    assert "holds the mean of the last 16 steps' weights" in trainer.history.notes[-1]
    # the same on 64 validation samples: a lower loss for the mean, but within the noise
    average = WeightAverage(0.5)
    _trainer([average]).fit(4, constant(3.0))
    outcome = average.outcome
    assert outcome["kept"] == "last" and 0 < outcome["gain"] < outcome["noise"]
    # a small LR from the start, all of it averaged: the model is still learning, the last wins
    steps, average = StepWeights(), WeightAverage(1.0)
    trainer = _trainer([steps, average])
    trainer.fit(4, constant(0.05))
    outcome = average.outcome
    assert outcome["kept"] == "last" and outcome["val_loss_last"] <= outcome["val_loss_average"]
    for got, want in zip(_params(trainer), steps.by_step[31], strict=True):
        assert torch.equal(got, want)
    assert (
        trainer.evaluate()["loss"]
        == outcome["val_loss_last"]
        == trainer.history.epochs[-1]["val_loss"]
    )
    assert "keeps its last weights, not the mean of the last 32" in trainer.history.notes[-1]


def test_batchnorm_statistics_are_recomputed_at_the_average():
    model = nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 2))
    average = WeightAverage(0.5, keep="always", bn_batches=100)  # more than an epoch's 8
    trainer = _trainer([average], model=model)
    trainer.fit(2, constant(0.5))
    layer = model[0]
    # a cumulative mean over one epoch's batches of 8 (equal sizes): the training inputs' mean
    torch.testing.assert_close(layer.running_mean, _data(0).inputs.mean(0))
    assert layer.momentum == 0.1  # given back


class NaNAtStep(Callback):
    """Makes the weights NaN after step `step` once: the loss diverges, the epoch restarts."""

    def __init__(self, step):
        self.step, self.done = step, False

    def after_batch(self, fit):
        if fit.step == self.step and not self.done:
            self.done = True
            with torch.no_grad():
                next(fit.trainer.module.parameters()).fill_(math.nan)


def test_an_epoch_restarted_after_a_divergence_leaves_nothing_in_the_average():
    steps, average = StepWeights(), WeightAverage(0.5, keep="always")
    trainer = _trainer([NaNAtStep(26), steps, average])
    history = trainer.fit_one_cycle(4, 0.5, backoff=1)  # epoch 4 (steps 24-31) runs twice
    assert history.status == "completed" and any("diverged" in n for n in history.notes)
    expected = _mean([steps.by_step[s] for s in range(16, 32)])  # the second run's steps 24-31
    for got, want in zip(_params(trainer), expected, strict=True):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want)
    assert average.outcome["steps"] == 16


def test_the_steps_of_an_in_run_search_are_never_averaged():
    average = WeightAverage(1.0, keep="always")
    trainer = _trainer([average])
    history = trainer.fit_one_cycle(30, "search")  # 240 steps
    edge = history.lr_search
    assert edge is not None
    assert average.outcome["steps"] == 240 - edge["step"]  # the edge's step and those after it


def test_a_fit_resumed_inside_the_average_ends_as_the_uninterrupted_one(tmp_path):
    full_average = WeightAverage(0.5)
    full = _trainer([full_average], out_dir=tmp_path / "full")
    full.fit_one_cycle(6, 0.5)
    with pytest.raises(KeyboardInterrupt):  # after epoch 5: 8 of the 24 averaged steps done
        _trainer([WeightAverage(0.5), _InterruptAfter(5)], out_dir=tmp_path / "cut").fit_one_cycle(
            6, 0.5
        )
    saved = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert saved["callbacks"]["weight_average"]["count"] == 16
    torch.manual_seed(0)
    model, resumed_average = nn.Linear(4, 2), WeightAverage(0.5)
    history = Trainer.resume(tmp_path / "cut", model, LOSS, _data(0), _data(1), batch_size=8,
                             callbacks=[resumed_average], progress=False)  # fmt: skip
    assert history.status == "completed"
    assert resumed_average.outcome == full_average.outcome
    for got, want in zip(model.parameters(), full.module.parameters(), strict=True):
        assert torch.equal(got, want)


def test_the_gain_and_its_noise_are_a_paired_comparison():
    from superconverge.training.averaging import _paired_gain

    differences = torch.tensor([0.1, 0.3, 0.2, 0.2], dtype=torch.float64)
    gain, noise = _paired_gain(differences)
    assert gain == pytest.approx(0.2)
    assert noise == pytest.approx(2 * differences.std().item() / 2)  # 2 x std / sqrt(4)
    assert _paired_gain(torch.tensor([0.5], dtype=torch.float64)) == (0.5, math.inf)


def _batch_loss(outputs, targets):
    """A loss that reads whole batches only (as tune_module's training_step loss does)."""
    if len(targets) < 2:
        raise ValueError("a batch of one")
    return LOSS(outputs, targets)


def test_a_loss_per_batch_is_compared_batch_by_batch_not_as_samples_without_noise():
    # a user's check with tune_module: each sample got its batch's mean loss, so with one
    # validation batch every difference was equal and the noise 0 ("twice its standard error
    # 0"): any gain replaced the last weights
    from superconverge.training.averaging import _paired_gain

    one_batch = WeightAverage(0.5)
    torch.manual_seed(0)
    trainer = Trainer(nn.Linear(4, 2), _batch_loss, _data(0), _data(1), batch_size=8,
                      callbacks=[one_batch], progress=False)  # fmt: skip
    trainer.fit(4, constant(3.0))  # 64 validation samples: one batch (of up to 256)
    assert one_batch.outcome["noise"] == math.inf and one_batch.outcome["kept"] == "last"
    # and the note says why, not "twice its standard error inf" (a user's check, tune_module)
    note = trainer.history.notes[-1]
    assert "inf" not in note and note.endswith(
        "the validation data is one batch, which gives no estimate of the noise, so the mean "
        "cannot be shown to be better and the last weights stay; give at least two validation "
        "batches of data to compare them"
    )
    # one validation sample: said as such (a reviewer's check: "one batch" was said)
    alone = WeightAverage(0.5)
    torch.manual_seed(0)
    trainer = Trainer(nn.Linear(4, 2), LOSS, _data(0), _data(1, samples=1), batch_size=8,
                      callbacks=[alone], progress=False)  # fmt: skip
    trainer.fit(4, constant(3.0))
    assert alone.outcome["noise"] == math.inf and trainer.history.notes[-1].endswith(
        "the validation data is one sample, which gives no estimate of the noise, so the mean "
        "cannot be shown to be better and the last weights stay; give at least two validation "
        "samples of data to compare them"
    )
    # batch means weighed by their samples; the error is over the batches measured
    differences = torch.tensor([0.1, 0.3], dtype=torch.float64)
    gain, noise = _paired_gain(differences, weights=torch.tensor([8.0, 24.0]))
    assert gain == pytest.approx((0.8 + 7.2) / 32)
    spread = (8 * (0.1 - gain) ** 2 + 24 * (0.3 - gain) ** 2) / 32 * 2  # x units / (units - 1)
    assert noise == pytest.approx(2 * math.sqrt(spread / 2))


def test_the_state_saves_and_restores():
    average = WeightAverage(0.5)
    _trainer([average]).fit(4, constant(0.5))
    state = average.state_dict()
    again = WeightAverage(0.5)
    again.load_state_dict(state)
    assert again.state_dict()["count"] == state["count"] == 16
    for a, b in zip(again.state_dict()["mean"], state["mean"], strict=True):
        assert torch.equal(a, b)


def test_a_resume_without_a_saved_average_warns_and_averages_from_there(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _trainer([_InterruptAfter(3)], out_dir=tmp_path / "cut").fit_one_cycle(4, 0.5)
    torch.manual_seed(0)
    average = WeightAverage(0.5, keep="always")
    with pytest.warns(RuntimeWarning, match="the checkpoint holds no average"):
        Trainer.resume(tmp_path / "cut", nn.Linear(4, 2), LOSS, _data(0), _data(1), batch_size=8,
                       callbacks=[average], progress=False)  # fmt: skip
    assert average.outcome["steps"] == 8


def test_a_resume_not_given_the_average_says_its_state_is_dropped(tmp_path):
    # a user's check: Trainer.resume without callbacks= ended with other weights, unsaid
    with pytest.raises(KeyboardInterrupt):
        _trainer([WeightAverage(0.5), _InterruptAfter(3)], out_dir=tmp_path / "cut").fit_one_cycle(
            4, 0.5
        )
    with pytest.warns(RuntimeWarning, match=r"holds the state of WeightAverage \('weight_average'\)"):
        Trainer.resume(tmp_path / "cut", nn.Linear(4, 2), LOSS, _data(0), _data(1), batch_size=8,
                       progress=False)  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"fraction": 0}, r"fraction must be a number in \(0, 1\], got 0"),
     ({"fraction": 1.5}, r"fraction must be a number in \(0, 1\], got 1.5"),
     ({"fraction": "half"}, r"fraction must be a number in \(0, 1\], got 'half'"),
     ({"fraction": True}, r"fraction must be a number in \(0, 1\], got True"),
     ({"keep": "best"}, r"keep must be one of 'better', 'always', got 'best'"),
     ({"bn_batches": 0}, r"bn_batches must be an integer >= 1, got 0")],
)  # fmt: skip
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WeightAverage(**kwargs)


def test_better_without_validation_data_is_named_before_training():
    trainer = _trainer([WeightAverage()], val=False)
    with pytest.raises(ValueError, match=r"keep=.better.*give the trainer val_data"):
        trainer.fit(1, constant(0.1))
    assert trainer.history.epochs == []
