"""``Trainer.hyperparameter_search`` with `superconverge.tuning.hp_space`: each trial's
``learning_rate`` is the cycle's max_lr, in `OneCycleTrainer` and `OneCycleCallback`."""

import pytest

pytest.importorskip("transformers")
pytest.importorskip("optuna")
torch = pytest.importorskip("torch")

import optuna  # noqa: E402
from transformers import Trainer, TrainerCallback  # noqa: E402

from superconverge.huggingface import OneCycleCallback, OneCycleTrainer  # noqa: E402
from superconverge.tuning import TunePlan, hp_space  # noqa: E402
from tests.huggingface.tiny import RandomIds, arguments, tiny_bert  # noqa: E402

PLAN = TunePlan(epochs=1, batch_size=8, max_lr=1e-3, min_lr=1e-4, weight_decay=0.01,
                momentum=(0.95, 0.85), optimizer="adamw")  # fmt: skip


class _Peaks(TrainerCallback):
    """Each trial's learning_rate and the peak of the plan its updates followed."""

    def __init__(self, plan_of):
        self.plan_of, self.seen = plan_of, []

    def on_train_end(self, args, state, control, **kwargs):
        self.seen.append((args.learning_rate, self.plan_of(kwargs).max_lr))


def _search(trainer):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return trainer.hyperparameter_search(
        backend="optuna", direction="minimize", hp_space=hp_space(PLAN), n_trials=2,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )  # fmt: skip


def _settings(path):
    return {"model_init": lambda: tiny_bert(), "args": arguments(path, max_steps=8),
            "train_dataset": RandomIds(), "eval_dataset": RandomIds(16, seed=1)}  # fmt: skip


def test_each_trials_learning_rate_is_the_one_cycle_trainers_max_lr(tmp_path):
    # a user's check: every trial trained at max_lr 1e-3, and BestRun named another LR
    peaks = _Peaks(lambda kwargs: kwargs["lr_scheduler"].plan)
    trainer = OneCycleTrainer(**_settings(tmp_path), callbacks=[peaks], max_lr=1e-3)
    best = _search(trainer)
    assert len(peaks.seen) == 2 and peaks.seen[0][1] != peaks.seen[1][1]
    for learning_rate, peak in peaks.seen:
        assert peak == pytest.approx(learning_rate, rel=1e-12)
    assert best.hyperparameters["learning_rate"] in [lr for lr, _ in peaks.seen]
    # Hugging Face's next step: the best run's values set on the arguments, then train(); the
    # cycle does not read learning_rate, and says so (a reviewer's check: it trained at 1e-3
    # without a word)
    chosen = best.hyperparameters["learning_rate"]
    trainer.args.learning_rate = chosen
    with pytest.warns(UserWarning, match=r"learning_rate is .* set trainer.max_lr = "):
        trainer.train()
    assert trainer.lr_scheduler.plan.max_lr == 1e-3  # the max_lr given again
    trainer.max_lr = chosen
    trainer.train()
    assert trainer.lr_scheduler.plan.max_lr == chosen


def test_each_trials_learning_rate_is_the_callbacks_max_lr(tmp_path):
    callback = OneCycleCallback(max_lr=1e-3)
    peaks = _Peaks(lambda kwargs: callback.plan)
    trainer = Trainer(**_settings(tmp_path), callbacks=[callback, peaks])
    _search(trainer)
    assert len(peaks.seen) == 2 and peaks.seen[0][1] != peaks.seen[1][1]
    for learning_rate, peak in peaks.seen:
        assert peak == pytest.approx(learning_rate, rel=1e-12)
    trainer.train()  # after the search: the max_lr given again
    assert callback.plan.max_lr == callback.max_lr == 1e-3


def test_a_trials_learning_rate_with_the_search_is_refused(tmp_path):
    trainer = OneCycleTrainer(**_settings(tmp_path), max_lr="search")
    with pytest.raises(ValueError, match=(
        r"OneCycleTrainer: the trial sets learning_rate=[0-9.e-]+, which this run does not use "
        r"\(max_lr='search' finds the cycle's peak\); give OneCycleTrainer\(max_lr=...\)"
    )):  # fmt: skip
        _search(trainer)


def test_a_trials_learning_rate_with_a_range_test_is_refused_before_it_runs(tmp_path, monkeypatch):
    # a user's check: with max_lr=None the refusal came only after the first trial's range test
    trainer = OneCycleTrainer(**_settings(tmp_path))
    monkeypatch.setattr(trainer, "run_lr_find", lambda: pytest.fail("the range test ran"))
    with pytest.raises(ValueError, match=(
        r"the trial sets learning_rate=[0-9.e-]+, which this run does not use \(max_lr=None: "
        r"the range test sets the cycle's peak\)"
    )):  # fmt: skip
        _search(trainer)


def test_a_given_max_lr_reads_each_trials_hp_space_once(tmp_path):
    # a reviewer's check: the early refusal called the user's hp_space a second time per
    # trial, also where a max_lr is given and nothing can be refused
    calls = []

    def counted(trial):
        calls.append(trial.number)
        return hp_space(PLAN)(trial)

    trainer = OneCycleTrainer(**_settings(tmp_path), max_lr=1e-3)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trainer.hyperparameter_search(backend="optuna", direction="minimize", hp_space=counted,
                                  n_trials=2, sampler=optuna.samplers.RandomSampler(seed=0))  # fmt: skip
    assert calls == [0, 1]
