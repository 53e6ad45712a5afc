import functools
import math

import pytest
import torch

from superconverge.batches import check_first_batch, count, forward, split_batch
from superconverge.metrics import (
    BUILTINS,
    MetricTotals,
    accuracy,
    binary_accuracy,
    check_metrics,
    mae,
    mse,
    resolve_metrics,
    top5,
)

LOGITS = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.0, 0.4, 0.6]])


# ---------------------------------------------------------------- built-ins, by hand
def test_accuracy_and_top_k_by_hand():
    targets = torch.tensor([1, 1, 2, 0])
    assert float(accuracy(LOGITS, targets)) == pytest.approx(2 / 4)  # rows 0 and 2 right
    assert float(top5(LOGITS, targets)) == 1.0  # three classes: every target is in the top 5


def test_outputs_that_fit_both_class_layouts_are_said_to_be_read_on_dimension_1():
    # a user's check: (B, 8, 8) logits with HF layout and length == classes scored 0.22 silently
    with pytest.warns(UserWarning, match=r"fit both class layouts .* accuracy reads dimension 1"):
        check_metrics(
            resolve_metrics("auto"), torch.zeros(2, 8, 8), torch.zeros(2, 8, dtype=torch.long)
        )


def test_sequence_accuracy_in_both_layouts_and_ignore_index():
    # (N=1, T=3, C=2) Hugging Face layout; the third position has no target
    logits = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]])
    targets = torch.tensor([[0, 0, -100]])
    assert float(accuracy(logits, targets)) == pytest.approx(1 / 2)
    assert float(accuracy(logits.transpose(1, 2), targets)) == pytest.approx(1 / 2)  # (N, C, T)


def test_mse_and_mae_by_hand_with_a_trailing_unit_dimension():
    outputs = torch.tensor([[1.0], [3.0]])
    targets = torch.tensor([0.0, 1.0])
    assert float(mse(outputs, targets)) == pytest.approx((1 + 4) / 2)
    assert float(mae(outputs, targets)) == pytest.approx((1 + 2) / 2)


def test_top5_of_five_classes_or_fewer_is_said_to_be_always_one():
    # a user's check: top5 on 3 classes reported 1.0 without a word
    with pytest.warns(UserWarning, match="'top5' of a model with 3 outputs is 1.0 whatever"):
        assert check_metrics(resolve_metrics(["top5"]), LOGITS, torch.tensor([1, 1, 2, 0])) == [
            "top5"
        ]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ten classes: a real top five
        check_metrics(resolve_metrics(["top5"]), torch.randn(4, 10), torch.tensor([1, 1, 2, 0]))


def test_builtins_are_reported_only_where_they_apply():
    auto = resolve_metrics("auto")
    assert check_metrics(auto, LOGITS, torch.tensor([1, 1, 2, 0])) == ["accuracy"]
    assert check_metrics(auto, torch.zeros(4, 1), torch.zeros(4)) == ["mse", "mae"]  # regression
    assert check_metrics(auto, torch.zeros(4, 5), torch.ones(4, 5)) == ["mse", "mae"]  # multi-label
    # accuracy asked for by name on a regression: not reported rather than a meaningless 0.0
    with pytest.warns(UserWarning, match="'accuracy' does not apply"):
        assert check_metrics(resolve_metrics(["accuracy"]), torch.zeros(4, 1), torch.zeros(4)) == []


def test_binary_accuracy_by_hand_on_logits_probabilities_and_multi_label():
    # logits: right when on the target's side of 0; a soft target of 0.5 or more counts as 1
    logits = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]])
    assert float(binary_accuracy(logits, torch.tensor([1.0, 1.0, 0.9, 0.0]))) == pytest.approx(
        3 / 4
    )
    # multi-label: every label counts once (Keras' binary_accuracy)
    multi = torch.tensor([[1.0, -1.0, 2.0], [-2.0, -1.0, 3.0]])
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    assert float(binary_accuracy(multi, labels)) == pytest.approx(4 / 6)
    # the same outputs as probabilities (a model trained with BCELoss) are read at 0.5
    probabilities = torch.tensor([[0.9], [0.4], [0.6], [0.1]])
    targets = torch.tensor([1.0, 1.0, 0.0, 0.0])
    for loss in (torch.nn.functional.binary_cross_entropy, torch.nn.BCELoss()):
        (metric,) = resolve_metrics(["binary_accuracy"], loss)
        assert float(metric.fn(probabilities, targets)) == pytest.approx(2 / 4)
    (on_logits,) = resolve_metrics(["binary_accuracy"])  # every output > 0: all read as 1
    assert float(on_logits.fn(probabilities, targets)) == pytest.approx(2 / 4)
    assert float(on_logits.fn(probabilities - 0.5, targets)) == pytest.approx(2 / 4)
    assert float(on_logits.fn(-probabilities, targets)) == pytest.approx(2 / 4)


def test_auto_with_a_binary_loss_reports_binary_accuracy_not_the_mse_of_logits():
    # the user's case: --loss bce_with_logits reported MSE and MAE of raw logits against 0/1
    with_logits = torch.nn.functional.binary_cross_entropy_with_logits
    weighted = functools.partial(with_logits, pos_weight=torch.tensor(2.0))  # a partial too
    for loss in (with_logits, torch.nn.BCEWithLogitsLoss(), torch.nn.BCELoss(), weighted):
        auto = resolve_metrics("auto", loss)
        assert check_metrics(auto, torch.zeros(4, 5), torch.ones(4, 5)) == ["binary_accuracy"]
        assert check_metrics(auto, torch.zeros(4, 1), torch.ones(4)) == ["binary_accuracy"]
    # other losses keep the auto set (a regression's mse and mae, a classifier's accuracy)
    auto = resolve_metrics("auto", torch.nn.functional.mse_loss)
    assert check_metrics(auto, torch.zeros(4, 1), torch.zeros(4)) == ["mse", "mae"]
    assert check_metrics(resolve_metrics("auto", torch.nn.functional.cross_entropy), LOGITS,
                         torch.tensor([1, 1, 2, 0])) == ["accuracy"]  # fmt: skip
    # targets outside [0, 1] (a regression), or class indices, are not a binary task
    with pytest.warns(UserWarning, match="'binary_accuracy' does not apply"):
        assert check_metrics(resolve_metrics(["binary_accuracy"]), torch.zeros(4, 1),
                             torch.tensor([0.0, 1.0, 2.5, -1.0])) == []  # fmt: skip
    # accuracy named on a multi-label task points to the metric that reads it
    with pytest.warns(UserWarning, match="not reported .*binary_accuracy reads them"):
        assert (
            check_metrics(resolve_metrics(["accuracy"]), torch.zeros(4, 3), torch.ones(4, 3)) == []
        )
    with pytest.warns(UserWarning, match="'binary_accuracy' does not apply"):
        assert check_metrics(resolve_metrics(["binary_accuracy"]), LOGITS,
                             torch.tensor([1, 1, 2, 0])) == []  # fmt: skip


def test_auto_with_a_cross_entropy_on_class_probabilities_reports_their_accuracy():
    # mixup / soft labels: F.cross_entropy(logits, probabilities) reported val_mse and val_mae
    # of the logits against the probabilities, and no accuracy
    probabilities = torch.tensor(
        [[0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.0, 0.3, 0.7], [0.5, 0.25, 0.25]]
    )  # arg-max 1, 2, 2, 0 against LOGITS' 1, 0, 2, 2: 2 of 4 right
    smoothed = functools.partial(torch.nn.functional.cross_entropy, label_smoothing=0.1)
    for loss in (torch.nn.functional.cross_entropy, torch.nn.CrossEntropyLoss(), smoothed):
        auto = resolve_metrics("auto", loss)
        assert check_metrics(auto, LOGITS, probabilities) == ["accuracy"]
        totals = MetricTotals(auto)
        totals.add(LOGITS, probabilities, 4)
        assert totals.result() == {"accuracy": pytest.approx(0.5)}
        totals = MetricTotals(auto)
        totals.add(LOGITS, torch.tensor([1, 0, 0, 0]), 4)  # class indices as before
        assert totals.result() == {"accuracy": pytest.approx(0.5)}
    # named, with a cross-entropy, accuracy reads the probabilities too; without a loss to tell,
    # float targets of the outputs' shape may be a regression's: not read as classes
    named = resolve_metrics(["accuracy"], torch.nn.functional.cross_entropy)
    assert check_metrics(named, LOGITS, probabilities) == ["accuracy"]
    with pytest.warns(UserWarning, match="'accuracy' does not apply"):
        assert check_metrics(resolve_metrics(["accuracy"]), LOGITS, probabilities) == []


# ---------------------------------------------------------------- what users write
def test_metrics_from_names_callables_and_dicts():
    def max_error(outputs, targets):
        return (outputs.squeeze(1) - targets).abs().max()

    assert [m.name for m in resolve_metrics("mse")] == ["mse"]
    assert [m.name for m in resolve_metrics(["mae", max_error])] == ["mae", "max_error"]
    assert [m.name for m in resolve_metrics({"worst": max_error, "err": "mae"})] == ["worst", "err"]
    assert resolve_metrics(None) == () and resolve_metrics(()) == ()


@pytest.mark.parametrize(
    ("metrics", "error", "message"),
    [
        ("f1", ValueError, "unknown built-in 'f1'; the built-ins are accuracy, top5, mse, mae"),
        (["mse", "mse"], ValueError, r"each name may appear once, got \['mse'\]"),
        ({"loss": "mse"}, ValueError, "'loss' is the validation loss itself"),
        ([3], TypeError, "metrics must hold names or callables, got 3"),
        ({"x": 3}, TypeError, r"metrics\['x'\] must be a built-in name or a callable"),
        (3, TypeError, "metrics must be 'auto'"),
    ],
)
def test_bad_metric_specs_are_named(metrics, error, message):
    with pytest.raises(error, match=message):
        resolve_metrics(metrics)


def test_a_metric_that_raises_is_named_with_the_shapes():
    def broken(outputs, targets):
        raise RuntimeError("no")

    with pytest.raises(
        ValueError, match=r"metrics\['broken'\] raised RuntimeError on outputs \(4, 3\)"
    ):
        check_metrics(resolve_metrics([broken]), LOGITS, torch.tensor([1, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"metrics\['vector'\] must return a number"):
        check_metrics(
            resolve_metrics({"vector": lambda o, t: o}), LOGITS, torch.tensor([1, 1, 2, 0])
        )


def test_totals_are_sample_weighted_means_over_batches():
    totals = MetricTotals(resolve_metrics({"mae": "mae", "count": lambda o, t: 1.0}))
    totals.add(torch.tensor([[1.0], [1.0]]), torch.tensor([0.0, 0.0]), 2)  # mae 1
    totals.add(torch.tensor([[4.0]]), torch.tensor([0.0]), 1)  # mae 4
    assert totals.result() == {"mae": pytest.approx((2 * 1 + 4) / 3), "count": 1.0}
    assert MetricTotals(resolve_metrics("mse")).values() == []  # nothing added, nothing reported
    assert math.isnan(totals.values(torch.tensor([0.0, 0.0, 0.0]))[0])  # no samples on any rank


def test_builtins_cover_the_documented_names():
    assert set(BUILTINS) == {"accuracy", "top5", "mse", "mae", "binary_accuracy"}


# ---------------------------------------------------------------- the batch hook
def test_split_batch_reads_pairs_dicts_and_the_hook():
    assert split_batch([1, 2]) == (1, 2)
    assert split_batch({"x": 1, "label": 2}) == ({"x": 1}, 2)
    assert split_batch((1, 2, 3), lambda b: (b[0], b[2])) == (1, 3)
    with pytest.raises(TypeError, match=r"val_data yields dict batches with keys \['a', 'b'\]"):
        split_batch({"a": 1, "b": 2}, name="val_data")
    with pytest.raises(TypeError, match="got a tensor of shape"):
        split_batch(torch.zeros(3, 2))
    with pytest.raises(
        TypeError, match=r"batch_fn must return an \(inputs, targets\) pair, got a int"
    ):
        split_batch((1, 2), lambda b: 3)
    with pytest.raises(TypeError, match="batch_fn raised KeyError"):
        split_batch({"y": 1}, lambda b: b["x"])


class KeywordModel(torch.nn.Module):
    """A Hugging Face-like model: keyword inputs, an output object with logits."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.EmbeddingBag(10, 2)

    def forward(self, input_ids, attention_mask=None):
        return {"logits": self.embed(input_ids)}


def test_dict_inputs_reach_the_model_as_keywords_and_logits_come_out():
    inputs, targets = split_batch(
        {"input_ids": torch.tensor([[1, 2], [3, 4]]), "labels": torch.tensor([0, 1])}
    )
    outputs = forward(KeywordModel(), inputs)
    assert outputs.shape == (2, 2) and count(targets) == 2
    check_first_batch(KeywordModel(), torch.nn.functional.cross_entropy, inputs, targets)


def test_first_batch_check_names_shapes_and_leaves_the_mode():
    model = torch.nn.Linear(3, 2)
    with pytest.raises(
        ValueError,
        match=r"model outputs of shape \(4, 2\) and targets of shape \(4,\) \(torch.float32\) \(val_data\)",
    ):
        check_first_batch(
            model, torch.nn.functional.mse_loss, torch.zeros(4, 3), torch.zeros(4), name="val_data"
        )
    with pytest.raises(
        ValueError,
        match=r"the model cannot take the training inputs of shape \(4, 5\) \(torch.float32\) \(train_data\)",
    ):
        check_first_batch(model, torch.nn.functional.mse_loss, torch.zeros(4, 5), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="loss_fn must return a scalar tensor"):
        check_first_batch(model, lambda o, t: o, torch.zeros(4, 3), torch.zeros(4, 2))
    assert model.training
    outputs = check_first_batch(
        model, torch.nn.functional.mse_loss, torch.zeros(4, 3), torch.zeros(4, 2)
    )
    assert outputs.shape == (4, 2)


def test_a_named_metric_that_does_not_apply_warns_and_auto_stays_quiet():
    # a user's check: metrics=["accuracy"] on a regression was dropped without a word
    import warnings

    outputs, targets = torch.randn(8, 1), torch.randn(8, 1)
    with pytest.warns(UserWarning, match=r"metrics: 'accuracy' does not apply .* not reported"):
        names = check_metrics(resolve_metrics(["accuracy", "mse"]), outputs, targets)
    assert names == ["mse"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "auto" picks what applies: nothing to warn about
        assert check_metrics(resolve_metrics("auto"), outputs, targets) == ["mse", "mae"]


def test_auto_under_an_unknown_loss_on_0_1_targets_points_to_binary_accuracy():
    # an auditor's check: a multi-label task with a loss of the user's own reported "test mse
    # 17.6" (logits against 0/1 labels) without a word
    import warnings

    def my_bce(outputs, targets):
        return torch.nn.functional.binary_cross_entropy_with_logits(outputs, targets)

    labels = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    with pytest.warns(UserWarning, match=r"targets hold only 0 and 1 .* name the metric: "
                      r"binary_accuracy"):  # fmt: skip
        assert check_metrics(resolve_metrics("auto", my_bce), torch.randn(2, 3), labels) == [
            "mse",
            "mae",
        ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # soft targets or a regression's: nothing to say
        check_metrics(resolve_metrics("auto", my_bce), torch.randn(2, 3), labels * 0.5 + 0.2)
        check_metrics(resolve_metrics("auto", my_bce), torch.randn(2, 1), torch.randn(2, 1))
        named = resolve_metrics(["mse", "binary_accuracy"], my_bce)  # the user chose
        check_metrics(named, torch.randn(2, 3), labels)


def test_a_named_metric_that_does_not_apply_names_the_built_ins_that_do():
    # a user's check: --metric mae on a classification said only "not reported"
    outputs, targets = torch.randn(8, 10), torch.randint(0, 10, (8,))
    with pytest.warns(UserWarning, match=r"'mae' does not apply .*apply: accuracy, top5$"):
        assert check_metrics(resolve_metrics(["mae"]), outputs, targets) == []


@pytest.mark.parametrize(
    ("asked", "outputs", "targets", "named"),
    [
        # a reviewer's check: a batch of one squeezed to 0-dim made the hint raise IndexError
        ("accuracy", torch.tensor(0.3), torch.tensor(1.0), None),
        # soft labels: accuracy reads them under a cross-entropy loss
        ("top5", torch.randn(8, 4), torch.softmax(torch.randn(8, 4), 1),
         "accuracy, mse, mae, binary_accuracy"),
        ("mae", torch.randn(8, 3), torch.randint(0, 3, (8,)), "accuracy"),  # no top5 of 3
        ("accuracy", torch.randn(8, 3), torch.randn(8, 3) * 5, "mse, mae"),  # a regression
    ],
)  # fmt: skip
def test_the_hint_of_a_metric_that_does_not_apply_never_raises_and_names_what_fits(
    asked, outputs, targets, named
):
    with pytest.warns(UserWarning, match=f"'{asked}' does not apply") as caught:
        check_metrics(resolve_metrics([asked]), outputs, targets)
    message = str(next(w.message for w in caught if "does not apply" in str(w.message)))
    if named is None:
        assert "the built-ins that apply" not in message
    else:
        assert message.endswith(f"the built-ins that apply: {named}")
