"""Loggers: one protocol (params once, each step's loss/LR/momentum/weight decay, each epoch's
row, the status at the end) and its backends, on tiny real fits."""

import csv

import pytest
import torch
from torch import nn

from superconverge.data import ArrayData
from superconverge.training import CSVLogger, Logger, Trainer

LOSS = nn.functional.cross_entropy


def _data(samples=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return ArrayData(torch.randn(samples, 4, generator=generator), torch.arange(samples) % 3)


def _trainer(callbacks, model=None, **kwargs):
    torch.manual_seed(0)
    return Trainer(model or nn.Linear(4, 3), LOSS, _data(), _data(16, seed=1), batch_size=8,
                   callbacks=callbacks, progress=False, sync_every=3, **kwargs)  # fmt: skip


class Recording(Logger):
    def __init__(self, every_steps=1):
        super().__init__(every_steps)
        self.params, self.steps, self.epochs, self.closed = [], [], [], []

    def log_params(self, params):
        self.params.append(params)

    def log_step(self, step, values):
        self.steps.append((step, values))

    def log_epoch(self, epoch, values):
        self.epochs.append((epoch, values))

    def close(self, status):
        self.closed.append(status)


def test_the_protocol_gets_params_every_step_every_epoch_and_the_status():
    logger = Recording()
    history = _trainer([logger], weight_decay=1e-3).fit_one_cycle(2, 0.05)  # 4 steps an epoch
    (params,) = logger.params
    assert params["policy"] == "smith_one_cycle" and params["max_lr"] == 0.05
    assert params["epochs"] == 2
    assert params["optimizer"] == "SGD" and params["weight_decay"] == 1e-3
    assert params["batch_size"] == 8 and params["device"] == "cpu"
    assert [step for step, _ in logger.steps] == list(range(8))
    for step, values in logger.steps:
        assert values == {
            "loss": history.step_losses[step],
            "lr": history.step_lrs[step][0],
            "momentum": history.step_momenta[step][0],
            "weight_decay": 1e-3,
        }
    assert [epoch for epoch, _ in logger.epochs] == [1, 2]
    row = history.epochs[1]
    assert logger.epochs[1][1] == {k: v for k, v in row.items() if k != "epoch"}
    assert {"train_loss", "val_loss", "val_accuracy", "lr"} <= set(logger.epochs[1][1])
    assert logger.closed == ["completed"]


def test_every_steps_thins_the_steps_and_zero_logs_epochs_only():
    sparse, none = Recording(every_steps=3), Recording(every_steps=0)
    _trainer([sparse, none]).fit_one_cycle(2, 0.05)
    assert [step for step, _ in sparse.steps] == [0, 3, 6]
    assert none.steps == [] and len(none.epochs) == 2


def test_several_param_groups_are_logged_per_group():
    logger = Recording()
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 3))
    _trainer([logger], model).fit_one_cycle(1, (0.01, 0.1))  # discriminative LRs
    _, values = logger.steps[-1]
    assert {"lr_group0", "lr_group1", "momentum_group0", "weight_decay_group1"} <= set(values)
    assert values["lr_group0"] < values["lr_group1"]


def test_bad_every_steps_is_named():
    with pytest.raises(ValueError, match="every_steps must be an integer >= 0, got -1"):
        Recording(every_steps=-1)


def _rows(path):
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_csv_one_row_per_epoch_and_per_step(tmp_path):
    logger = CSVLogger(tmp_path / "csv", per_step=True)
    history = _trainer([logger]).fit_one_cycle(2, 0.05)
    epochs = _rows(logger.epochs_path)
    assert [row["epoch"] for row in epochs] == ["1", "2"]
    assert float(epochs[1]["val_loss"]) == pytest.approx(history.epochs[1]["val_loss"])
    steps = _rows(logger.steps_path)
    assert [int(row["step"]) for row in steps] == list(range(8))
    assert [float(row["loss"]) for row in steps] == pytest.approx(history.step_losses)
    assert [float(row["momentum"]) for row in steps] == pytest.approx(
        [m[0] for m in history.step_momenta]
    )
    for path in (logger.epochs_path, logger.steps_path):  # plain lines, also those appended
        assert b"\r" not in path.read_bytes()


def test_csv_per_epoch_only_and_a_second_fit_with_other_columns(tmp_path):
    alone = CSVLogger(tmp_path / "epochs-only")
    _trainer([alone]).fit_one_cycle(1, 0.05)
    assert alone.epochs_path.is_file() and not alone.steps_path.exists()

    logger = CSVLogger(tmp_path / "two", per_step=True)
    trainer = _trainer([logger], nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 3)))
    trainer.fit_one_cycle(1, 0.05)  # one param group
    trainer.fit_one_cycle(1, (0.01, 0.1))  # two: new columns, the first fit's rows kept
    steps = _rows(logger.steps_path)
    assert [row["fit"] for row in steps] == ["1"] * 4 + ["2"] * 4
    assert steps[0]["lr"] != "" and steps[0]["lr_group1"] == ""
    assert steps[-1]["lr"] == "" and steps[-1]["lr_group1"] != ""
    assert [row["fit"] for row in _rows(logger.epochs_path)] == ["1", "2"]


def test_tensorboard_logs_momentum_weight_decay_losses_and_metrics(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from superconverge.training import TensorBoardLogger

    history = _trainer([TensorBoardLogger(tmp_path / "tb")], weight_decay=1e-4).fit_one_cycle(
        2, 0.05
    )
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss_step", "train/lr", "train/momentum", "train/weight_decay"} <= tags
    assert {"epoch/train_loss", "epoch/val_loss", "epoch/val_accuracy", "epoch/lr"} <= tags
    momenta = [event.value for event in events.Scalars("train/momentum")]
    assert momenta == pytest.approx([m[0] for m in history.step_momenta])
    decays = [event.value for event in events.Scalars("train/weight_decay")]
    assert decays == pytest.approx([1e-4] * history.steps)
    assert "params/text_summary" in events.Tags()["tensors"]  # the settings, as text


def test_mlflow_with_its_local_file_store(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    # MLflow 3 keeps the file store in maintenance: it asks for this opt-in (its own message)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    from superconverge.training import MLflowLogger

    uri = (tmp_path / "mlruns").as_uri()
    logger = MLflowLogger("superconverge-test", run_name="tiny", tracking_uri=uri, every_steps=2)
    history = _trainer([logger]).fit_one_cycle(2, 0.05)
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(logger.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "tiny"
    assert run.data.params["policy"] == "smith_one_cycle" and run.data.params["max_lr"] == "0.05"
    val = client.get_metric_history(logger.run_id, "epoch/val_loss")
    assert [m.step for m in val] == [1, 2]
    assert [m.value for m in val] == pytest.approx(history.epoch_values("val_loss"))
    losses = client.get_metric_history(logger.run_id, "step/loss")
    assert sorted(m.step for m in losses) == [0, 2, 4, 6]
    assert {m.key for m in [*val, *losses]} == {"epoch/val_loss", "step/loss"}
    momentum = client.get_metric_history(logger.run_id, "step/momentum")
    assert len(momentum) == 4


class _Stop(Logger):
    """Stands for a job killed after epoch `epoch` (its checkpoint written)."""

    def __init__(self, epoch):
        super().__init__(0)
        self.epoch = epoch

    def after_epoch(self, fit):
        if fit.record["epoch"] == self.epoch:
            raise KeyboardInterrupt


def test_csv_a_resumed_fit_continues_the_files_it_left(tmp_path):
    # the resumed run's new logger replaced epochs.csv and steps.csv: epochs 1-2 and steps
    # 0-7 were lost
    logger = CSVLogger(tmp_path / "csv", per_step=True)
    with pytest.raises(KeyboardInterrupt):
        _trainer([logger, _Stop(2)], out_dir=tmp_path / "run").fit_one_cycle(4, 0.05)
    with logger.steps_path.open("a") as file:  # a row logged after the checkpoint: logged again
        file.write("1,8,9.0,0.1,0.9,0.0\n")
    torch.manual_seed(0)
    again = CSVLogger(tmp_path / "csv", per_step=True)
    history = Trainer.resume(tmp_path / "run", nn.Linear(4, 3), LOSS, _data(), _data(16, seed=1),
                             batch_size=8, callbacks=[again], progress=False, sync_every=3)  # fmt: skip
    epochs = _rows(again.epochs_path)
    assert [(row["fit"], row["epoch"]) for row in epochs] == [("1", str(e)) for e in (1, 2, 3, 4)]
    assert [float(row["val_loss"]) for row in epochs] == pytest.approx(
        [row["val_loss"] for row in history.epochs]
    )
    steps = _rows(again.steps_path)
    assert [int(row["step"]) for row in steps] == list(range(16))  # step 8 once, the resumed one
    assert [float(row["loss"]) for row in steps] == pytest.approx(history.step_losses)


def test_csv_a_new_logger_adds_its_fit_to_the_files_there(tmp_path):
    # a second run into the same folder replaced the first's files
    _trainer([CSVLogger(tmp_path / "csv", per_step=True)]).fit_one_cycle(1, 0.05)
    logger = CSVLogger(tmp_path / "csv", per_step=True)
    _trainer([logger]).fit_one_cycle(2, 0.05)
    assert [(r["fit"], r["epoch"]) for r in _rows(logger.epochs_path)] == [
        ("1", "1"), ("2", "1"), ("2", "2")
    ]  # fmt: skip
    assert [r["fit"] for r in _rows(logger.steps_path)] == ["1"] * 4 + ["2"] * 8


@pytest.mark.parametrize("folder", [None, 123, "", True])
def test_a_logger_folder_that_is_no_path_is_named(folder):
    # CSVLogger(None) was pathlib's "expected str, bytes or os.PathLike object, not NoneType"
    with pytest.raises(TypeError, match=f"folder must be a folder path \\(str or Path\\), got {folder!r}"):
        CSVLogger(folder)
    with pytest.raises(TypeError, match=r"every_steps must be an integer >= 0, got 1\.5"):
        CSVLogger("x", per_step=True, every_steps=1.5)


def test_a_tensorboard_log_dir_that_is_no_path_is_named(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from superconverge.training import TensorBoardLogger

    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match="log_dir must be a folder path \\(str or Path\\), got 123"):
        TensorBoardLogger(123)  # made a folder ./123
    assert not (tmp_path / "123").exists()


def _mlflow(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    return uri, MlflowClient(tracking_uri=uri)


def test_mlflow_two_fits_in_one_active_run_keep_both_fits_params(tmp_path, monkeypatch):
    # fine_tune inside mlflow.start_run(): its second fit failed with "Changing param values
    # is not allowed" after the first had trained
    uri, client = _mlflow(tmp_path, monkeypatch)
    import mlflow

    from superconverge.training import MLflowLogger

    mlflow.set_tracking_uri(uri)
    logger = MLflowLogger()
    trainer = _trainer([logger])
    with mlflow.start_run() as run:
        trainer.fit_one_cycle(1, 0.05)
        trainer.fit_one_cycle(2, 0.02)
    params = client.get_run(run.info.run_id).data.params
    assert params["max_lr"] == "0.05" and params["fit2/max_lr"] == "0.02"
    assert params["epochs"] == "1" and params["fit2/epochs"] == "2"
    assert "fit2/optimizer" not in params  # the same value: not again
    # the second fit's metrics go on after the first's (they were drawn over them: 1, 1, 2)
    epochs = client.get_metric_history(run.info.run_id, "epoch/val_loss")
    assert sorted(m.step for m in epochs) == [1, 2, 3]
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "step/loss")) == list(range(12))


def test_mlflow_fine_tune_without_an_active_run_is_one_run(tmp_path, monkeypatch):
    # its second fit made a second run: one call, two runs, the frozen phase's cut from the rest
    uri, client = _mlflow(tmp_path, monkeypatch)
    from superconverge.training import MLflowLogger

    logger = MLflowLogger("e", tracking_uri=uri)
    body_and_head = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3))
    _trainer([logger], model=body_and_head).fine_tune(2, base_lr=0.02, freeze_epochs=1)
    runs = client.search_runs([client.get_experiment_by_name("e").experiment_id])
    assert len(runs) == 1 and runs[0].info.run_id == logger.run_id
    assert runs[0].info.status == "FINISHED"
    assert runs[0].data.params["epochs"] == "1" and runs[0].data.params["fit2/epochs"] == "2"
    epochs = client.get_metric_history(logger.run_id, "epoch/val_loss")
    assert sorted(m.step for m in epochs) == [1, 2, 3]
    # a later fit with the same logger is a run of its own, as before
    _trainer([logger]).fit_one_cycle(1, 0.05)
    assert logger.run_id != runs[0].info.run_id
    assert len(client.search_runs([runs[0].info.experiment_id])) == 2


def test_mlflow_a_resumed_fit_continues_the_run_it_names(tmp_path, monkeypatch):
    # a resumed fit made a second run (epochs 3-4), the first left KILLED with epochs 1-2
    uri, client = _mlflow(tmp_path, monkeypatch)
    from superconverge.training import MLflowLogger

    first = MLflowLogger("e", tracking_uri=uri)
    with pytest.raises(KeyboardInterrupt):
        _trainer([first, _Stop(2)], out_dir=tmp_path / "run").fit_one_cycle(4, 0.05)
    assert client.get_run(first.run_id).info.status == "KILLED"
    torch.manual_seed(0)
    again = MLflowLogger("e", tracking_uri=uri, run_id=first.run_id)
    Trainer.resume(tmp_path / "run", nn.Linear(4, 3), LOSS, _data(), _data(16, seed=1),
                   batch_size=8, callbacks=[again], progress=False, sync_every=3)  # fmt: skip
    assert again.run_id == first.run_id
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "epoch/val_loss")] == [
        1, 2, 3, 4
    ]  # fmt: skip
    assert len(client.search_runs([run.info.experiment_id])) == 1
    with pytest.raises(TypeError, match="run_id must be an MLflow run ID"):
        MLflowLogger(tracking_uri=uri, run_id=7)


def _scalars(folder, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


def test_tensorboard_a_second_fit_goes_on_after_the_first_and_another_run_is_warned(tmp_path):
    # fine_tune's two fits (and two runs into one folder) were drawn over each other: epochs
    # 1, 2, 1, 2, a zigzag
    pytest.importorskip("tensorboard")
    from superconverge.training import TensorBoardLogger

    logger = TensorBoardLogger(tmp_path / "tb")
    trainer = _trainer([logger])
    trainer.fit_one_cycle(2, 0.05)
    trainer.fit_one_cycle(1, 0.01)
    assert [step for step, _ in _scalars(tmp_path / "tb", "epoch/val_loss")] == [1, 2, 3]
    assert [step for step, _ in _scalars(tmp_path / "tb", "train/lr")] == list(range(12))
    with pytest.warns(UserWarning, match="holds another run's events; TensorBoard draws"):
        _trainer([TensorBoardLogger(tmp_path / "tb")]).fit_one_cycle(1, 0.05)


def test_tensorboard_a_resumed_fit_continues_its_curves_without_a_warning(tmp_path):
    pytest.importorskip("tensorboard")
    import warnings

    from superconverge.training import TensorBoardLogger

    with pytest.raises(KeyboardInterrupt):
        _trainer([TensorBoardLogger(tmp_path / "tb"), _Stop(1)], out_dir=tmp_path / "run").fit_one_cycle(2, 0.05)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer.resume(tmp_path / "run", nn.Linear(4, 3), LOSS, _data(), _data(16, seed=1),
                       batch_size=8, callbacks=[TensorBoardLogger(tmp_path / "tb")],
                       progress=False, sync_every=3)  # fmt: skip
    assert [step for step, _ in _scalars(tmp_path / "tb", "epoch/val_loss")] == [1, 2]


def test_loggers_given_back_to_the_same_trainer_continue_the_fit_they_logged(tmp_path):
    # a reviewer's check: Trainer.resume_from on the trainer whose fit was interrupted, with the
    # same loggers, filed the resumed epochs as fit 2 (CSV) and shifted TensorBoard's x axes
    # (epochs 1, 2, 5, 6)
    pytest.importorskip("tensorboard")
    from superconverge.training import TensorBoardLogger

    table, board, stop = CSVLogger(tmp_path / "csv", per_step=True), TensorBoardLogger(tmp_path / "tb"), _Stop(2)
    trainer = _trainer([table, board, stop], out_dir=tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        trainer.fit_one_cycle(4, 0.05)
    stop.epoch = -1
    history = trainer.resume_from(tmp_path / "run" / "checkpoint.pt")
    assert [(r["fit"], r["epoch"]) for r in _rows(table.epochs_path)] == [("1", str(e)) for e in range(1, 5)]
    assert [int(r["step"]) for r in _rows(table.steps_path)] == list(range(len(history.step_losses)))
    assert [step for step, _ in _scalars(tmp_path / "tb", "epoch/val_loss")] == [1, 2, 3, 4]


def test_csv_a_resumed_run_continues_its_own_fit_not_the_one_logged_since(tmp_path):
    # a reviewer's check: run A interrupted, run B logged into the same folder, A resumed: B's
    # epochs 3-4 were deleted and A's written in their place, as B's fit
    folder = tmp_path / "csv"
    with pytest.raises(KeyboardInterrupt):
        _trainer([CSVLogger(folder), _Stop(2)], out_dir=tmp_path / "A").fit_one_cycle(4, 0.05)
    _trainer([CSVLogger(folder)], out_dir=tmp_path / "B").fit_one_cycle(4, 0.3)
    before = [(r["fit"], r["epoch"], r["val_loss"]) for r in _rows(folder / "epochs.csv")]
    torch.manual_seed(0)
    Trainer.resume(tmp_path / "A", nn.Linear(4, 3), LOSS, _data(), _data(16, seed=1),
                   batch_size=8, callbacks=[CSVLogger(folder)], progress=False, sync_every=3)  # fmt: skip
    after = [(r["fit"], r["epoch"], r["val_loss"]) for r in _rows(folder / "epochs.csv")]
    assert [row for row in after if row[0] == "2"] == [row for row in before if row[0] == "2"]
    assert [(fit, epoch) for fit, epoch, _ in after if fit == "1"] == [("1", str(e)) for e in range(1, 5)]
    # an unknown History (another folder's fit): nothing dropped, a fit of its own
    with pytest.raises(KeyboardInterrupt):
        _trainer([_Stop(1)], out_dir=tmp_path / "C").fit_one_cycle(3, 0.1)
    torch.manual_seed(0)
    Trainer.resume(tmp_path / "C", nn.Linear(4, 3), LOSS, _data(), _data(16, seed=1),
                   batch_size=8, callbacks=[CSVLogger(folder)], progress=False, sync_every=3)  # fmt: skip
    last = [(r["fit"], r["epoch"]) for r in _rows(folder / "epochs.csv")][len(after):]
    assert last == [("3", "2"), ("3", "3")]
