"""OneCycleCallback resumed into a run of another length: said, not a silent jump of the LR."""

import warnings

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from transformers import Trainer  # noqa: E402

from superconverge import one_cycle  # noqa: E402
from superconverge.huggingface import OneCycleCallback  # noqa: E402
from tests.huggingface.tiny import RandomIds, arguments, tiny_bert  # noqa: E402


def _train(output_dir, max_steps, resume=None, max_lr=1e-3, **settings):
    callback = OneCycleCallback(max_lr, **settings)
    trainer = Trainer(
        model=tiny_bert(), train_dataset=RandomIds(), callbacks=[callback],
        args=arguments(output_dir, max_steps=max_steps, save_strategy="steps", save_steps=4),
    )  # fmt: skip
    trainer.train(resume_from_checkpoint=resume)
    return callback


def test_a_resume_into_a_run_of_another_length_says_the_lr_jumps(tmp_path):
    # a user's check: resuming an 8-update run's checkpoint-4 with max_steps=16 rebuilt the plan
    # for 16 updates: update 4 used LR 1e-3 where the saved cycle was at 5.6e-4, without a word
    _train(tmp_path, 8)
    checkpoint = str(tmp_path / "checkpoint-4")
    with pytest.warns(UserWarning) as caught:
        longer = _train(tmp_path / "longer", 16, resume=checkpoint)
    said = [str(w.message) for w in caught if "OneCycleCallback:" in str(w.message)]
    old, new = one_cycle(8, 1e-3).lr(4), one_cycle(16, 1e-3).lr(4)
    assert said == [
        "OneCycleCallback: the checkpoint's cycle has 8 updates, this Trainer makes 16 "
        "(num_train_epochs, max_steps, batch size or accumulation changed): the plan is rebuilt "
        f"for this run, so update 4 uses LR {new:.3g} where the saved cycle was at {old:.3g}; "
        "resume with the settings the cycle was made for to continue it exactly"
    ]
    assert longer.plan == one_cycle(16, 1e-3)  # rebuilt, as the Trainer rebuilds its own
    with warnings.catch_warnings(record=True) as same:
        warnings.simplefilter("always")
        _train(tmp_path / "same", 8, resume=checkpoint)
    assert not [w for w in same if "OneCycleCallback:" in str(w.message)]


def test_a_resume_with_another_max_lr_says_the_lr_jumps(tmp_path):
    # a user's check: a run saved at max_lr 0.05 resumed with 0.5 (another lr_find) went on at
    # 10x the LR without a word; only a change of length was said
    _train(tmp_path, 8)
    with pytest.warns(UserWarning) as caught:
        _train(tmp_path / "hotter", 8, resume=str(tmp_path / "checkpoint-4"), max_lr=1e-2)
    said = [str(w.message) for w in caught if "OneCycleCallback:" in str(w.message)]
    old, new = one_cycle(8, 1e-3).lr(4), one_cycle(8, 1e-2).lr(4)
    assert said == [
        "OneCycleCallback: the checkpoint's cycle peaks at 0.001, this one at 0.01: the plan is "
        f"rebuilt for this run, so update 4 uses LR {new:.3g} where the saved cycle was at "
        f"{old:.3g}; resume with the settings the cycle was made for to continue it exactly"
    ]


def test_a_checkpoint_without_the_callbacks_state_resumes_and_saves_again(tmp_path):
    # a checkpoint of the previous release (the callback kept no state) or of a run without the
    # callback: the Trainer's next save read stateful_callbacks["OneCycleCallback"] (KeyError)
    import json

    _train(tmp_path, 8)
    state_file = tmp_path / "checkpoint-4" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["stateful_callbacks"].pop("OneCycleCallback")
    state_file.write_text(json.dumps(state))
    _train(tmp_path / "resumed", 8, resume=str(tmp_path / "checkpoint-4"))
    saved = json.loads((tmp_path / "resumed" / "checkpoint-8" / "trainer_state.json").read_text())
    assert saved["stateful_callbacks"]["OneCycleCallback"]["attributes"] == {"cycle_steps": 8}


def test_a_resume_with_other_cycle_settings_says_the_lr_jumps(tmp_path):
    # a user's check: resuming with another warmup_fraction and momentum sent update 4 back into
    # a warm-up without a word; the checkpoint kept the settings, only length and peak were read
    _train(tmp_path, 8)
    with pytest.warns(UserWarning) as caught:
        _train(tmp_path / "other", 8, resume=str(tmp_path / "checkpoint-4"),
               warmup_fraction=0.6, momentum=(0.9, 0.8))  # fmt: skip
    said = [str(w.message) for w in caught if "OneCycleCallback:" in str(w.message)]
    old = one_cycle(8, 1e-3).lr(4)
    new = one_cycle(8, 1e-3, warmup_fraction=0.6, momentum=(0.9, 0.8)).lr(4)
    assert said == [
        "OneCycleCallback: the checkpoint's cycle had other settings (momentum (0.95, 0.85) → "
        "(0.9, 0.8), warmup_fraction 0.3 → 0.6): the plan is rebuilt for this run, so update 4 "
        f"uses LR {new:.3g} where the saved cycle was at {old:.3g}; resume with the settings the "
        "cycle was made for to continue it exactly"
    ]


def test_two_one_cycles_over_the_same_updates_are_refused(tmp_path):
    # a user's check: OneCycleTrainer(max_lr=1e-3) with OneCycleCallback(max_lr=1e-2), or two
    # callbacks, trained at the last one's peak while trainer.lr_scheduler.plan said 1e-3
    from superconverge.huggingface import OneCycleTrainer

    def trainer(cls=Trainer, callbacks=(), **kwargs):
        return cls(model=tiny_bert(), train_dataset=RandomIds(), callbacks=list(callbacks),
                   args=arguments(tmp_path, max_steps=8), **kwargs)  # fmt: skip

    two = trainer(callbacks=[OneCycleCallback(1e-3), OneCycleCallback(1e-2)])
    with pytest.raises(ValueError, match=r"two OneCycleCallbacks in one Trainer \(max_lr 0\.001 and 0\.01\)"):
        two.train()
    assert two.state.global_step == 0  # refused before any update
    both = trainer(OneCycleTrainer, callbacks=[OneCycleCallback(1e-2)], max_lr=1e-3)
    with pytest.raises(ValueError, match="the Trainer's own scheduler is already a superconverge plan"):
        both.train()
    assert both.state.global_step == 0
    alone = trainer(callbacks=[OneCycleCallback(1e-3)])
    alone.train()
    alone.train()  # a second train() with the same callback: a new state, not two writers
    assert alone.state.global_step == 8


def test_a_checkpoint_path_that_is_no_folder_is_refused_before_the_range_test(tmp_path):
    # a typo: a whole range test ran and wrote output_dir/lr_find.json before transformers
    # said "Can't find a valid checkpoint"
    from superconverge.huggingface import OneCycleTrainer

    trainer = OneCycleTrainer(model=tiny_bert(), train_dataset=RandomIds(),
                              args=arguments(tmp_path / "new", max_steps=8))  # fmt: skip
    missing = tmp_path / "old" / "checkpoint-3"
    with pytest.raises(ValueError, match=f"resume_from_checkpoint='{missing}' is not a folder"):
        trainer.train(resume_from_checkpoint=str(missing))
    assert not (tmp_path / "new" / "lr_find.json").exists()  # the Trainer made the folder
