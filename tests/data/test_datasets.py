import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from superconverge.data import DataFormatError, load

from .conftest import make_cifar_archive, make_cifar_folder, make_mnist, write_idx

pytestmark = pytest.mark.filterwarnings("ignore:.*md5.*:UserWarning")  # tiny files never match


def test_digits_is_embedded_and_split_train_val_test():
    splits = load("digits", val_fraction=0.1)
    assert splits.input_shape == (1, 8, 8)
    assert len(splits.train) + len(splits.val) + len(splits.test) == 1797
    assert len(splits.test) == 359 and len(splits.val) == 143
    assert splits.train.inputs.dtype == torch.float32 and splits.train.targets.dtype == torch.int64
    assert splits.num_classes == 10
    # the test split does not depend on the validation seed
    assert torch.equal(load("digits", seed=5).test.targets, splits.test.targets)


@pytest.mark.parametrize("normalize", ["standard", "unit", "raw"])
def test_normalisation_uses_training_statistics(normalize):
    splits = load("digits", normalize=normalize)
    x = splits.train.inputs
    if normalize == "standard":
        assert x.mean().item() == pytest.approx(0.0, abs=1e-4)
        assert x.std().item() == pytest.approx(1.0, abs=1e-3)
    elif normalize == "unit":
        assert x.min().item() == 0.0 and x.max().item() == 1.0
    else:
        assert x.max().item() == 16.0
    assert splits.mean[0] == pytest.approx(4.89, abs=0.05)


def test_mnist_from_idx_files(mnist_dir):
    splits = load("mnist", mnist_dir, val_fraction=0.2, normalize="raw")
    assert splits.input_shape == (1, 28, 28)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (24, 6, 10)
    raw = make_mnist(mnist_dir)  # same seed: same arrays
    images = torch.from_numpy(raw["t10k-images-idx3-ubyte.gz"].astype(np.float32))
    assert torch.equal(splits.test.inputs[:, 0], images)
    assert splits.test.targets.tolist() == list(range(10))


def test_mnist_uncompressed_files_are_read_too(tmp_path):
    root = tmp_path / "fashion"
    root.mkdir()
    for stem, array in [
        ("train-images-idx3-ubyte", np.zeros((5, 28, 28))),
        ("train-labels-idx1-ubyte", [0, 1, 2, 3, 4]),
        ("t10k-images-idx3-ubyte", np.zeros((2, 28, 28))),
        ("t10k-labels-idx1-ubyte", [5, 6]),
    ]:
        write_idx(root / stem, array, compress=False)
    splits = load("fashion-mnist", root, val_fraction=0.0)
    assert len(splits.train) == 5 and splits.val is None
    assert splits.classes[0] == "T-shirt/top"


def test_missing_file_names_file_folder_and_source(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        load("mnist", tmp_path)
    message = str(caught.value)
    assert "train-images-idx3-ubyte.gz not found in" in message
    assert str(tmp_path.resolve()) in message
    assert "yann.lecun.com" in message


def test_default_root_comes_from_the_environment(tmp_path, monkeypatch):
    make_mnist(tmp_path / "mnist")
    monkeypatch.setenv("SUPERCONVERGE_DATA", str(tmp_path))
    assert len(load("mnist", val_fraction=0).train) == 30


def test_labels_that_do_not_match_images_are_an_error(mnist_dir):
    write_idx(mnist_dir / "train-labels-idx1-ubyte.gz", [1, 2, 3])
    with pytest.raises(DataFormatError, match="3 labels for 30 images"):
        load("mnist", mnist_dir)


@pytest.mark.parametrize("layout", ["folder", "archive", "subset-archive"])
def test_cifar10_reads_whatever_batches_are_present(tmp_path, layout):
    if layout == "folder":
        _, made = make_cifar_folder(tmp_path, batches=(1, 3))
        root = tmp_path
    else:
        name = "cifar-10-python.tar.gz" if layout == "archive" else "cifar-10-subset-python.tar.gz"
        _, made = make_cifar_archive(tmp_path / "c", name=name, batches=(1, 3))
        root = tmp_path / "c"
    splits = load("cifar10", root, val_fraction=0.0, normalize="raw")
    assert splits.input_shape == (3, 32, 32)
    assert len(splits.train) == 40 and len(splits.test) == 10
    expected = np.concatenate([made["data_batch_1"][b"data"], made["data_batch_3"][b"data"]])
    assert torch.equal(splits.train.inputs.reshape(40, -1), torch.from_numpy(expected).float())
    assert splits.classes[0] == "airplane"


def test_truncated_cifar_archive_is_named(tmp_path):
    archive, _ = make_cifar_archive(tmp_path / "c")
    archive.write_bytes(archive.read_bytes()[:2000])
    with pytest.raises(DataFormatError, match=r"cifar-10-python\.tar\.gz: corrupt or truncated"):
        load("cifar10", tmp_path / "c")


def test_cifar_folder_without_training_batches(tmp_path):
    folder, _ = make_cifar_folder(tmp_path, batches=())
    with pytest.raises(DataFormatError, match="no training batch"):
        load("cifar10", tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps([1, 2, 3]))


def test_csv_with_named_target(tmp_path):
    path = tmp_path / "iris.csv"
    rows = ["a,b,species"] + [
        f"{i},{i * 2},{'setosa' if i % 2 else 'virginica'}" for i in range(20)
    ]
    path.write_text("\n".join(rows) + "\n")
    splits = load("csv", path, target="species", val_fraction=0.25, normalize="raw")
    assert splits.input_shape == (2,)
    assert splits.classes == ("setosa", "virginica") and splits.num_classes == 2
    assert len(splits.train) + len(splits.val) + len(splits.test) == 20
    assert set(splits.train.inputs[:, 1].tolist()) <= {2.0 * i for i in range(20)}


def test_csv_errors_name_the_column_and_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x,y\n1,0\nabc,1\n")
    with pytest.raises(DataFormatError, match=r"line 3: column 'x' must be numeric, got 'abc'"):
        load("csv", path, target="y")
    with pytest.raises(
        ValueError, match=r"target must be one of the columns \['x', 'y'\], got 'label'"
    ):
        load("csv", path, target="label")


def test_csv_regression_targets_stay_float(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("x,y\n" + "".join(f"{i},{i * 0.5 + 0.25}\n" for i in range(10)))
    splits = load("csv", path, target="y", val_fraction=0)
    assert splits.train.targets.dtype == torch.float32 and splits.num_classes is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "imagenet"}, "name must be one of digits, mnist"),
        ({"name": "digits", "normalize": "zscore"}, "normalize must be one of standard, unit, raw"),
        ({"name": "digits", "val_fraction": 1.0}, r"val_fraction must be in \[0, 1\), got 1.0"),
        ({"name": "digits", "target": "y"}, "target names the label column of a csv"),
        ({"name": "csv"}, "root must be the path of the csv file"),
    ],
)
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load(**kwargs)


DATA = os.environ.get("SUPERCONVERGE_DATA")


@pytest.mark.data
@pytest.mark.skipif(not DATA or not Path(DATA, "mnist").is_dir(), reason="SUPERCONVERGE_DATA unset")
def test_real_mnist_shapes_dtypes_and_class_counts(recwarn):
    splits = load("mnist", val_fraction=0.0, normalize="raw")
    assert splits.train.inputs.shape == (60000, 1, 28, 28)
    assert splits.test.inputs.shape == (10000, 1, 28, 28)
    counts = torch.bincount(splits.train.targets, minlength=10)
    assert counts.min().item() == 5421 and counts.max().item() == 6742  # digit 5 and digit 1
    assert counts[5].item() == 5421 and counts[1].item() == 6742
    assert splits.train.inputs.max().item() == 255.0
    assert not [w for w in recwarn if "md5" in str(w.message)]  # the official files match


@pytest.mark.data
@pytest.mark.skipif(
    not DATA or not Path(DATA, "cifar10").is_dir(), reason="SUPERCONVERGE_DATA unset"
)
def test_real_cifar10_subset_archive():
    splits = load("cifar10", val_fraction=0.0, normalize="raw")
    assert splits.train.inputs.shape == (10000, 3, 32, 32)
    assert splits.test.inputs.shape == (1000, 3, 32, 32)
    counts = torch.bincount(splits.train.targets, minlength=10).tolist()
    assert counts == [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]
    assert splits.train.targets[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert splits.test.targets[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]


def test_data_splits_hold_tensors_and_say_what_to_return_for_loaders():
    # a user's check: DataSplits(name, DataLoader(...), ...) from --data was read as tensors:
    # "--batch-size must be <= the 41 training samples" (its 41 batches)
    import pytest
    from torch.utils.data import DataLoader, TensorDataset

    from superconverge.data import DataSplits, load

    digits = load("digits")
    loader = DataLoader(TensorDataset(digits.train.inputs, digits.train.targets), batch_size=32)
    with pytest.raises(TypeError, match=r"DataSplits.train must be ArrayData \(tensors\), got "
                       r"DataLoader; for Datasets or loaders return \(train, val\)"):  # fmt: skip
        DataSplits("mine", loader, digits.val, None, 10)
    with pytest.raises(TypeError, match=r"DataSplits\.val must be ArrayData"):
        DataSplits("mine", digits.train, loader, None, 10)
    assert DataSplits("mine", digits.train, None, None, 10).val is None
