"""`OneCycleTrainer` resumed with other cycle settings: each named with both values and the one
used, not a silent change of the LR or β1; a tiny BERT (no data files)."""

import warnings

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from superconverge.huggingface import OneCycleTrainer  # noqa: E402
from tests.huggingface.tiny import RandomIds, arguments, tiny_bert  # noqa: E402

DATA = 64  # at batch 8: 8 updates an epoch


def _run(path, epochs, resume=None, **settings):
    trainer = OneCycleTrainer(
        model=tiny_bert(), train_dataset=RandomIds(DATA),
        args=arguments(path, num_train_epochs=epochs, save_strategy="epoch"), **settings,
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train(resume_from_checkpoint=resume)
    said = [str(w.message) for w in caught]
    assert not [m for m in said if "holding the final values" in m]  # said at the resume only
    return trainer, [m for m in said if "OneCycleTrainer:" in m]


def test_a_fixed_cycle_resumed_with_other_settings_names_each(tmp_path):
    # a user's check: momentum (0.9, 0.8) moved update 80's β1 from 0.938 to 0.888, and
    # warmup_fraction 0.5 its LR from 1.18e-4 to 2.22e-4, without a word
    _run(tmp_path / "first", 2, max_lr=1e-3)
    middle = str(tmp_path / "first" / "checkpoint-8")
    _, said = _run(tmp_path / "same", 2, resume=middle, max_lr=1e-3)
    assert said == []
    trainer, said = _run(tmp_path / "other", 2, resume=middle, max_lr=1e-3, momentum=(0.9, 0.8),
                         one_cycle_settings={"warmup_fraction": 0.5})  # fmt: skip
    assert said == [
        "OneCycleTrainer: the checkpoint's cycle had other settings (momentum (0.95, 0.85) → "
        "(0.9, 0.8), warmup_fraction 0.3 → 0.5): the plan is rebuilt for this run (its settings "
        "are used), so the LR jumps at the resume instead of continuing the saved cycle; resume "
        "with the settings the cycle was made for to continue it exactly"
    ]
    assert trainer.lr_scheduler.plan.momentum(0) == 0.9  # this run's, as said


def test_a_search_resumed_into_a_longer_run_with_other_momentum_says_its_plan_goes_on(tmp_path):
    # a user's check: a search's checkpoint resumed with 4 epochs after 3: the saved plan went
    # on, its last LR held for the extra epoch, said only mid-run ("holding the final values")
    _run(tmp_path / "first", 4, max_lr="search")
    middle = str(tmp_path / "first" / "checkpoint-8")
    trainer, said = _run(tmp_path / "longer", 5, resume=middle, max_lr="search",
                         momentum=(0.9, 0.8))  # fmt: skip
    assert said == [
        "OneCycleTrainer: the checkpoint's search was made for another run (its plan has 32 "
        "updates, this run's 40 (num_train_epochs, max_steps, batch size or accumulation "
        "changed); momentum (0.95, 0.85) there, (0.9, 0.8) here): a resumed search continues "
        "the checkpoint's plan, whose settings are used; past update 32 the LR holds the plan's "
        "final value; resume with the settings the search was made for, or train without "
        "resume_from_checkpoint for a new search"
    ]
    assert trainer.lr_scheduler.plan.total_steps == 32
    # other search constants: the checkpoint's go on, and are named (a reviewer's check: a
    # resume with search=EdgeSettings(divisor=10) searched at 3 without a word)
    from superconverge.training import EdgeSettings

    _, said = _run(tmp_path / "divisor", 4, resume=middle, max_lr="search",
                   search=EdgeSettings(divisor=10.0))  # fmt: skip
    assert len(said) == 1 and (
        "search=EdgeSettings: divisor 10.0 (the checkpoint's 3.0)" in said[0]
    ), said
