"""The recipe's run folder: one writer, an earlier run moved aside, Ctrl-C says how to resume."""

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from superconverge._files import FolderBusyError
from superconverge.data import ArrayData
from superconverge.data.checks import DataError
from superconverge.data.sources import as_source
from superconverge.tuning.journal import Journal
from superconverge.tuning.resumable import (
    check_recipe_data,
    kept_on_interrupt,
    recipe_folder,
    remembered_runs,
    tune_settings,
)


def test_a_new_run_is_journalled_and_marked_finished(tmp_path):
    with recipe_folder(tmp_path, {"epochs": 2}) as journal:
        journal.record("batch_size", 32)
        assert not Journal.load(tmp_path).finished
    assert Journal.load(tmp_path).finished


def test_an_earlier_run_is_refused_without_overwrite(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"old")
    expected = r"already holds a run.*resume=True.*overwrite=True"
    with pytest.raises(FileExistsError, match=expected), recipe_folder(tmp_path, {}):
        pass


def test_overwrite_moves_the_earlier_run_aside_until_the_new_one_finishes(tmp_path, caplog):
    (tmp_path / "checkpoint.pt").write_bytes(b"old weights")
    with (
        pytest.raises(KeyboardInterrupt) as caught,
        recipe_folder(tmp_path, {}, overwrite=True) as journal,
    ):
        journal.record("batch_size", 32)
        raise KeyboardInterrupt
    (aside,) = tmp_path.glob("previous-*")
    assert (
        aside / "checkpoint.pt"
    ).read_bytes() == b"old weights"  # kept: the new run is unfinished
    assert "moved the previous run to" in caplog.text
    note = caught.value.__notes__[0]
    assert "interrupted: the stages decided (batch_size) kept in" in note
    assert "checkpoint" not in note and "resume=True" in note  # the final run has none yet
    assert f"superconverge tune --resume {tmp_path}" in note
    # and where the run it replaces waits (a user's check: the note did not say)
    assert f"; the run it replaces is in {aside}/ until this one finishes; " in note
    with recipe_folder(tmp_path, {}, resume=True) as journal:
        assert journal.get("batch_size") == 32
    assert not aside.exists()  # deleted once the run that replaced it finished
    assert "deleted the previous run" in caplog.text


def test_a_run_that_keeps_what_it_replaces_does_not_delete_it(tmp_path, caplog):
    # a user's check: tune --force whose final run diverged deleted the good run it replaced
    (tmp_path / "model.pt").write_bytes(b"good weights")
    with recipe_folder(tmp_path, {}, overwrite=True) as journal:
        journal.keep_replaced = True  # what tune sets when its final run diverged
    (aside,) = tmp_path.glob("previous-*")
    assert (aside / "model.pt").read_bytes() == b"good weights"
    assert f"kept the previous run {aside}: this run's final run diverged" in caplog.text


def test_resume_needs_a_journal_with_the_same_settings(tmp_path):
    with (
        pytest.raises(FileNotFoundError, match="no tune run to resume"),
        recipe_folder(tmp_path, {}, resume=True),
    ):
        pass
    with recipe_folder(tmp_path, {"seed": 0}):
        pass
    with (
        pytest.raises(ValueError, match="seed 0 there, 1 now"),
        recipe_folder(tmp_path, {"seed": 1}, resume=True),
    ):
        pass
    with pytest.raises(ValueError, match="needs out_dir"), recipe_folder(None, {}, resume=True):
        pass


def test_another_process_holding_the_folder_is_named(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from superconverge._files import FolderLock
            with FolderLock({str(tmp_path)!r}):
                print("held", flush=True)
                sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(
                FolderBusyError, match=f"{tmp_path} is being written by pid {holder.pid}"
            ),
            recipe_folder(tmp_path, {}, overwrite=True),
        ):
            pass
    finally:
        holder.communicate("")
    assert not list(tmp_path.glob("previous-*"))


def test_remembered_runs_run_only_what_is_not_recorded(tmp_path):
    journal = Journal.start(tmp_path, {})
    journal.record("wd/0.001", {"val_loss": 0.5})
    ran = []

    def run_many(jobs):
        ran.extend(jobs)
        return [{"val_loss": float(job)} for job in jobs]

    results = remembered_runs(journal, "wd", ["0.001", "0"], [1e-3, 0.0], run_many)
    assert ran == [0.0]
    assert results == [{"val_loss": 0.5}, {"val_loss": 0.0}]
    assert Journal.load(tmp_path).keys() == ["wd/0.001", "wd/0"]


def _mlp(classes=10):
    return nn.Sequential(nn.Flatten(), nn.Linear(4, classes))


def test_recipe_data_is_checked_against_the_models_outputs():
    good = ArrayData(torch.randn(20, 4), torch.arange(20) % 10)
    check_recipe_data(_mlp(), [("train_data", good), ("val_data", good)])
    labels = torch.arange(20) % 10
    labels[7] = 15
    with pytest.raises(DataError, match="val_data sample 7 has label 15, but the model has 10"):
        check_recipe_data(
            _mlp(), [("train_data", good), ("val_data", ArrayData(good.inputs, labels))]
        )
    nan = good.inputs.clone()
    nan[3, 1] = float("nan")
    with pytest.raises(DataError, match="train_data sample 3 has nan in its inputs"):
        check_recipe_data(_mlp(), [("train_data", ArrayData(nan, good.targets))])


def test_a_model_that_cannot_take_the_data_is_left_to_the_shape_check():
    data = ArrayData(torch.randn(20, 5), torch.arange(20) % 10)  # 5 features, the model takes 4
    check_recipe_data(_mlp(), [("train_data", data)])


def test_settings_tell_other_data_and_other_models_apart():
    data = ArrayData(torch.randn(20, 4), torch.arange(20) % 10)
    other = ArrayData(data.inputs + 1, data.targets)

    def settings(model, train):
        return tune_settings(model, train, data, None, loss_fn=nn.functional.cross_entropy,
                             augment=None, epochs=2)  # fmt: skip

    torch.manual_seed(0)
    assert settings(_mlp(), data) == settings(_mlp(), data)  # weights do not matter, shapes do
    assert settings(_mlp(), data)["train_data"] != settings(_mlp(), other)["train_data"]
    assert settings(_mlp(), data)["model"] != settings(_mlp(5), data)["model"]


def test_an_interrupted_run_names_what_it_kept(tmp_path):
    journal = Journal(tmp_path, {}, records={"batch_size": 16})
    assert kept_on_interrupt(journal) == "the stages decided (batch_size)"
    journal.records.update({"range_test/sgd": {}, "short_run/a": {}, "lr_bounds": {}})
    (tmp_path / "checkpoint.pt").write_bytes(b"weights")
    assert kept_on_interrupt(journal) == (
        "the stages decided (batch_size, lr_bounds), 2 measurements (range tests, short runs) "
        "and the final run's checkpoint of its last finished epoch"
    )
    assert kept_on_interrupt(Journal(None, {})) == "nothing measured yet"


def test_a_metric_that_raises_fails_the_data_check_before_any_training():
    from superconverge.metrics import resolve_metrics

    def broken(outputs, targets):
        raise RuntimeError("boom")

    calls = []

    class Counted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))  # digits: 8 x 8

        def forward(self, x):
            calls.append(len(x))
            return self.mlp(x)

    import superconverge as sc
    from superconverge.data import load

    good = load("digits").train
    with pytest.raises(ValueError, match=r"metrics\['broken'\] raised RuntimeError .*: boom"):
        check_recipe_data(Counted(), [("train_data", good)], metrics=resolve_metrics([broken]))
    assert calls == [32]  # one forward pass of a batch's worth of samples
    with pytest.raises(ValueError, match=r"metrics\['broken'\] raised"):
        sc.tune(Counted, good, good, epochs=1, metrics={"broken": broken})
    assert calls == [32, 32]  # tune's data check: no range test, no short run


class _Regression(torch.utils.data.Dataset):
    """A user's Dataset: item i is (features, a 0-d float target), as most regressions write it."""

    def __init__(self, inputs, targets):
        self.inputs, self.targets = inputs, targets

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, i):
        return self.inputs[i], self.targets[i]


class _Scalar(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


def test_datasets_are_checked_on_a_collated_batch_and_in_memory_pairs_whole():
    # a user's check: a regression Dataset with one float target per item failed the data
    # check with "TypeError: len() of a 0-d tensor" (it was read one item, not one batch, at a
    # time), and bad labels in an (inputs, targets) pair or a TensorDataset were not checked:
    # cross_entropy's "Target 15 is out of bounds" came from inside the range test
    from torch.utils.data import TensorDataset

    import superconverge as sc

    torch.manual_seed(0)
    inputs = torch.randn(120, 8)
    targets = inputs[:, 0] * 2 + 1
    for data in (_Regression(inputs, targets), TensorDataset(inputs, targets)):
        check_recipe_data(_Scalar(), [("train_data", data), ("val_data", data)])
    plan = sc.tune(_Scalar, _Regression(inputs[:100], targets[:100]),
                   _Regression(inputs[100:], targets[100:]), epochs=2,
                   loss_fn=nn.functional.mse_loss)  # fmt: skip
    assert plan.results["status"] == "completed" and "mse" in plan.results["final_val_metrics"]

    labels = (inputs[:, 0] > 0).long()
    labels[57] = 15  # not in the first batch: an in-memory pair is scanned whole

    def three():
        return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    for data in ((inputs, labels), TensorDataset(inputs, labels)):
        with pytest.raises(DataError, match="train_data sample 57 has label 15, but the model"):
            sc.tune(three, data, (inputs[:10], labels[:10]), epochs=2)
    nan = inputs.clone()
    nan[1, 3] = float("nan")
    with pytest.raises(DataError, match="val_data batch 0, row 1 has nan in its inputs"):
        check_recipe_data(_Scalar(), [("train_data", _Regression(inputs, targets)),
                                      ("val_data", _Regression(nan, targets))])  # fmt: skip


def test_the_data_check_runs_metrics_on_a_drawn_batch_and_leaves_batch_fn_data_alone():
    # a review's checks: a metric that needs both classes failed on the first two samples of
    # data sorted by label, and a TensorDataset of ids whose labels a batch_fn looks up was
    # refused as "label 1000"
    from torch.utils.data import TensorDataset

    from superconverge.metrics import resolve_metrics

    inputs = torch.randn(200, 4)
    labels = (torch.arange(200) >= 100).long()  # sorted: the first half all class 0

    def both_classes(outputs, targets):
        if len(set(targets.tolist())) < 2:
            raise ValueError("needs both classes")
        return 0.0

    sorted_data = ArrayData(inputs, labels)
    check_recipe_data(
        _mlp(2), [("train_data", sorted_data)], metrics=resolve_metrics([both_classes])
    )

    ids = TensorDataset(inputs, torch.arange(200) + 1000)  # ids, not labels

    def lookup(batch):
        x, i = batch
        return x, labels[i - 1000]

    source = as_source(ids, "train_data", batch_fn=lookup)
    check_recipe_data(_mlp(2), [("train_data", source)])  # not scanned as (inputs, labels)
    with pytest.raises(DataError, match="train_data sample 0 has label 1000"):
        check_recipe_data(_mlp(2), [("train_data", ids)])  # without the hook, they are labels


def test_the_data_check_runs_the_loss_on_the_runs_device():
    # a review's check: the loss ran on the CPU model of model_fn() whatever the device, so a
    # loss holding CUDA tensors (class weights) aborted tune; "meta" stands in for the GPU here
    from superconverge.tuning.resumable import check_recipe_data

    inputs, labels = torch.randn(64, 4), torch.randint(0, 2, (64,))
    weighted = nn.CrossEntropyLoss(weight=torch.ones(2, device="meta"))
    check_recipe_data(nn.Linear(4, 2), [("train_data", (inputs, labels))], torch.device("meta"),
                      (), weighted)  # fmt: skip
    with pytest.raises(ValueError, match="loss_fn raised"):  # the run's device is the CPU
        check_recipe_data(nn.Linear(4, 2), [("train_data", (inputs, labels))],
                          torch.device("cpu"), (), weighted)  # fmt: skip
