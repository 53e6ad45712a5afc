from pathlib import Path

import pytest
import torch
from torch import nn

from superconverge.data import ArrayData
from superconverge.training import Callback, History, Trainer
from superconverge.training.checkpoint import RunFolder, load_checkpoint

LOSS = nn.functional.cross_entropy
VAL_LOSSES = {1: 1.0, 2: 0.5, 3: 0.8}  # down, then up: epoch 2 is the best


def _data():
    generator = torch.Generator().manual_seed(0)
    return ArrayData(torch.randn(32, 4, generator=generator), torch.arange(32) % 3)


class Scripted(Trainer):
    """Validation losses by epoch, so the best epoch is known in advance."""

    def evaluate(self, data=None):
        assert self.history is not None
        return {"loss": VAL_LOSSES[len(self.history.epochs) + 1], "accuracy": 0.5}


class KillAfterEpoch(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def after_epoch(self, fit):
        if fit.epoch + 1 == self.epoch:  # after its checkpoint was written
            raise KeyboardInterrupt


def _trainer(cls, out, **kwargs):
    model = nn.Linear(4, 3)
    return cls(model, LOSS, _data(), _data(), batch_size=8, out_dir=out, progress=False, **kwargs)


def test_best_pt_after_a_kill_and_resume_holds_the_best_epoch(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _trainer(Scripted, tmp_path, callbacks=[KillAfterEpoch(2)]).fit_one_cycle(3, 0.05)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["best_val_loss"] == 0.5
    path, model = tmp_path / "checkpoint.pt", nn.Linear(4, 3)
    history = Scripted.resume(path, model, LOSS, _data(), _data(), batch_size=8, progress=False)
    assert history.status == "completed" and history.epoch_values("val_loss") == [1.0, 0.5, 0.8]
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["fit"]["epochs_done"] == 2 and best["best_val_loss"] == 0.5


def test_every_file_of_the_run_folder_is_written_atomically(tmp_path, monkeypatch):
    from superconverge import _files

    renamed, real = [], _files.os.replace

    def spy(source, target):  # every atomic write ends in a rename; in-place writes do not
        renamed.append(Path(target).name)
        real(source, target)

    monkeypatch.setattr(_files.os, "replace", spy)
    history = _trainer(Scripted, tmp_path).fit_one_cycle(2, 0.05)
    assert set(renamed) == {"checkpoint.pt", "best.pt", "model.pt", "history.csv", "history.json"}
    assert History.from_json((tmp_path / "history.json").read_text()).epochs == history.epochs
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".superconverge.lock",  # the fit's FolderLock: one writer per out_dir (issue 17)
        "best.pt",
        "checkpoint.pt",
        "history.csv",
        "history.json",
        "model.pt",
    ]  # no temporary files left


def test_model_pt_holds_the_weights_the_fit_ended_with(tmp_path):
    # KeepBest puts epoch 2's weights back when the fit ends: checkpoint.pt keeps epoch 3's
    # (a resume goes on from them), model.pt the ones the model holds, which the user evaluates
    from superconverge.training import KeepBest

    trainer = _trainer(Scripted, tmp_path, callbacks=[KeepBest()])
    trainer.fit_one_cycle(3, 0.05)
    model = torch.load(tmp_path / "model.pt", weights_only=True)
    assert model.keys() == trainer.module.state_dict().keys()
    for name, value in trainer.module.state_dict().items():
        assert torch.equal(model[name], value)
    best = load_checkpoint(tmp_path / "best.pt")["model"]
    last = load_checkpoint(tmp_path / "checkpoint.pt")["model"]
    assert all(torch.equal(model[name], best[name]) for name in model)
    assert not torch.equal(model["weight"], last["weight"])


def test_an_interrupted_fit_writes_no_model_pt(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _trainer(Scripted, tmp_path, callbacks=[KillAfterEpoch(2)]).fit_one_cycle(3, 0.05)
    assert (tmp_path / "checkpoint.pt").is_file() and not (tmp_path / "model.pt").exists()
    # the resumed fit that completes the run writes it
    Scripted.resume(tmp_path, nn.Linear(4, 3), LOSS, _data(), _data(), batch_size=8, progress=False)
    assert (tmp_path / "model.pt").is_file()


@pytest.mark.parametrize("name", ["best.pt", "model.pt"])
def test_a_folder_with_another_runs_checkpoint_is_refused_unless_overwrite(tmp_path, name):
    (tmp_path / name).write_bytes(b"older")
    with pytest.raises(FileExistsError, match=rf"already holds {name}"):
        RunFolder(tmp_path, overwrite=False, writer=True).check_free()
    RunFolder(tmp_path, overwrite=True, writer=True).check_free()
    RunFolder(tmp_path, overwrite=False, writer=False).check_free()  # other ranks write nothing


def test_resume_goes_on_writing_into_the_checkpoints_folder_unless_out_dir_is_given(tmp_path):
    # before: a resume without out_dir trained in memory only; the folder stayed at epoch 1
    with pytest.raises(KeyboardInterrupt):
        _trainer(Scripted, tmp_path, callbacks=[KillAfterEpoch(1)]).fit_one_cycle(3, 0.05)
    path = tmp_path / "checkpoint.pt"
    Scripted.resume(path, nn.Linear(4, 3), LOSS, _data(), _data(), batch_size=8, progress=False)
    assert load_checkpoint(path)["fit"] == {"epochs": 3, "epochs_done": 3}
    assert len(History.from_json((tmp_path / "history.json").read_text()).epochs) == 3

    other = tmp_path / "elsewhere"  # an explicit out_dir wins, the first folder is left alone
    with pytest.raises(KeyboardInterrupt):
        _trainer(Scripted, tmp_path / "again", callbacks=[KillAfterEpoch(1)]).fit_one_cycle(3, 0.05)
    path = tmp_path / "again" / "checkpoint.pt"
    Scripted.resume(path, nn.Linear(4, 3), LOSS, _data(), _data(), batch_size=8, progress=False,
                    out_dir=other)  # fmt: skip
    assert load_checkpoint(path)["fit"]["epochs_done"] == 1
    assert load_checkpoint(other / "checkpoint.pt")["fit"]["epochs_done"] == 3
    # a resume from best.pt (or a renamed copy) leaves that folder's run as it is
    before = {p.name: p.read_bytes() for p in other.iterdir() if p.is_file()}
    Scripted.resume(other / "best.pt", nn.Linear(4, 3), LOSS, _data(), _data(), batch_size=8,
                    progress=False)  # fmt: skip
    assert {p.name: p.read_bytes() for p in other.iterdir() if p.is_file()} == before


def test_resume_takes_the_run_folder_for_its_checkpoint(tmp_path):
    # the out_dir the run was given: "checkpoint <folder> not found", though the folder held it
    with pytest.raises(KeyboardInterrupt):
        _trainer(Scripted, tmp_path, callbacks=[KillAfterEpoch(1)]).fit_one_cycle(3, 0.05)
    history = Scripted.resume(tmp_path, nn.Linear(4, 3), LOSS, _data(), _data(), batch_size=8,
                              progress=False)  # fmt: skip
    assert history.status == "completed" and len(history.epochs) == 3
    assert load_checkpoint(tmp_path / "checkpoint.pt")["fit"]["epochs_done"] == 3  # went on there


def test_a_second_fit_into_the_folder_of_this_trainers_finished_fit_is_refused(tmp_path):
    # before: the second fit replaced checkpoint.pt, best.pt and history.json without a word
    trainer = _trainer(Scripted, tmp_path)
    trainer.fit_one_cycle(2, 0.05)
    saved = load_checkpoint(tmp_path / "best.pt")
    with pytest.raises(FileExistsError, match=r"earlier fit.*trainer\.overwrite = True"):
        trainer.fit_one_cycle(1, 0.05)
    assert load_checkpoint(tmp_path / "best.pt")["history"] == saved["history"]  # untouched
    assert load_checkpoint(tmp_path / "checkpoint.pt")["fit"] == {"epochs": 2, "epochs_done": 2}
    trainer.overwrite = True  # asked for: the second fit is the folder's run now
    trainer.fit_one_cycle(1, 0.05)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["fit"] == {"epochs": 1, "epochs_done": 1}


def test_fine_tune_writes_both_phases_into_one_folder(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3))  # two groups: a body and a head
    trainer = Scripted(
        model, LOSS, _data(), _data(), batch_size=8, out_dir=tmp_path, progress=False
    )
    trainer.fine_tune(1, freeze_epochs=1)  # the second phase is the same run as the first
    assert load_checkpoint(tmp_path / "checkpoint.pt")["then"] is None
    with pytest.raises(FileExistsError, match="earlier fit"):
        trainer.fine_tune(1, freeze_epochs=1)


class Stream(torch.utils.data.IterableDataset):
    def __iter__(self):
        data = _data()
        while True:
            yield from zip(data.inputs, data.targets, strict=True)


def _killed_after_epoch_1(out, train=None, **kwargs):
    model = nn.Linear(4, 3)
    trainer = Scripted(model, LOSS, train or _data(), _data(), batch_size=8, out_dir=out,
                       progress=False, callbacks=[KillAfterEpoch(1)], **kwargs)  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        trainer.fit_one_cycle(3, 0.05)
    return out / "checkpoint.pt"


@pytest.mark.parametrize(
    ("run", "resume", "message"),
    [  # before: the 1cycle never annealed, batch_size was ignored, a raw KeyError: 'momentum'
        ({}, {"train_data": ArrayData(torch.randn(16, 4), torch.arange(16) % 3)},
         r"train_data: .*planned for 4 steps per epoch, this train_data gives 2; resume with"),
        ({"train": Stream(), "steps_per_epoch": 4}, {"train_data": Stream(), "steps_per_epoch": 3},
         r"train_data: .*planned for 4 steps per epoch, this train_data gives 3"),
        ({}, {"batch_size": 16},
         r"batch_size: .*trained at batch_size 8, this resume asks for 16; leave batch_size unset"),
        ({"optimizer": "adamw"}, {"optimizer": "sgd"},
         r"optimizer: .*trained with AdamW, this trainer builds SGD; pass optimizer='adamw'"),
    ],
)  # fmt: skip
def test_a_resume_with_other_settings_is_refused_before_any_step(tmp_path, run, resume, message):
    path = _killed_after_epoch_1(tmp_path, **run)
    options = {"train_data": _data(), "batch_size": 8, **run, **resume}
    options.pop("train", None)
    train = options.pop("train_data")
    with pytest.raises(ValueError, match=message):
        Scripted.resume(path, nn.Linear(4, 3), LOSS, train, _data(), progress=False, **options)
    assert load_checkpoint(path)["fit"]["epochs_done"] == 1


def test_a_resume_without_batch_size_takes_the_runs(tmp_path):
    path = _killed_after_epoch_1(tmp_path)  # batch_size 8: 4 steps per epoch, not 64's one
    history = Scripted.resume(path, nn.Linear(4, 3), LOSS, _data(), _data(), progress=False)
    assert history.status == "completed" and history.steps == 12


@pytest.mark.parametrize("optimizer", ["adamw", "nadamw"])
def test_a_resume_without_optimizer_takes_the_runs(tmp_path, optimizer):
    # a user's check: "pass optimizer='adamw'" for a run whose checkpoint says it was AdamW
    import shutil

    path = _killed_after_epoch_1(tmp_path / "run", optimizer=optimizer)
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    model, named = nn.Linear(4, 3), nn.Linear(4, 3)
    history = Scripted.resume(path, model, LOSS, _data(), _data(), progress=False)
    assert history.status == "completed" and history.steps == 12
    Scripted.resume(tmp_path / "copy" / "checkpoint.pt", named, LOSS, _data(), _data(),
                    progress=False, optimizer=optimizer)  # fmt: skip
    pairs = zip(model.state_dict().values(), named.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_the_same_trainer_stopped_mid_epoch_resumes_from_its_checkpoint(tmp_path):
    # a review's check: Ctrl-C in a notebook mid-epoch, then trainer.resume_from(...) raised
    # "batch_size can change between epochs only" (the resume set the loader's batch size while
    # it stood mid-epoch)
    from superconverge.data import load

    digits = load("digits")

    class Stop(Callback):
        steps = 0

        def after_batch(self, fit):
            self.steps += 1
            if self.steps == 15:  # epoch 2, batch 4 (11 batches an epoch)
                raise KeyboardInterrupt

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    stop = Stop()
    trainer = Trainer(model, LOSS, digits.train, digits.val, batch_size=128, out_dir=tmp_path,
                      progress=False, callbacks=[stop])  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        trainer.fit_one_cycle(3, 0.1)
    assert trainer.train_loader.state_dict()["batch_index"] == 4
    trainer.callbacks.remove(stop)
    history = trainer.resume_from(tmp_path / "checkpoint.pt")
    assert history.status == "completed" and len(history.epochs) == 3


def test_a_resumed_fit_keeps_the_back_offs_it_had_left(tmp_path):
    from tests.training.test_edge import NaNAt

    # a NaN in epoch 1 takes one of the two back-offs; the kill after epoch 1 leaves one
    trainer = Trainer(nn.Linear(4, 3), NaNAt(2), _data(), _data(), batch_size=8, out_dir=tmp_path,
                      progress=False, callbacks=[KillAfterEpoch(1)])  # fmt: skip
    with pytest.raises(KeyboardInterrupt), pytest.warns(RuntimeWarning, match="diverged"):
        trainer.fit_one_cycle(3, 0.05, backoff=2)
    payload = load_checkpoint(tmp_path / "checkpoint.pt")
    assert payload["backoff_left"] == 1
    resumed = Trainer(nn.Linear(4, 3), LOSS, _data(), _data(), batch_size=8, progress=False)
    assert resumed.load_checkpoint(tmp_path / "checkpoint.pt").backoff_left == 1
    del payload["backoff_left"]  # a checkpoint saved before they were: none, as then
    assert resumed.load_checkpoint(tmp_path / "checkpoint.pt", payload).backoff_left == 0


def test_a_resume_in_another_number_of_processes_is_named_as_such(tmp_path):
    # a user's check: a 2-rank checkpoint resumed in one process was told "resume with the
    # run's training data", the data being the same
    with pytest.raises(KeyboardInterrupt):
        _trainer(Scripted, tmp_path, callbacks=[KillAfterEpoch(1)]).fit_one_cycle(3, 0.05)
    path = tmp_path / "checkpoint.pt"
    payload = load_checkpoint(path)
    assert payload["settings"]["world_size"] == 1
    payload["settings"] |= {"world_size": 2, "steps_per_epoch": 2}  # as rank 0 of 2 saw it
    torch.save(payload, path)
    with pytest.raises(ValueError, match=r"trained on 2 processes, this resume runs on 1: .* "
                                         r"resume with torchrun --nproc_per_node 2"):  # fmt: skip
        Scripted.resume(path, nn.Linear(4, 3), LOSS, _data(), _data(), batch_size=8,
                        progress=False)  # fmt: skip


@pytest.mark.parametrize(
    "error", [MemoryError(), PermissionError(13, "Permission denied"), OSError(5, "I/O error")]
)
def test_a_checkpoint_the_machine_cannot_read_is_not_called_corrupt(tmp_path, monkeypatch, error):
    # a reviewer's check: MemoryError became "the file is empty or cut short", and the CLI's
    # advice for a corrupt checkpoint (delete it, or --force) would have discarded a good file
    from superconverge.training.checkpoint import CheckpointError

    path = tmp_path / "checkpoint.pt"
    torch.save({"format": 1}, path)

    def fails(*args, **kwargs):
        raise error

    monkeypatch.setattr(torch, "load", fails)
    with pytest.raises(type(error)) as raised:
        load_checkpoint(path)
    assert not isinstance(raised.value, CheckpointError)


def test_a_compiled_models_weights_load_into_the_network_it_compiled(tmp_path):
    # a user's check: model.pt of a torch.compile'd model held "_orig_mod.0.weight", which the
    # README's load_state_dict line could not load into the plain network; the resume of its
    # checkpoint into the plain network said only "another model"
    from superconverge.training import Trainer

    def net():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 3))

    data = (torch.randn(32, 4), torch.arange(32) % 3)
    compiled = torch.compile(net(), backend="eager")
    Trainer(compiled, torch.nn.functional.cross_entropy, data, batch_size=8, out_dir=tmp_path,
            progress=False).fit_one_cycle(2, 0.1)  # fmt: skip
    plain = net()
    plain.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    assert torch.equal(plain[0].weight, compiled._orig_mod[0].weight)
    with pytest.raises(ValueError, match=r"wrapped by torch.compile .*compile both or neither"):
        Trainer.resume(tmp_path / "checkpoint.pt", net(), torch.nn.functional.cross_entropy,
                       data, batch_size=8, progress=False)  # fmt: skip
