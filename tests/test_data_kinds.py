"""Every entry point (lr_find, Trainer, tune, TunePlan.run) on every kind of data users bring:
tensors, a map-style Dataset, a loader factory, a stream, dict batches; any task; AdamW."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

import superconverge as sc
from superconverge.data import ArrayData
from superconverge.data.sources import as_source
from superconverge.training import Trainer
from superconverge.tuning import RecipeSettings

# the final run at the epochs asked for (tune lengthens it by the budget by default)
EXACT = RecipeSettings(extend_final_run=False)

FEATURES, CLASSES = 6, 3


def _arrays(count=96, seed=0, regression=False):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(count, FEATURES, generator=generator)
    weights = torch.randn(FEATURES, CLASSES, generator=generator)
    scores = inputs @ weights
    targets = scores[:, :1] if regression else scores.argmax(1)
    return ArrayData(inputs, targets)


class Items(Dataset):
    """The samples of an ArrayData, one per item, counting the reads."""

    def __init__(self, data, dicts=False):
        self.data, self.dicts, self.reads = data, dicts, 0

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        self.reads += 1
        x, y = self.data.inputs[index], self.data.targets[index]
        return {"features": x, "labels": y} if self.dicts else (x, y)


class Stream(IterableDataset):
    def __init__(self, data):
        self.data = data

    def __iter__(self):
        while True:
            yield from zip(self.data.inputs, self.data.targets, strict=True)


class KeywordNet(nn.Module):
    """Takes keyword inputs and returns a dict with logits, like a Hugging Face model."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(FEATURES, CLASSES)

    def forward(self, features):
        return {"logits": self.linear(features)}


def _net(outputs=CLASSES):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, outputs))


def _fit(train, val=None, epochs=2, model=None, loss_fn=nn.functional.cross_entropy, **kwargs):
    trainer = Trainer(
        model or _net(), loss_fn, train, val, batch_size=16, progress=False, device="cpu", **kwargs
    )
    return trainer, trainer.fit_one_cycle(epochs, 0.05)


# ---------------------------------------------------------------- Trainer
def test_a_dataset_trains_exactly_as_the_same_tensors():
    data, val = _arrays(), _arrays(32, seed=1)
    _, from_arrays = _fit(data, val)
    _, from_dataset = _fit(Items(data), Items(val))
    assert from_dataset.step_losses == pytest.approx(from_arrays.step_losses, rel=1e-6)
    assert from_dataset.epochs[-1]["val_accuracy"] == from_arrays.epochs[-1]["val_accuracy"]


def test_a_loader_factory_and_a_stream_train():
    data = _arrays()

    def make_loader(batch_size):
        return DataLoader(Items(data), batch_size=batch_size, shuffle=True)

    trainer, history = _fit(make_loader, Items(_arrays(32, seed=1)))
    assert history.status == "completed" and trainer.steps_per_epoch == 6
    trainer, history = _fit(Stream(data), steps_per_epoch=4)
    assert history.status == "completed" and len(history.step_losses) == 8


def test_dict_batches_reach_a_keyword_model():
    data = _arrays()
    _trainer, history = _fit(
        Items(data, dicts=True), Items(_arrays(32, seed=1), dicts=True), model=KeywordNet()
    )
    assert history.status == "completed" and "val_accuracy" in history.epochs[-1]


def test_regression_reports_mse_and_mae_not_accuracy():
    _trainer, history = _fit(
        _arrays(regression=True),
        _arrays(32, 1, regression=True),
        model=_net(1),
        loss_fn=nn.functional.mse_loss,
    )
    last = history.epochs[-1]
    assert "val_accuracy" not in last and last["val_mse"] == pytest.approx(last["val_loss"])
    assert last["val_mae"] > 0


def test_callable_metrics_are_reported_by_name():
    def worst(outputs, targets):
        return (outputs - targets).abs().max()

    _, history = _fit(
        _arrays(regression=True),
        _arrays(32, 1, regression=True),
        model=_net(1),
        loss_fn=nn.functional.mse_loss,
        metrics={"worst": worst},
    )
    assert set(history.epochs[-1]) >= {"val_loss", "val_worst"}


def test_bad_input_is_named_before_any_training():
    data = _arrays()

    def broken(outputs, targets):
        raise RuntimeError("boom")

    with pytest.raises(ValueError, match=r"metrics\['broken'\] raised RuntimeError"):
        _fit(data, _arrays(32, 1), metrics={"broken": broken})
    with pytest.raises(ValueError, match="steps_per_epoch must be given for train_data"):
        _fit(Stream(data))
    with pytest.raises(ValueError, match=r"make_loader\(16\) yielded a first batch of 4 samples"):
        _fit(lambda batch_size: DataLoader(Items(data), batch_size=4))
    with pytest.raises(ValueError, match=r"model outputs of shape \(16, 1\)"):
        _fit(
            lambda batch_size: DataLoader(Items(data), batch_size=batch_size),
            model=_net(1),
            loss_fn=nn.functional.mse_loss,
            batch_fn=lambda b: (b[0], b[1].float()),
        )


def test_a_dataset_resumes_exactly_at_an_epoch_boundary(tmp_path):
    data = _arrays()
    _, whole = _fit(Items(data), epochs=3)
    from superconverge.training.callbacks import Callback, CancelFit

    class StopAfterFirstEpoch(Callback):
        def after_epoch(self, fit):
            raise CancelFit

    _, cut = _fit(Items(data), epochs=3, out_dir=tmp_path, callbacks=[StopAfterFirstEpoch()])
    assert cut.status == "cancelled" and len(cut.epochs) == 1
    history = Trainer.resume(
        tmp_path / "checkpoint.pt",
        _net(),
        nn.functional.cross_entropy,
        Items(data),
        batch_size=16,
        progress=False,
        device="cpu",
    )
    assert history.step_losses == pytest.approx(whole.step_losses, rel=1e-6)


class Jittered(Items):
    """Items with a random transform: noise from torch's RNG and a shift from Python's."""

    def __getitem__(self, index):
        import random

        x, y = super().__getitem__(index)
        return x + 0.3 * torch.randn(x.shape) + random.random(), y


def test_a_dataset_with_workers_and_random_transforms_resumes_exactly(tmp_path):
    # a user's check: with num_workers=2 and a random transform, the resumed run's weights were
    # up to 0.43 from the uninterrupted run's (its workers started anew, seeded as at epoch 1)
    from superconverge.training.callbacks import Callback, CancelFit

    class StopAfterFirstEpoch(Callback):
        def after_epoch(self, fit):
            raise CancelFit

    data = _arrays()
    options = {"num_workers": 2, "epochs": 3}
    trainer, whole = _fit(Jittered(data), **options)
    _, again = _fit(Jittered(data), **options)
    assert again.step_losses == whole.step_losses  # the same run twice
    _, cut = _fit(Jittered(data), out_dir=tmp_path, callbacks=[StopAfterFirstEpoch()], **options)
    assert cut.status == "cancelled" and len(cut.epochs) == 1
    model = _net()
    history = Trainer.resume(tmp_path / "checkpoint.pt", model, nn.functional.cross_entropy,
                             Jittered(data), batch_size=16, progress=False, device="cpu",
                             num_workers=2)  # fmt: skip
    assert history.step_losses == whole.step_losses
    for mine, theirs in zip(model.parameters(), trainer.module.parameters(), strict=True):
        assert torch.equal(mine, theirs)


# ---------------------------------------------------------------- lr_find
def test_lr_find_takes_a_dataset_and_restores_its_position():
    data = Items(_arrays(256))
    model = _net()
    before = [p.detach().clone() for p in model.parameters()]
    result = sc.lr_find(model, nn.functional.cross_entropy, data, batch_size=16, num_steps=20)
    assert len(result.lrs) >= 10 and data.reads >= 16 * 10
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_lr_find_takes_a_factory_and_dict_batches():
    data = Items(_arrays(256), dicts=True)
    result = sc.lr_find(
        KeywordNet(),
        nn.functional.cross_entropy,
        lambda batch_size: DataLoader(data, batch_size=batch_size),
        batch_size=32,
        num_steps=12,
    )
    assert len(result.lrs) >= 10


# ---------------------------------------------------------------- tune and TunePlan.run
@pytest.mark.slow
def test_tune_on_a_regression_dataset_with_adamw_decides_on_validation_loss():
    train, val = Items(_arrays(320, regression=True)), Items(_arrays(64, 1, regression=True))
    plan = sc.tune(
        lambda: _net(1),
        train,
        val,
        epochs=2,
        batch_size=16,
        optimizer="adamw",
        loss_fn=nn.functional.mse_loss,
        test_data=val,
        # the weight-decay candidates are what this test checks: a budget that holds them after
        # the range tests' floors (at budget 1 this tiny job's LR search alone spends 5.4 runs),
        # and no longer final run taking their share
        budget=20.0,
        settings=RecipeSettings(lr_search="short_runs", extend_final_run=False),
    )
    runs = plan.evidence[2]["details"]["runs"]
    assert set(runs) >= {"0.1", "0.01", "0"}  # the decoupled-decay candidates
    assert "final_val_accuracy" not in plan.results or plan.results["final_val_accuracy"] is None
    assert plan.results["final_val_metrics"]["mse"] == pytest.approx(plan.results["final_val_loss"])
    assert "accuracy" not in plan.results["test"] and "mse" in plan.results["test"]
    assert plan.optimizer == "adamw"
    again = sc.TunePlan.from_json(plan.to_json())
    history = again.run(lambda: _net(1), train, val, loss_fn=nn.functional.mse_loss)
    assert history.status == "completed"
    # the default, in-run search: the same task, decided on the validation loss, reported as MSE
    searched = sc.tune(lambda: _net(1), train, val, epochs=2, batch_size=16, optimizer="adamw",
                       loss_fn=nn.functional.mse_loss, test_data=val)  # fmt: skip
    assert searched.policy == "search" and searched.results["status"] == "completed"
    assert "accuracy" not in searched.results["test"] and "mse" in searched.results["test"]


def test_tune_refuses_a_factory_that_ignores_the_batch_size_before_training():
    data = Items(_arrays())
    with pytest.raises(ValueError, match="yielded a first batch of 8 samples"):
        sc.tune(
            _net,
            lambda batch_size: DataLoader(data, batch_size=8),
            Items(_arrays(32, 1)),
            epochs=1,
            batch_size=16,
        )


def test_a_loader_of_the_users_own_trains_at_its_batch_size_and_says_so():
    # a user's check: tune(own DataLoader of batch 32) reported batch_size 16 (the CPU rule's
    # pick, also used for its budget) and trained at 32; batch_size=64 was ignored the same way
    train = DataLoader(Items(_arrays(320)), batch_size=32, shuffle=True)
    val = DataLoader(Items(_arrays(64, 1)), batch_size=64)
    plan = sc.tune(_net, train, val, epochs=2, optimizer="sgd", settings=EXACT)
    assert plan.batch_size == 32 and "your loader's own" in plan.evidence[0]["why"]
    assert len(plan.history.step_losses) == 2 * 10  # 320 samples in batches of 32, twice
    with pytest.raises(ValueError, match=r"batch_size 64: train_data is a loader with its own "
                       r"batch size \(32\), which batch_size cannot change"):  # fmt: skip
        sc.tune(_net, train, val, epochs=2, batch_size=64, settings=EXACT)
    assert (
        sc.tune(
            _net, train, val, epochs=2, batch_size=32, optimizer="sgd", settings=EXACT
        ).batch_size
        == 32
    )
    with pytest.raises(ValueError, match="batch_size 16: train_data is a loader"):
        Trainer(_net(), nn.functional.cross_entropy, train, batch_size=16)
    # its batch size leaving the final run under 4 updates is refused before the range test
    big = DataLoader(Items(_arrays(320)), batch_size=160)
    with pytest.raises(ValueError, match=r"leaves the final run 2 optimizer updates .* use a "
                       r"smaller batch in your loader or raise epochs"):  # fmt: skip
        sc.tune(_net, big, val, epochs=1, settings=EXACT)


class Batches(Dataset):
    """A Dataset whose items are whole batches (shards, pre-batched files)."""

    def __init__(self, data, size):
        self.data, self.size = data, size

    def __len__(self):
        return len(self.data) // self.size

    def __getitem__(self, index):
        rows = slice(index * self.size, (index + 1) * self.size)
        return self.data.inputs[rows], self.data.targets[rows]


def test_a_loader_whose_items_are_batches_counts_their_samples():
    # a user's check: DataLoader(batch_size=None) over batches of 32 was counted as one sample
    # per batch (its budget and samples off 32x) and the plan reported the CPU rule's batch
    train = DataLoader(Batches(_arrays(320), 32), batch_size=None, shuffle=True)
    source = as_source(train, "train_data")
    assert source.fixed_batch_size == 32 and source.num_samples == 320
    val = DataLoader(Items(_arrays(64, 1)), batch_size=64)
    plan = sc.tune(_net, train, val, epochs=2, optimizer="sgd", settings=EXACT)
    assert plan.batch_size == 32 and "your loader's own" in plan.evidence[0]["why"]
    assert len(plan.history.step_losses) == 2 * 10
    final = next(r for r in plan.evidence if r["step"] == "final_run")
    assert final["samples"] == 2 * 320 and plan.compute["final_run_samples"] == 2 * 320


class TokenNet(nn.Module):
    """(N, L, C) logits, as a Hugging Face token classifier gives them."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(FEATURES, CLASSES)

    def forward(self, x):
        return self.linear(x)


def test_outputs_a_loss_cannot_take_are_named_with_the_fix_before_any_run(tmp_path):
    # a user's runs: torch's own message ("Expected target size [16, 3], got [16, 12]"), raised at
    # the range test's first step, after the batch-size stage
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randn(64, 12, FEATURES, generator=generator)
    labels = torch.randint(0, CLASSES, (64, 12), generator=generator)
    with pytest.raises(ValueError, match=r"classes are on the last dimension .* "
                       r"F.cross_entropy\(outputs.movedim\(-1, 1\), targets\)"):  # fmt: skip
        sc.tune(TokenNet, (tokens, labels), (tokens, labels), epochs=1, out_dir=tmp_path / "a")
    assert not (tmp_path / "a").exists()
    moved = lambda outputs, targets: nn.functional.cross_entropy(outputs.movedim(-1, 1), targets)  # noqa: E731
    plan = sc.tune(TokenNet, (tokens, labels), (tokens, labels), epochs=1, loss_fn=moved)
    assert plan.results["status"] == "completed"
    assert "accuracy" in plan.results["final_val_metrics"]  # the metric reads the same layout
    data = _arrays(96, regression=True)
    flat = (data.inputs, data.targets[:, 0])  # targets (N,) against one output per sample
    with pytest.raises(ValueError, match=r"give the targets the outputs' shape \(32, 1\) "
                       r"\(targets\[:, None\] in your data"):  # fmt: skip
        sc.tune(lambda: _net(1), flat, flat, epochs=1, loss_fn=nn.functional.mse_loss,
                out_dir=tmp_path / "b")  # fmt: skip
    assert not (tmp_path / "b").exists()


def test_a_dataloader_over_a_stream_keeps_its_batch_size_in_tune():
    # a user's check: tune(DataLoader(IterableDataset, batch_size=32), steps_per_epoch=100)
    # reported batch 64 ("at most 64 for a stream") and counted its samples at 64, training at 32
    data = _arrays(320)

    class Endless(IterableDataset):
        def __iter__(self):
            g = torch.Generator().manual_seed(0)
            while True:
                i = int(torch.randint(0, len(data), (1,), generator=g))
                yield data.inputs[i], data.targets[i]

    train = DataLoader(Endless(), batch_size=32)
    val = DataLoader(Items(_arrays(64, 1)), batch_size=64)
    plan = sc.tune(_net, train, val, epochs=2, steps_per_epoch=10, optimizer="sgd", settings=EXACT)
    assert plan.batch_size == 32 and "your loader's own" in plan.evidence[0]["why"]
    assert plan.compute["final_run_samples"] == 2 * 10 * 32
    with pytest.raises(ValueError, match=r"batch_size 64: train_data is a loader with its own "
                       r"batch size \(32\)"):  # fmt: skip
        sc.tune(_net, train, val, epochs=2, steps_per_epoch=10, batch_size=64, settings=EXACT)


def test_a_pair_of_numpy_arrays_is_named_with_the_tensors_to_pass_instead():
    # (x, y) as NumPy arrays was read as a sequence of two "batches": Trainer said "total_steps
    # must be >= 4, got 2", lr_find "must yield (inputs, targets) pairs, got a ndarray"
    import numpy as np

    x, y = np.random.default_rng(0).normal(size=(64, FEATURES)), np.arange(64) % CLASSES
    tensors = (torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y))
    message = r"train_data is a pair of NumPy arrays; pass tensors.*torch\.as_tensor\(x, dtype"
    with pytest.raises(TypeError, match=message):
        Trainer(_net(), nn.functional.cross_entropy, (x, y), progress=False)
    with pytest.raises(TypeError, match=message.replace("train_data", "val_data")):
        Trainer(_net(), nn.functional.cross_entropy, tensors, [x, y], progress=False)
    with pytest.raises(TypeError, match=message):
        sc.lr_find(_net(), nn.functional.cross_entropy, (x, y))
    with pytest.raises(TypeError, match=message):
        sc.tune(_net, (x, y), tensors, epochs=1)
