import math

import pytest
import torch

from superconverge.diagnostics.verdicts import diagnose, diagnose_by_run_length, diagnose_losses
from superconverge.training import History
from superconverge.tuning import TunePlan


@pytest.mark.parametrize(
    ("train", "val", "kind", "advice"),
    [
        (
            [2.0, 1.0, 0.6, 0.4],
            [2.0, 1.2, 0.8, 0.5],
            "underfitting",
            "train longer or raise max_lr",
        ),
        ([2.0, 1.0, 0.5, 0.3], [1.5, 0.8, 0.9, 1.0], "overfitting", "raise weight decay"),
        ([2.0, 1.0, 0.5, 0.45], [1.5, 0.70, 0.62, 0.615], "good", "keep these settings"),
        ([2.0, 1.0, math.nan], [1.5, 0.8, math.nan], "diverged", "lower max_lr"),
        ([2.0, 1.9, 1.8, 1.7, 1.6], [1.0, 1.5, 0.9, 1.4, 0.5], "unstable", "lower max_lr"),
        ([2.0], [1.5], "inconclusive", "at least 2 epochs"),
    ],
)
def test_remark_1_verdicts_with_next_steps(train, val, kind, advice):
    verdict = diagnose_losses(train, val)
    assert verdict.kind == kind, verdict.explanation
    assert advice in verdict.next_step


def test_overfitting_needs_the_training_loss_to_keep_falling():
    # both losses rose together: that is not overfitting
    assert diagnose_losses([1.0, 0.5, 0.6, 0.7], [1.0, 0.5, 0.6, 0.7]).kind != "overfitting"


def test_diagnose_any_history():
    history = History(status="completed", epochs=[
        {"epoch": 1.0, "train_loss": 2.0, "val_loss": 1.5},
        {"epoch": 2.0, "train_loss": 1.0, "val_loss": 0.8},
        {"epoch": 3.0, "train_loss": 0.5, "val_loss": 0.9},
        {"epoch": 4.0, "train_loss": 0.3, "val_loss": 1.1},
    ])  # fmt: skip
    verdict = diagnose(History.from_json(history.to_json()))
    assert verdict.kind == "overfitting" and verdict.evidence["best_epoch"] == 2
    diverged = History(status="diverged", message="max_lr 3 diverged at step 412", epochs=[])
    assert diagnose(diverged).kind == "diverged" and "412" in diagnose(diverged).explanation
    assert (
        diagnose(History(status="completed", epochs=[{"epoch": 1.0, "train_loss": 1.0}])).kind
        == "inconclusive"
    )


def test_diagnose_takes_a_tune_plan_and_names_what_it_takes_otherwise(tmp_path):
    history = History(status="completed", epochs=[
        {"epoch": 1.0, "train_loss": 2.0, "val_loss": 1.5},
        {"epoch": 2.0, "train_loss": 1.0, "val_loss": 0.8},
    ])  # fmt: skip
    plan = TunePlan(epochs=2, batch_size=8, max_lr=0.1, min_lr=0.01, weight_decay=0.0,
                    momentum=(0.95, 0.85), history=history)  # fmt: skip
    assert diagnose(plan) == diagnose(history)
    # a run folder's path crashed with AttributeError: 'str' object has no attribute 'epochs'
    for given in (str(tmp_path), tmp_path, None, TunePlan(2, 8, 0.1, 0.01, 0.0, None)):
        with pytest.raises(TypeError, match=r"history must be a History .*History\.from_json"):
            diagnose(given)


def test_a_run_that_never_learned_is_flagged_even_without_nan():
    stuck = History(status="completed", step_losses=[2.30 + 0.01 * (i % 3) for i in range(200)],
                    epochs=[{"epoch": 1.0, "train_loss": 2.31, "val_loss": 2.30}])  # fmt: skip
    verdict = diagnose(stuck)
    assert verdict.kind == "diverged" and "did not learn" in verdict.explanation
    assert "lower max_lr" in verdict.next_step
    learned = History(status="completed", step_losses=[2.3 * 0.99**i for i in range(200)],
                      epochs=[{"epoch": 1.0, "train_loss": 1.0, "val_loss": 0.9}])  # fmt: skip
    assert (
        diagnose(learned).kind == "inconclusive"
    )  # one epoch: the trend is unknown, but it learned


def test_a_continued_fit_of_a_trained_model_is_not_said_to_have_never_learned():
    # a user's check: a digits MLP at 97.9% validation accuracy, trained 2 more epochs at a low
    # LR, was "diverged: the model did not learn" (its training loss starts at its floor)
    from torch import nn

    from superconverge.data import load
    from superconverge.training import Trainer

    splits = load("digits")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    def trainer():
        return Trainer(model, nn.functional.cross_entropy, splits.train, splits.val,
                       batch_size=32, optimizer="adamw", progress=False)  # fmt: skip

    assert diagnose(trainer().fit_one_cycle(8, 0.01)).kind != "diverged"
    continued = trainer().fit_one_cycle(2, 1e-4)
    assert continued.epochs[-1]["val_accuracy"] > 0.95
    assert diagnose(continued).kind != "diverged"
    # without the validation accuracy (a regression, say) a falling validation loss says it too
    flat = [0.03 + 0.001 * (i % 3) for i in range(100)]
    falling = History(status="completed", step_losses=flat, epochs=[
        {"epoch": 1.0, "train_loss": 0.03, "val_loss": 0.060},
        {"epoch": 2.0, "train_loss": 0.03, "val_loss": 0.057},
    ])  # fmt: skip
    assert diagnose(falling).kind != "diverged"
    stuck = History(status="completed", step_losses=flat, epochs=[
        {"epoch": 1.0, "train_loss": 0.03, "val_loss": 0.060, "val_accuracy": 0.5},
        {"epoch": 2.0, "train_loss": 0.03, "val_loss": 0.0599, "val_accuracy": 0.5},
    ])  # fmt: skip
    assert diagnose(stuck).kind == "diverged"


def test_an_interrupted_run_is_inconclusive_not_underfitting():
    # a user's check: 2 of 10 epochs, interrupted: "underfitting: train longer or raise max_lr"
    epochs = [{"epoch": 1.0, "train_loss": 2.0, "val_loss": 1.5},
              {"epoch": 2.0, "train_loss": 1.0, "val_loss": 0.8}]  # fmt: skip
    verdict = diagnose(History(status="interrupted", epochs=epochs))
    assert verdict.kind == "inconclusive" and "interrupted after 2 epochs" in verdict.explanation
    assert "resume it" in verdict.next_step
    assert diagnose(History(status="completed", epochs=epochs)).kind == "underfitting"


def test_a_rise_within_the_noise_is_not_overfitting():
    # issue 17: the validation loss rose by 5e-4 at 100% validation accuracy, after falling by
    # 2: a rise of 4% of its minimum, but 0.03% of the run's improvement
    verdict = diagnose_losses([2.0, 0.3, 0.1, 0.05], [2.0, 0.3, 0.0120, 0.0125])
    assert verdict.kind == "good"
    assert "within the curve's noise" in verdict.explanation
    assert verdict.evidence["rise"] == pytest.approx(5e-4)


def test_a_rise_no_bigger_than_an_earlier_wobble_is_noise_a_bigger_one_overfitting():
    train = [2.0, 1.0, 0.8, 0.6, 0.5, 0.4]
    wobbly = [2.0, 1.0, 1.2, 0.9, 0.95, 1.05]  # rose 0.2 mid-run; the final rise is 0.15
    assert diagnose_losses(train, wobbly).kind != "overfitting"
    assert diagnose_losses(train, [2.0, 1.0, 1.2, 0.9, 1.0, 1.2]).kind == "overfitting"  # 0.3


def test_a_one_epoch_run_is_judged_by_a_shorter_run_at_the_same_settings():
    # 4x the samples (2 doublings) and 0.64x the loss: 20% per doubling
    verdict = diagnose_by_run_length(1.0, 1_000, 0.64, 4_000, 0.05)
    assert verdict.kind == "underfitting" and "train longer" in verdict.next_step
    assert verdict.evidence["fall_per_doubling"] == pytest.approx(0.2)
    assert "20.0% per doubling" in verdict.explanation and "4.0x fewer" in verdict.explanation
    # the same fall over 64x the samples (6 doublings) is 7% per doubling: under a noise of 8%
    levelled = diagnose_by_run_length(1.0, 1_000, 0.64, 64_000, 0.08)
    assert levelled.kind == "good" and "within the noise" in levelled.explanation
    assert diagnose_by_run_length(1.0, 1_000, 0.64, 64_000, 0.05).kind == "underfitting"
    # what cannot tell: too little longer, a longer run that ended higher, losses off the log scale
    assert diagnose_by_run_length(1.0, 1_000, 0.5, 1_900, 0.05) is None
    assert diagnose_by_run_length(1.0, 1_000, 1.2, 8_000, 0.05) is None
    for short, final in ((0.0, 0.5), (1.0, 0.0), (-1.0, -2.0), (math.nan, 0.5), (1.0, math.inf)):
        assert diagnose_by_run_length(short, 1_000, final, 8_000, 0.05) is None
    assert diagnose_by_run_length(1.0, 0, 0.5, 8_000, 0.05) is None


def test_a_last_fall_larger_than_the_whole_improvement_is_not_a_share_above_100_percent():
    # seen on digits, 3 epochs: 0.26 → 0.39 (the LR at its peak) → 0.078
    verdict = diagnose_losses([0.8, 0.5, 0.1], [0.26, 0.3917, 0.07811])
    assert verdict.kind == "underfitting"
    assert "more than the run's whole improvement: it had risen before" in verdict.explanation
    assert "%" not in verdict.explanation
    usual = diagnose_losses([2.0, 1.0, 0.6, 0.4], [2.0, 1.2, 0.8, 0.5]).explanation
    assert "20% of the run's improvement" in usual


def test_a_slow_fall_at_the_end_is_good_but_not_called_levelled_off():
    # an acceptance run: 0.7595 → 0.2163 → 0.1638, a 24% fall in the last epoch but 9% of the
    # run's improvement (below the 10% that reads as underfitting)
    verdict = diagnose_losses([0.82, 0.53, 0.23], [0.7595, 0.2163, 0.1638])
    assert verdict.kind == "good"
    assert "levelled off" not in verdict.explanation
    assert "still falling but slowly" in verdict.explanation and "removed 9%" in verdict.explanation
    flat = diagnose_losses([0.82, 0.53, 0.23], [0.7595, 0.1638, 0.1640])
    assert flat.kind == "good" and "levelled off" in flat.explanation


def test_a_good_verdict_gives_the_reason_a_rise_did_not_count():
    # a user's run: "its rise of 0.0075 is within the curve's noise (0.0072)" — it was not; the
    # rise was 1.6% of the best loss, under the 2% that reads as overfitting
    verdict = diagnose_losses([1.0, 0.6, 0.5, 0.45], [0.60, 0.50, 0.4690, 0.4765])
    assert verdict.kind == "good" and "noise" not in verdict.explanation
    assert "1.6% of its best, within the 2% that reads as overfitting" in verdict.explanation
    flat_train = diagnose_losses([1.0, 0.6, 0.5, 0.55], [0.8, 0.5, 0.40, 0.45])
    assert flat_train.kind == "good" and "training loss did not fall" in flat_train.explanation


def test_epochs_without_a_validation_loss_keep_their_numbers():
    # validated every other epoch: the best is epoch 4 (not the 2nd point), and the training
    # loss of epoch 4 is the one the rise is weighed against (was: lists of unequal length,
    # so no overfitting was ever found)
    verdict = diagnose_losses([2.0, 1.0, 0.5, 0.3, 0.2, 0.1], [None, 1.0, None, 0.8, None, 1.2])
    assert verdict.kind == "overfitting"
    assert verdict.evidence["best_epoch"] == 4
    assert "lowest at epoch 4 (0.8)" in verdict.explanation


def test_an_epoch_without_a_training_loss_is_not_a_type_error():
    # was: TypeError float(None)
    verdict = diagnose_losses([2.0, 1.0, None, 0.3], [2.0, 1.0, 1.1, 1.3])
    assert verdict.kind == "overfitting"  # the training losses at the best epoch and the end
    # unknown at the best epoch: overfitting cannot be told from a rise
    assert diagnose_losses([2.0, None, 0.5, 0.3], [2.0, 1.0, 1.1, 1.3]).kind != "overfitting"
    assert diagnose_losses([None, None, None], [2.0, 1.0, 0.9]).kind == "good"
