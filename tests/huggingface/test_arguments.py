"""What a Hugging Face user gets for settings the integrations cannot use: one message naming
the parameter, the value and what is allowed, before any training; built on a tiny BERT from a
config and random token ids (no data files, no downloads)."""

import warnings

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from transformers import Trainer  # noqa: E402

from superconverge import one_cycle  # noqa: E402
from superconverge.huggingface import (  # noqa: E402
    OneCycleCallback,
    OneCycleTrainer,
    lr_find,
    one_cycle_scheduler,
)
from tests.huggingface.tiny import CountingBert, RandomIds, arguments, tiny_bert  # noqa: E402


def test_a_short_warmup_fraction_is_accepted_and_followed(tmp_path):
    # a user's check: OneCycleCallback(3e-4, warmup_fraction=0.1) raised "total_steps=10 is too
    # few steps for the phases": its settings were checked on a 10-step cycle
    callback = OneCycleCallback(1e-3, warmup_fraction=0.1)
    trainer = Trainer(
        model=tiny_bert(), args=arguments(tmp_path, max_steps=20), train_dataset=RandomIds(),
        callbacks=[callback],
    )  # fmt: skip
    trainer.train()
    assert callback.plan == one_cycle(20, 1e-3, warmup_fraction=0.1)
    assert trainer.optimizer.param_groups[0]["lr"] == callback.plan.lr(19)


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        ({"momentum": 0.9}, ValueError, "momentum must be None or a (high, low) pair, got 0.9"),
        ({"max_lr": "3e-4"}, TypeError, "max_lr must be a finite number > 0, got '3e-4'"),
        ({"min_lr": 1e-2}, ValueError, "min_lr must be <= max_lr (0.001), got 0.01"),
    ],
    ids=["momentum-float", "max_lr-str", "min_lr-above"],
)
def test_callback_settings_are_named(settings, error, message):
    # a user's check: momentum=0.9 gave "TypeError: 'float' object is not iterable"
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        OneCycleCallback(**{"max_lr": 1e-3, **settings})


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        ({"max_lr": "1e-3"}, TypeError, "max_lr must be a finite number > 0, None .*got '1e-3'"),
        ({"max_lr": True}, TypeError, "max_lr must be a finite number > 0, None or 'search', got True"),
        ({"max_lr": -1.0}, ValueError, "max_lr must be a finite number > 0, None or 'search', got -1.0"),
        ({"momentum": 0.9}, ValueError, "momentum must be None or a (high, low) pair, got 0.9"),
        ({"fine_tuning": "yes"}, TypeError, "fine_tuning must be True or False, got 'yes'"),
        (
            {"one_cycle_settings": {"warmup": 0.1}},
            ValueError,
            "one_cycle_settings: unknown keys ['warmup']; allowed: min_lr, final_lr,",
        ),
        (
            {"one_cycle_settings": {"momentum": (0.9, 0.8)}},
            ValueError,
            "one_cycle_settings: unknown keys ['momentum']",
        ),
        (
            {"one_cycle_settings": {"warmup_fraction": 2}},
            ValueError,
            "warmup_fraction must be in (0, 1), got 2",
        ),
        (
            {"lr_find_settings": {"num_step": 20}},
            ValueError,
            "lr_find_settings: unknown keys ['num_step']; allowed: start_lr,",
        ),
        (
            {"lr_find_settings": {"compute_loss": len}},
            ValueError,
            "lr_find_settings: unknown keys ['compute_loss']",
        ),
        (
            {"lr_find_settings": {"num_steps": 5}},
            ValueError,
            "num_steps must be an integer >= 10 to analyse, got 5",
        ),
    ],
    ids=[
        "max_lr-str", "max_lr-bool", "max_lr-negative", "momentum-float", "fine_tuning",
        "cycle-unknown",
        "cycle-momentum", "cycle-value", "find-unknown", "find-own", "find-value",
    ],
)  # fmt: skip
def test_one_cycle_trainer_settings_are_named_when_it_is_built(tmp_path, settings, error, message):
    # a user's checks: max_lr="1e-3" gave "must be real number, not str"; momentum=0.9 and an
    # unknown one_cycle_settings key passed, then failed after the whole range test
    with pytest.raises(
        error, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        OneCycleTrainer(
            model=tiny_bert(), args=arguments(tmp_path), train_dataset=RandomIds(), **settings
        )


def test_an_optimizer_without_momentum_is_named_before_the_range_test(tmp_path):
    # a user's check: optim="adafactor" ran the whole sweep, then "AcceleratedOptimizer has no
    # momentum ...; build the plan with momentum=None" (no plan of theirs, and not its name)
    CountingBert.calls = 0
    trainer = OneCycleTrainer(
        model=tiny_bert(CountingBert), args=arguments(tmp_path, max_steps=4, optim="adafactor"),
        train_dataset=RandomIds(), lr_find_settings={"num_steps": 10},
    )  # fmt: skip
    with pytest.raises(
        ValueError, match=r"Adafactor has no momentum .* OneCycleTrainer\(\.\.\., momentum=None\)"
    ):
        trainer.train()
    assert CountingBert.calls == 0  # no sweep
    given = OneCycleTrainer(
        model=tiny_bert(), args=arguments(tmp_path, max_steps=4, optim="adafactor"),
        train_dataset=RandomIds(), max_lr=1e-3,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"^momentum: Adafactor has no momentum"):
        given.train()


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        ({"optimizer": "adamw"}, TypeError, "optimizer must be a torch.optim.Optimizer or None"),
        ({"compute_loss": "loss"}, TypeError, "compute_loss must be a function or None, got 'loss'"),
        ({"prepare": 1}, TypeError, "prepare must be a function or None, got 1"),
        ({"fine_tuning": "yes"}, TypeError, "fine_tuning must be True or False, got 'yes'"),
        ({"num_steps": 5}, ValueError, "num_steps must be an integer >= 10 to analyse, got 5"),
    ],
    ids=["optimizer", "compute_loss", "prepare", "fine_tuning", "num_steps"],
)  # fmt: skip
def test_lr_find_arguments_are_named(settings, error, message):
    # a user's check: optimizer="adamw" gave "'str' object has no attribute 'state_dict'"
    loader = torch.utils.data.DataLoader(RandomIds(), batch_size=8)
    with pytest.raises(error, match=message):
        lr_find(tiny_bert(), loader, **settings)


class _Columns:
    """Stands in for a `datasets.Dataset` (not a torch Dataset): samples, with column names."""

    column_names = ("input_ids", "labels")

    def __iter__(self):
        return iter([{"input_ids": [1, 2, 3], "labels": 0}])


@pytest.mark.parametrize(
    "data",
    [RandomIds(), None, [{"input_ids": torch.arange(8), "labels": 1}] * 4, _Columns()],
    ids=["dataset", "none", "list of sample dicts", "datasets.Dataset"],
)
def test_lr_find_wants_batches_not_a_dataset_of_samples(data):
    # a user's check: lr_find(model, train_dataset), the Trainer's argument, fed single samples
    # to BERT: "ValueError: not enough values to unpack (expected 2, got 1)" from its embeddings
    with pytest.raises(
        TypeError, match=r"train_data must be an iterable of batches \(a DataLoader"
    ):
        lr_find(tiny_bert(), data)


def test_the_trainers_own_scheduler_arguments_are_said_to_be_unused(tmp_path):
    # a user's check: warmup_steps=10 and lr_scheduler_type="cosine" (what get_scheduler users
    # set) were silently replaced by the 1cycle plan
    settings = {"warmup_steps": 10, "lr_scheduler_type": "cosine"}
    with pytest.warns(
        UserWarning,
        match=r"OneCycleTrainer: TrainingArguments lr_scheduler_type='cosine', warmup_steps=10 "
        r"are not used",
    ):
        OneCycleTrainer(
            model=tiny_bert(), args=arguments(tmp_path, **settings), train_dataset=RandomIds(),
            max_lr=1e-3,
        )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        OneCycleTrainer(
            model=tiny_bert(), args=arguments(tmp_path), train_dataset=RandomIds(), max_lr=1e-3
        )
    assert not [w for w in caught if "OneCycleTrainer:" in str(w.message)]


@pytest.mark.parametrize(
    ("max_steps", "need"),
    [(1, "a cycle needs at least 2; train longer"), (3, "warmup_fraction > 1/3 = 0.333")],
)
def test_a_run_too_short_for_the_phases_is_named_in_the_trainers_terms(tmp_path, max_steps, need):
    # a user's smoke test, max_steps=1 or 3: "total_steps must be >= 2, got 1" and "total_steps=3
    # is too few steps for the phases", about a total_steps they never set
    callback = Trainer(
        model=tiny_bert(), args=arguments(tmp_path, max_steps=max_steps),
        train_dataset=RandomIds(), callbacks=[OneCycleCallback(1e-3)],
    )  # fmt: skip
    expected = rf"OneCycleCallback: the Trainer makes {max_steps} optimizer update\(s\), .*{need}"
    with pytest.raises(ValueError, match=expected):
        callback.train()
    CountingBert.calls = 0
    trainer = OneCycleTrainer(
        model=tiny_bert(CountingBert), args=arguments(tmp_path, max_steps=max_steps),
        train_dataset=RandomIds(), lr_find_settings={"num_steps": 10},
    )  # fmt: skip
    with pytest.raises(ValueError, match=expected.replace("OneCycleCallback", "OneCycleTrainer")):
        trainer.train()
    assert CountingBert.calls == 0  # before the range test


@pytest.mark.parametrize(
    ("settings", "updates", "need"),
    [
        ({"num_train_epochs": 0.75}, 3, "warmup_fraction > 1/3"),  # ceil(0.75 x 4 batches)
        ({"num_train_epochs": 1, "gradient_accumulation_steps": 4}, 1, "at least 2"),
    ],
)
def test_a_run_set_by_epochs_too_short_for_the_phases_is_said_before_the_range_test(
    tmp_path, settings, updates, need
):
    # the check ran before the sweep only for max_steps; a run set by num_train_epochs was
    # refused after its range test had run (32 samples at batch 8: 4 batches an epoch)
    CountingBert.calls = 0
    trainer = OneCycleTrainer(
        model=tiny_bert(CountingBert), args=arguments(tmp_path, **settings),
        train_dataset=RandomIds(), lr_find_settings={"num_steps": 10},
    )  # fmt: skip
    expected = rf"OneCycleTrainer: the Trainer makes {updates} optimizer update\(s\), .*{need}"
    with pytest.raises(ValueError, match=expected):
        trainer.train()
    assert CountingBert.calls == 0  # before the range test


def test_a_scheduler_of_ones_own_is_refused_by_one_cycle_trainer(tmp_path):
    # a user's check: optimizers=(AdamW, StepLR) trained with the StepLR (LR 1e-3 throughout):
    # create_scheduler keeps a scheduler it is given, and max_lr=1e-2 went unused without a word
    model = tiny_bert()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 100)
    with pytest.raises(ValueError, match=r"OneCycleTrainer sets the LR itself, .* got StepLR"):
        OneCycleTrainer(
            model=model, args=arguments(tmp_path), train_dataset=RandomIds(),
            optimizers=(optimizer, scheduler), max_lr=1e-2,
        )  # fmt: skip


def test_one_cycle_scheduler_names_its_own_arguments():
    # a user's check: one_cycle_scheduler(optimizer, 100, ...) (get_scheduler's order) said
    # "total_steps must be an integer, got AdamW (" and forty lines of the optimizer's repr
    optimizer = torch.optim.AdamW(torch.nn.Linear(2, 1).parameters())
    with pytest.raises(TypeError, match=r"^num_training_steps must be an integer .* got AdamW$"):
        one_cycle_scheduler(optimizer, 100, max_lr=1e-3)
    with pytest.raises(ValueError, match=r"^num_training_steps must be >= 2, got 1$"):
        one_cycle_scheduler(1, optimizer, max_lr=1e-3)
    with pytest.raises(TypeError, match=r"one_cycle_scheduler: unknown settings \['warmup'\]"):
        one_cycle_scheduler(100, optimizer, max_lr=1e-3, warmup=0.1)


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"max_lr": "search", "fine_tuning": True},
      r"fine_tuning=True apply to the range test \(max_lr=None\) only; the search finds max_lr"),
     ({"max_lr": 1e-3, "fine_tuning": True},
      r"fine_tuning=True apply .*max_lr=0.001 is given, so no range test runs"),
     ({"max_lr": 1e-3, "lr_find_settings": {"num_steps": 50}},
      r"lr_find_settings apply .*max_lr=0.001 is given.*leave lr_find_settings unset")],
    ids=["search-fine_tuning", "max_lr-fine_tuning", "max_lr-lr_find_settings"],
)  # fmt: skip
def test_range_test_settings_without_a_range_test_are_refused(tmp_path, settings, message):
    # a user's checks: max_lr="search" with fine_tuning=True searched the same max_lr as
    # without it, and max_lr=1e-3 with lr_find_settings ran no range test; neither was said
    with pytest.raises(ValueError, match=message):
        OneCycleTrainer(
            model=tiny_bert(), args=arguments(tmp_path), train_dataset=RandomIds(), **settings
        )


def test_a_learning_rate_given_in_the_arguments_is_said_to_be_unused(tmp_path):
    # a user's check: learning_rate=3e-2 trained at max_lr 1e-3 without a word, while
    # lr_scheduler_type and warmup_steps in the same arguments were each named
    given = arguments(tmp_path, learning_rate=3e-2, max_steps=8)
    with pytest.warns(UserWarning, match=(
        r"OneCycleTrainer: TrainingArguments learning_rate=0.03 are not used: the 1cycle plan "
        r"sets the LR \(its peak: max_lr="
    )):  # fmt: skip
        OneCycleTrainer(model=tiny_bert(), args=given, train_dataset=RandomIds(), max_lr=1e-3)
    trainer = Trainer(model=tiny_bert(), args=given, train_dataset=RandomIds(),
                      callbacks=[OneCycleCallback(1e-3)])  # fmt: skip
    with pytest.warns(UserWarning, match=(
        r"OneCycleCallback: TrainingArguments learning_rate=0.03 have no effect: the 1cycle plan "
        r"sets every update's LR \(its peak: max_lr=0.001"
    )):  # fmt: skip
        trainer.train()
    # the default cannot be told from one given: not said
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        OneCycleTrainer(model=tiny_bert(), args=arguments(tmp_path), train_dataset=RandomIds(),
                        max_lr=1e-3)  # fmt: skip
    assert not [w for w in caught if "learning_rate" in str(w.message)]
