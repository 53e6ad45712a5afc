"""Validation and test data without len() (issue 14): a finite stream is read to its end at each
evaluation, an endless one reads the batches declared (`val_steps`, `test_steps`, `steps`), in
the Trainer, the range test's validation and `tune`; bad input is named before training where
it can be."""

import itertools

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

import superconverge as sc
from superconverge.data import ArrayData
from superconverge.data.sources import as_source
from superconverge.training import Trainer
from superconverge.tuning import RecipeSettings

# the final run at the epochs asked for (tune lengthens it by the budget by default)
EXACT = RecipeSettings(extend_final_run=False)

FEATURES, CLASSES = 6, 3


def _arrays(count, seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(count, FEATURES, generator=generator)
    targets = (inputs @ torch.randn(FEATURES, CLASSES, generator=generator)).argmax(1)
    return ArrayData(inputs, targets)


class Samples(IterableDataset):
    """The samples of an ArrayData, once (finite) or over and over (endless); no len()."""

    def __init__(self, data, endless=False):
        self.data, self.endless, self.passes = data, endless, 0

    def __iter__(self):
        self.passes += 1
        while True:
            yield from zip(self.data.inputs, self.data.targets, strict=True)
            if not self.endless:
                return


def _batches(data, size):
    """A generator of `size`-sample batches of `data`, read once."""
    for start in range(0, len(data), size):
        yield data.inputs[start : start + size], data.targets[start : start + size]


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, CLASSES))


def _trainer(val=None, **kwargs):
    return Trainer(
        _net(),
        nn.functional.cross_entropy,
        _arrays(64),
        val,
        batch_size=16,
        progress=False,
        device="cpu",
        **kwargs,
    )


# ---------------------------------------------------------------- the Trainer
@pytest.mark.parametrize(
    "kind",
    ["iterable dataset", "factory of generators", "dataloader over an iterable dataset"],
)
def test_a_finite_val_stream_without_len_validates_like_the_same_tensors(kind):
    val = _arrays(40, seed=1)
    streams = {
        "iterable dataset": Samples(val),
        "factory of generators": lambda batch_size: _batches(val, 16),
        "dataloader over an iterable dataset": DataLoader(Samples(val), batch_size=16),
    }
    expected = _trainer(val).fit_one_cycle(2, 0.05)
    history = _trainer(streams[kind]).fit_one_cycle(2, 0.05)
    assert history.step_losses == pytest.approx(expected.step_losses, rel=1e-6)
    for got, want in zip(history.epochs, expected.epochs, strict=True):  # all 40, every epoch
        assert got["val_loss"] == pytest.approx(want["val_loss"], rel=1e-5)
        assert got["val_accuracy"] == pytest.approx(want["val_accuracy"])


def test_an_endless_val_stream_reads_val_steps_batches_from_its_start_each_time():
    val = _arrays(40, seed=1)
    stream = Samples(val, endless=True)
    trainer = _trainer(stream, val_steps=2)  # 2 batches of 256 samples: the first 512
    history = trainer.fit_one_cycle(2, 0.05)
    first_512 = ArrayData(val.inputs.repeat(13, 1)[:512], val.targets.repeat(13)[:512])
    assert history.epochs[-1]["val_loss"] == pytest.approx(trainer.evaluate(first_512)["loss"])
    assert stream.passes == 2  # one per epoch: the checks before training read none of it
    assert trainer.evaluate()["loss"] == pytest.approx(history.epochs[-1]["val_loss"])


def test_evaluate_reads_a_generator_once_and_an_endless_stream_for_steps():
    trainer = _trainer()
    test = _arrays(40, seed=2)
    expected = trainer.evaluate(test)
    assert trainer.evaluate(_batches(test, 7))["loss"] == pytest.approx(expected["loss"])
    endless = itertools.cycle(list(_batches(test, 8)))
    assert trainer.evaluate(endless, steps=5)["loss"] == pytest.approx(expected["loss"])


def test_an_endless_val_stream_without_val_steps_is_named(monkeypatch):
    # the guard: 10 training epochs' batches (here 10 x 4), at least ENDLESS_EVAL_MIN_BATCHES
    monkeypatch.setattr("superconverge.training.inputs.ENDLESS_EVAL_MIN_BATCHES", 5)
    batch = (torch.zeros(4, FEATURES), torch.zeros(4, dtype=torch.long))
    trainer = _trainer(lambda batch_size: itertools.repeat(batch))
    with pytest.raises(ValueError, match=r"val_data yielded more than 40 batches.*val_steps="):
        trainer.fit_one_cycle(1, 0.05)
    with pytest.raises(ValueError, match=r"data yielded more than 40 batches.*steps="):
        trainer.evaluate(itertools.repeat(batch))
    monkeypatch.setattr("superconverge.training.inputs.ENDLESS_EVAL_MIN_BATCHES", 60)
    with pytest.raises(ValueError, match=r"data yielded more than 60 batches"):
        trainer.evaluate(itertools.repeat(batch))


def test_a_generator_as_val_data_is_refused_before_training():
    with pytest.raises(ValueError, match=r"val_data is a generator, which can be read once"):
        _trainer(_batches(_arrays(40, seed=1), 16))
    endless = (b for b in itertools.cycle(list(_batches(_arrays(40, seed=1), 16))))
    assert _trainer(endless, val_steps=2).fit_one_cycle(1, 0.05).status == "completed"


def test_a_generator_read_twice_says_so():
    trainer = _trainer()
    batches = _batches(_arrays(40, seed=2), 16)
    trainer.evaluate(batches)
    with pytest.raises(ValueError, match="data yielded no batches: it is empty, or a generator"):
        trainer.evaluate(batches)


def test_evaluation_steps_for_data_of_known_size_are_refused_by_name():
    with pytest.raises(
        ValueError, match=r"val_steps applies to streams.*val_data \(ArrayData\) has a known size"
    ):
        _trainer(_arrays(40), val_steps=2)
    with pytest.raises(ValueError, match="val_steps needs val_data"):
        _trainer(None, val_steps=2)
    with pytest.raises(ValueError, match="steps applies to data given here"):
        _trainer(_arrays(40)).evaluate(steps=2)
    # each named as the caller named it: all were "steps_per_epoch must be an integer >= 1"
    endless = Samples(_arrays(40), endless=True)
    with pytest.raises(ValueError, match=r"^val_steps must be an integer >= 1, got 0$"):
        _trainer(endless, val_steps=0)
    with pytest.raises(ValueError, match=r"^val_steps must be an integer >= 1, got 2.5$"):
        _trainer(lambda batch_size: _batches(_arrays(40), batch_size), val_steps=2.5)
    with pytest.raises(ValueError, match=r"^steps must be an integer >= 1, got 0$"):
        _trainer().evaluate(endless, steps=0)
    with pytest.raises(ValueError, match=r"^test_steps must be an integer >= 1, got -1$"):
        sc.tune(_net, _arrays(64), _arrays(40), epochs=1, test_data=endless, test_steps=-1)


@pytest.mark.parametrize("target", [int, torch.tensor])
def test_a_list_of_samples_is_told_to_be_stacked_or_wrapped(target):
    # a user's first try: [(x_i, y_i), ...] failed in the metrics with "IndexError: tuple index
    # out of range", and lr_find swept one unbatched sample at a time without a word
    data = _arrays(40)
    samples = [(x, target(int(y))) for x, y in zip(data.inputs, data.targets, strict=True)]
    message = r"train_data is a list of samples \(\(inputs, target\) pairs with one number"
    with pytest.raises(TypeError, match=message):
        Trainer(_net(), nn.functional.cross_entropy, samples, progress=False).fit_one_cycle(1, 0.1)
    with pytest.raises(TypeError, match=message):
        sc.lr_find(_net(), nn.functional.cross_entropy, samples)
    batches = list(_batches(data, 8))  # a list of batches is what a list is taken as
    assert Trainer(_net(), nn.functional.cross_entropy, batches, progress=False).fit_one_cycle(
        1, 0.1
    ).status == "completed"


def test_a_factory_of_generators_is_asked_again_for_each_evaluation():
    calls = []

    def make_loader(batch_size):
        calls.append(batch_size)
        return _batches(_arrays(40, seed=1), 16)

    loader = as_source(make_loader, "val_data", evaluation=True).loader(256, shuffle=False)
    assert [len(list(loader)) for _ in range(3)] == [3, 3, 3]
    assert calls == [256, 256, 256]


# ---------------------------------------------------------------- the range test
@pytest.mark.parametrize("endless", [False, True])
def test_lr_find_validates_on_a_stream_without_len(endless):
    val = Samples(_arrays(40, seed=1), endless=endless)
    result = sc.lr_find(
        _net(), nn.functional.cross_entropy, _arrays(256), batch_size=16, num_steps=12,
        val_data=val, val_every=4,
    )  # fmt: skip
    assert len(result.val_losses) >= 3 and val.passes == 1  # read once: a fixed subset


def test_lr_find_validates_on_a_factory_of_fewer_batches_than_val_batches():
    val = _arrays(40, seed=1)
    result = sc.lr_find(
        _net(), nn.functional.cross_entropy, _arrays(256), batch_size=16, num_steps=12,
        val_data=lambda batch_size: _batches(val, 16), val_batches=4,
    )  # fmt: skip
    again = sc.lr_find(
        _net(), nn.functional.cross_entropy, _arrays(256), batch_size=16, num_steps=12,
        val_data=val, val_batches=3,
    )  # fmt: skip  # batches of 16: all 40 samples, as the generator's 3 batches above
    assert result.val_losses[0] == pytest.approx(again.val_losses[0], rel=1e-5)


# ---------------------------------------------------------------- tune
@pytest.mark.slow
def test_tune_takes_a_finite_val_stream_and_an_endless_test_stream():
    test = _arrays(40, seed=2)
    plan = sc.tune(
        _net,
        _arrays(128),
        Samples(_arrays(40, seed=1)),
        epochs=1,
        batch_size=16,
        optimizer="sgd",
        weight_decays=[1e-4],
        test_data=itertools.cycle(list(_batches(test, 10))),
        test_steps=4,
        seed=0,
    )
    assert plan.results["status"] == "completed"
    assert plan.results["test"]["loss"] == pytest.approx(plan.trainer.evaluate(test)["loss"])


def test_tune_names_a_generator_val_and_stray_steps_before_training():
    with pytest.raises(ValueError, match=r"val_data is a generator.*val_steps="):
        sc.tune(_net, _arrays(128), _batches(_arrays(40), 16), epochs=1, batch_size=16)
    with pytest.raises(ValueError, match="test_steps needs test_data"):
        sc.tune(_net, _arrays(128), _arrays(40), epochs=1, batch_size=16, test_steps=3)


def test_an_automatic_batch_on_a_training_stream_is_capped():
    # an epoch of a stream is steps_per_epoch batches whatever their size: the largest candidate
    # (1024) would read this 200-sample stream ~100 times an epoch
    stream = Samples(_arrays(200), endless=True)
    plan = sc.tune(_net, stream, _arrays(40, seed=1), epochs=1, steps_per_epoch=20,
                   optimizer="sgd", weight_decays=[1e-4], seed=0, settings=EXACT)  # fmt: skip
    assert plan.batch_size == 64 and "at most 64 for a stream" in plan.evidence[0]["why"]
    assert plan.compute["final_run_samples"] == 20 * 64


class Batches(IterableDataset):
    """A stream that yields whole batches (what a user's own pipeline often does)."""

    def __iter__(self):
        data = _arrays(64)
        while True:
            yield from _batches(data, 16)


def test_a_stream_of_whole_batches_is_told_to_come_as_a_loader_factory():
    hint = "a stream that yields whole batches goes in as a loader factory"
    with pytest.raises(ValueError, match=hint):
        Trainer(_net(), nn.functional.cross_entropy, Batches(), steps_per_epoch=4).fit_one_cycle(
            1, 0.1
        )
    with pytest.raises(ValueError, match=hint):
        sc.lr_find(_net(), nn.functional.cross_entropy, Batches(), steps_per_epoch=4)

    # such batches from a loader factory (asked for the batch size) train
    def make_loader(size):
        return (batch for _ in itertools.count() for batch in _batches(_arrays(64), size))

    history = Trainer(_net(), nn.functional.cross_entropy, make_loader, batch_size=16,
                      steps_per_epoch=4).fit_one_cycle(1, 0.1)  # fmt: skip
    assert history.status == "completed"
