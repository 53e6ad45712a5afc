"""`hp_space`: the recipe's measurements as an Optuna search space, taken by a real Optuna study
and by Hugging Face's `Trainer.hyperparameter_search`."""

import pytest

optuna = pytest.importorskip("optuna")

from superconverge.finder.result import RangeTestResult  # noqa: E402
from superconverge.tuning import TunePlan, hp_space  # noqa: E402


def adamw_plan(max_lr=1e-3):
    return TunePlan(
        epochs=1, batch_size=16, max_lr=max_lr, min_lr=max_lr / 10, weight_decay=0.1,
        momentum=None, optimizer="adamw",
    )  # fmt: skip


def test_the_space_spans_the_recipe_s_candidates():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: hp_space(adamw_plan())(t)["learning_rate"], n_trials=20)
    lrs = [t.params["learning_rate"] for t in study.trials]
    assert all(5e-4 <= lr <= 2e-3 for lr in lrs) and max(lrs) / min(lrs) > 2
    assert {t.params["weight_decay"] for t in study.trials} <= {0.1, 0.03, 0.01, 0.0}
    sgd = TunePlan(epochs=1, batch_size=16, max_lr=0.1, min_lr=0.01, weight_decay=1e-4,
                   momentum=(0.95, 0.85), optimizer="sgd")  # fmt: skip
    assert hp_space(sgd)(optuna.create_study().ask())["weight_decay"] in (1e-4, 1e-3, 1e-5, 0.0)


def test_a_range_test_gives_its_lowest_loss_lr_over_10_to_3():
    result = RangeTestResult(
        lrs=(1e-3, 1e-2, 1e-1), losses=(2.0, 1.0, 3.0), smoothed_losses=(2.0, 1.0, 3.0),
        stop_reason="diverged", suggestions={}, max_lr=1e-3, min_lr=1e-4, rule="minimum",
        reason="", lowest_loss_lr=0.3,
    )  # fmt: skip
    values = hp_space(result, weight_decays=[0.05])(optuna.create_study().ask())
    assert 0.03 <= values["learning_rate"] <= 0.1 and values["weight_decay"] == 0.05
    with pytest.raises(ValueError, match="weight_decays must be finite numbers >= 0"):
        hp_space(result, weight_decays=[-1])
    with pytest.raises(TypeError, match="measured must be a RangeTestResult or a TunePlan"):
        hp_space(0.1)


@pytest.mark.data
@pytest.mark.slow  # two Hugging Face trials: ~30 s on 2 cores
def test_hugging_face_hyperparameter_search_takes_it(tmp_path):
    pytest.importorskip("transformers")
    from transformers import Trainer, TrainingArguments

    from tests.huggingface.sst2 import datasets, sst2_dir, tiny_bert

    if not sst2_dir().is_dir():
        pytest.skip("needs SST-2 under SUPERCONVERGE_DATA")
    train, val, vocab_size = datasets(train_size=64, val_size=32, vocab_size=500)
    arguments = TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=1, per_device_train_batch_size=16,
        eval_strategy="epoch", report_to=[], save_strategy="no", use_cpu=True,
        disable_tqdm=True, seed=0,
    )  # fmt: skip
    trainer = Trainer(
        model_init=lambda: tiny_bert(vocab_size),
        args=arguments,
        train_dataset=train,
        eval_dataset=val,
    )
    best = trainer.hyperparameter_search(
        direction="minimize", backend="optuna", hp_space=hp_space(adamw_plan()), n_trials=2
    )
    assert 5e-4 <= best.hyperparameters["learning_rate"] <= 2e-3
    assert best.hyperparameters["weight_decay"] in (0.1, 0.03, 0.01, 0.0)
