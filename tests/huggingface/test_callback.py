import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from transformers import Trainer  # noqa: E402

from superconverge import one_cycle  # noqa: E402
from superconverge.huggingface import OneCycleCallback  # noqa: E402
from tests.huggingface.sst2 import datasets, sst2_dir, tiny_bert  # noqa: E402
from tests.huggingface.sst2 import training_arguments as _arguments  # noqa: E402

pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(not sst2_dir().is_dir(), reason="needs SST-2 under SUPERCONVERGE_DATA"),
]
MAX_LR = 1e-3


@pytest.fixture(scope="module")
def sst2():
    train, _, vocab_size = datasets(train_size=128, val_size=16, vocab_size=2000)
    return train, vocab_size  # 8 batches of 16 per epoch


class _Recorder:
    """A step pre-hook: the lr and momentum (β1 or SGD's) each optimizer update used."""

    def __init__(self):
        self.seen = []

    def __call__(self, optimizer, args, kwargs):
        group = optimizer.param_groups[0]
        momentum = group["betas"][0] if "betas" in group else group.get("momentum", 0.0)
        self.seen.append((float(group["lr"]), float(momentum)))


def _plan_values(plan, steps):
    return [(plan.lr(k), plan.momentum(k)) for k in steps]


def _logged_lrs(trainer):
    return [
        entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry
    ]


def _train(model, arguments, train, callback, optimizers=(None, None), resume=None):
    recorder = _Recorder()
    trainer = Trainer(
        model=model, args=arguments, train_dataset=train, callbacks=[callback],
        optimizers=optimizers,
    )  # fmt: skip
    original = trainer.create_optimizer

    def create_optimizer(*args, **kwargs):
        optimizer = original(*args, **kwargs)
        optimizer.register_step_pre_hook(recorder)
        return optimizer

    if optimizers[0] is None:
        trainer.create_optimizer = create_optimizer
    else:
        optimizers[0].register_step_pre_hook(recorder)
    trainer.train(resume_from_checkpoint=resume)
    return trainer, recorder.seen


def test_plain_trainer_follows_the_plan_with_accumulation_over_epochs(sst2, tmp_path):
    train, vocab_size = sst2
    # the Trainer's own scheduler (linear, with warm-up, from its learning_rate) runs underneath
    arguments = _arguments(
        tmp_path, gradient_accumulation_steps=3, learning_rate=5e-5, warmup_steps=2
    )
    callback = OneCycleCallback(max_lr=MAX_LR)
    with pytest.warns(UserWarning, match=r"TrainingArguments warmup_steps=2 have no effect"):
        trainer, seen = _train(tiny_bert(vocab_size), arguments, train, callback)
    plan = callback.plan
    # 8 batches per epoch in updates of 3 (the last of 2): 3 updates per epoch, 2 epochs
    assert plan == one_cycle(6, MAX_LR) and trainer.state.global_step == 6
    assert seen == _plan_values(plan, range(6))  # LR and β1 of every update, exactly
    assert _logged_lrs(trainer) == pytest.approx([plan.lr(k) for k in range(6)])
    assert trainer.optimizer.param_groups[0]["betas"][1] == 0.999  # β2 untouched


def test_max_steps_sgd_momentum_and_another_trainer_scheduler(sst2, tmp_path):
    train, vocab_size = sst2
    model = tiny_bert(vocab_size)
    sgd = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    arguments = _arguments(tmp_path, max_steps=10, lr_scheduler_type="cosine_with_restarts")
    callback = OneCycleCallback(max_lr=0.05, momentum=(0.9, 0.8), warmup_fraction=0.4)
    # a user's check: OneCycleTrainer said this, the callback did not
    with pytest.warns(UserWarning, match=r"lr_scheduler_type='cosine_with_restarts' have no"):
        trainer, seen = _train(model, arguments, train, callback, optimizers=(sgd, None))
    plan = callback.plan
    assert plan == one_cycle(10, 0.05, momentum=(0.9, 0.8), warmup_fraction=0.4)
    assert trainer.state.global_step == 10  # past the first epoch's 8 batches
    assert seen == _plan_values(plan, range(10))
    assert _logged_lrs(trainer) == pytest.approx([plan.lr(k) for k in range(10)])


def test_resume_from_a_mid_epoch_checkpoint_continues_the_cycle_exactly(sst2, tmp_path):
    train, vocab_size = sst2
    # 2 batches per update: 4 updates per epoch, 8 in all; checkpoint-3 is inside epoch 1
    settings = {"gradient_accumulation_steps": 2, "save_strategy": "steps", "save_steps": 3}
    output = tmp_path / "run"
    full = tiny_bert(vocab_size)
    _, seen_full = _train(full, _arguments(output, **settings), train, OneCycleCallback(MAX_LR))
    resumed = tiny_bert(vocab_size, seed=1)  # the checkpoint must overwrite everything
    callback = OneCycleCallback(MAX_LR)
    _, seen = _train(
        resumed,
        _arguments(output, **settings),
        train,
        callback,
        resume=str(output / "checkpoint-3"),
    )
    assert callback.plan == one_cycle(8, MAX_LR)
    assert seen == _plan_values(callback.plan, range(3, 8)) == seen_full[3:]
    for key, value in resumed.state_dict().items():
        assert torch.equal(value, full.state_dict()[key]), key


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        ({"max_lr": 0.0}, ValueError, "max_lr must be a finite number > 0, got 0.0"),
        ({"max_lr": float("nan")}, ValueError, "max_lr must be a finite number > 0"),
        ({"max_lr": True}, TypeError, "max_lr must be a finite number > 0, got True"),
        ({"max_lr": 1e-3, "warmup_fraction": 1.0}, ValueError, "warmup_fraction"),
        ({"max_lr": 1e-3, "momentum": (0.95,)}, ValueError, "momentum"),
    ],
    ids=["zero", "nan", "bool", "warmup_fraction", "momentum"],
)
def test_invalid_settings_are_refused_at_construction(settings, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        OneCycleCallback(**settings)


def test_an_optimizer_without_momentum_is_named(sst2, tmp_path):
    train, vocab_size = sst2
    model = tiny_bert(vocab_size)
    adagrad = torch.optim.Adagrad(model.parameters(), lr=0.01)
    with pytest.raises(ValueError, match="Adagrad has no momentum"):
        _train(model, _arguments(tmp_path, max_steps=4), train, OneCycleCallback(1e-3),
               optimizers=(adagrad, None))  # fmt: skip
    _, seen = _train(
        model, _arguments(tmp_path, max_steps=4), train, OneCycleCallback(1e-3, momentum=None),
        optimizers=(torch.optim.Adagrad(model.parameters(), lr=0.01), None),
    )  # fmt: skip
    assert [momentum for _, momentum in seen] == [0.0] * 4  # Adagrad's: none, recorded as 0
    assert [lr for lr, _ in seen] == [one_cycle(4, 1e-3).lr(k) for k in range(4)]
