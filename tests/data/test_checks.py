"""Data checks before training: the bad sample named, NaN not blamed on the learning rate."""

import pytest
import torch

from superconverge.data import ArrayData
from superconverge.data.checks import DataError, check_array_data, check_batch, class_count


def test_a_nan_input_names_its_sample_and_position_and_counts_the_others():
    inputs = torch.zeros(100, 1, 8, 8)
    inputs[17, 0, 3, 4] = float("nan")
    inputs[40, 0, 0, 0] = float("inf")
    data = ArrayData(inputs, torch.zeros(100, dtype=torch.long))
    with pytest.raises(
        DataError, match=r"train_data sample 17 has nan in its inputs \(at \(0, 3, 4\)\)"
    ) as caught:
        check_array_data(data, "train_data", num_classes=10)
    assert "whatever the learning rate" in str(caught.value)
    assert "2 samples affected: 17, 40" in str(caught.value)


def test_the_scan_covers_every_chunk(monkeypatch):
    monkeypatch.setattr("superconverge.data.checks.CHUNK_ELEMENTS", 64)  # 4 samples a chunk
    inputs = torch.zeros(50, 16)
    inputs[49, 15] = float("-inf")  # the last element of the last chunk
    with pytest.raises(DataError, match="sample 49 has -inf in its inputs"):
        check_array_data(ArrayData(inputs, torch.zeros(50, dtype=torch.long)), "val_data")


@pytest.mark.parametrize(
    ("labels", "classes", "message"),
    [
        ([0, 1, 15], 10, r"sample 2 has label 15, but the model has 10 outputs: class labels must "
         r"be in \[0, 9\].*at least 16 outputs"),
        ([0, -3, 1], 10, r"sample 1 has label -3.*labels are class indices from 0"),
        ([9, 10, 11], 10, r"sample 1 has label 10.*2 samples affected: 1, 2"),
    ],
)  # fmt: skip
def test_a_label_outside_the_models_outputs_names_the_sample(labels, classes, message):
    data = ArrayData(torch.zeros(3, 2), torch.tensor(labels))
    with pytest.raises(DataError, match=message):
        check_array_data(data, "train_data", num_classes=classes)


def test_valid_data_and_cross_entropys_ignore_index_pass():
    data = ArrayData(torch.randn(4, 2), torch.tensor([0, 9, -100, 3]))
    check_array_data(data, "train_data", num_classes=10)
    check_array_data(ArrayData(torch.randn(4, 2), torch.randn(4, 1)), "train_data")  # regression


def test_nan_regression_targets_are_named():
    targets = torch.tensor([[0.5], [float("nan")], [1.0]])
    with pytest.raises(DataError, match="sample 1 has nan in its targets"):
        check_array_data(ArrayData(torch.zeros(3, 2), targets), "train_data")


def test_a_batch_names_its_row():
    with pytest.raises(DataError, match="train_data batch 0, row 1 has label 12"):
        check_batch(torch.zeros(2, 3), torch.tensor([1, 12]), "train_data", num_classes=10)


def test_class_count_only_for_class_index_targets():
    scores = torch.zeros(4, 10, 5, 5)
    assert class_count(scores, torch.zeros(4, 5, 5, dtype=torch.long)) == 10  # segmentation
    assert class_count(torch.zeros(4, 10), torch.zeros(4, 10)) is None  # soft targets
    assert class_count(torch.zeros(4, 1), torch.zeros(4, dtype=torch.bool)) is None
