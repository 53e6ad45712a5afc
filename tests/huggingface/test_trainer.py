import os
import warnings

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from transformers import Trainer  # noqa: E402

from superconverge import HyperparamScheduler, one_cycle  # noqa: E402
from superconverge.huggingface import (  # noqa: E402
    FINE_TUNING_DIVISOR,
    OneCycleTrainer,
    lr_find,
    one_cycle_scheduler,
)
from tests.huggingface.sst2 import datasets, sst2_dir, tiny_bert  # noqa: E402
from tests.huggingface.sst2 import training_arguments as _arguments  # noqa: E402

pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(not sst2_dir().is_dir(), reason="needs SST-2 under SUPERCONVERGE_DATA"),
]
SWEEP = {"start_lr": 1e-5, "end_lr": 1.0, "num_steps": 20}


@pytest.fixture(scope="module")
def sst2():
    train, val, vocab_size = datasets(train_size=128, val_size=64, vocab_size=2000)
    return train, val, vocab_size


class _Recorder:
    """A step pre-hook: the lr and β1 each optimizer update used."""

    def __init__(self):
        self.seen = []

    def __call__(self, optimizer, args, kwargs):
        group = optimizer.param_groups[0]
        self.seen.append((float(group["lr"]), float(group["betas"][0])))


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_lr_find_on_a_pretrained_model_with_dict_batches_restores_it_exactly(sst2):
    train, _, vocab_size = sst2
    model = tiny_bert(vocab_size)
    loader = torch.utils.data.DataLoader(
        train, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    before, rng, order = _state(model), torch.get_rng_state(), loader.generator.get_state()
    result = lr_find(model, loader, **SWEEP)
    assert result.settings["framework"] == "huggingface" and len(result.lrs) >= 10
    assert any("fine_tuning=True" in note for note in result.notes)
    for key, value in _state(model).items():
        assert torch.equal(value, before[key]), key
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(loader.generator.get_state(), order)
    tuned = lr_find(model, loader, fine_tuning=True, **SWEEP)
    if result.max_lr is not None:
        assert tuned.max_lr == pytest.approx(result.max_lr / FINE_TUNING_DIVISOR)


def test_plain_trainer_takes_hyperparam_scheduler_and_logs_its_lr(sst2, tmp_path):
    train, _, vocab_size = sst2
    model = tiny_bert(vocab_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    plan = one_cycle(16, max_lr=1e-3)  # 128 samples / 16, 2 epochs
    recorder = _Recorder()
    optimizer.register_step_pre_hook(recorder)
    trainer = Trainer(
        model=model, args=_arguments(tmp_path), train_dataset=train,
        optimizers=(optimizer, HyperparamScheduler(optimizer, plan)),
    )  # fmt: skip
    trainer.train()  # the issue: AttributeError 'get_last_lr' at the first log step
    assert recorder.seen == [(plan.lr(k), plan.momentum(k)) for k in range(16)]
    logged = [
        entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry
    ]
    assert logged == pytest.approx([plan.lr(k) for k in range(16)])  # the LR each step used


@pytest.mark.slow  # a range test and a run: half a minute on a loaded 2-core machine
def test_one_cycle_trainer_runs_the_range_test_then_follows_the_plan(sst2, tmp_path):
    train, _, vocab_size = sst2
    model = tiny_bert(vocab_size)
    trainer = OneCycleTrainer(
        model=model, args=_arguments(tmp_path, gradient_accumulation_steps=2),
        train_dataset=train, lr_find_settings=SWEEP,
    )  # fmt: skip
    recorder = _Recorder()
    original_train = trainer.create_optimizer

    def create_optimizer(*args, **kwargs):
        optimizer = original_train(*args, **kwargs)
        if trainer.lr_find_result is not None:  # the training's, not the sweep's (dropped)
            optimizer.register_step_pre_hook(recorder)
        return optimizer

    trainer.create_optimizer = create_optimizer
    trainer.train()
    result = trainer.lr_find_result
    assert result is not None and result.max_lr is not None
    assert result.settings["accumulation_steps"] == 2
    plan = trainer.lr_scheduler.plan
    assert plan.max_lr == result.max_lr and plan.total_steps == 8  # 16 batches / 2, 2 epochs
    assert recorder.seen == [(plan.lr(k), plan.momentum(k)) for k in range(8)]
    assert os.path.isfile(tmp_path / "lr_find.json")


def test_the_range_test_sweeps_the_optimizer_the_trainer_will_train_with(sst2, tmp_path):
    # a user's check: optim="sgd" was swept with AdamW, and SGD then trained at AdamW's LR
    train, _, vocab_size = sst2
    trainer = OneCycleTrainer(
        model=tiny_bert(vocab_size), args=_arguments(tmp_path, optim="sgd", num_train_epochs=1),
        train_dataset=train, lr_find_settings=SWEEP,
    )  # fmt: skip
    assert trainer.run_lr_find().settings["optimizer"] == "SGD"
    assert trainer.optimizer is None  # the sweep's is dropped: training builds its own
    model = tiny_bert(vocab_size)
    mine = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    given = OneCycleTrainer(
        model=model, args=_arguments(tmp_path / "b"), train_dataset=train,
        optimizers=(mine, None), lr_find_settings=SWEEP,
    )  # fmt: skip
    before = _state(model)
    result = given.run_lr_find()
    assert result.settings["optimizer"] == "RMSprop" and given.optimizer is mine
    assert len(result.lrs) > 1 and result.losses[0] != result.losses[-1]  # it trained the model
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # and restored it


def test_resume_from_a_mid_cycle_checkpoint_is_exact(sst2, tmp_path):
    train, _, vocab_size = sst2

    def run(output, resume=None, seed=0, max_lr=1e-3, **changes):
        model = tiny_bert(vocab_size, seed=seed)
        trainer = OneCycleTrainer(
            model=model, args=_arguments(output, save_strategy="epoch", **changes),
            train_dataset=train, max_lr=max_lr,
        )  # fmt: skip
        trainer.train(resume_from_checkpoint=resume)
        return model, trainer

    full, _ = run(tmp_path / "full")
    middle = tmp_path / "full" / "checkpoint-8"  # after epoch 1 of 2
    assert torch.load(middle / "scheduler.pt", weights_only=True) == {"step_count": 8}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed, _ = run(tmp_path / "full", resume=str(middle), seed=1)
    assert not [w for w in caught if "OneCycleTrainer:" in str(w.message)]
    for key, value in _state(resumed).items():
        assert torch.equal(value, full.state_dict()[key]), key
    # another cycle from the same checkpoint: said (a user's check: 10x the LR without a word)
    for changed, (steps, peak) in (({"max_lr": 1e-2}, (16, 0.01)),
                                   ({"num_train_epochs": 3}, (24, 0.001))):  # fmt: skip
        with pytest.warns(UserWarning, match=(
            rf"OneCycleTrainer: the checkpoint's cycle has 16 updates at max_lr 0.001, this "
            rf"run's {steps} at max_lr {peak:g} .*the LR jumps at the resume"
        )):  # fmt: skip
            run(tmp_path / "other", resume=str(middle), **changed)


def test_one_cycle_scheduler_has_create_schedulers_arguments():
    optimizer = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=1.0)
    scheduler = one_cycle_scheduler(10, optimizer, max_lr=0.5, warmup_fraction=0.5)
    assert scheduler.plan == one_cycle(10, 0.5, warmup_fraction=0.5)
    assert optimizer.param_groups[0]["betas"] == (0.95, 0.999)  # β1 cycles, β2 untouched
