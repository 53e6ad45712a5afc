"""The recipe's journal: records saved as they are made, read back only with the same settings."""

import dataclasses
import json
import math

import pytest

from superconverge.tuning.journal import JOURNAL, Journal
from superconverge.tuning.settings import RecipeSettings


def test_every_record_is_on_disk_before_remember_returns(tmp_path):
    journal = Journal.start(tmp_path, {"epochs": 2, "weight_decays": (1e-3, 0.0)})
    assert json.loads((tmp_path / JOURNAL).read_text())["records"] == {}
    journal.remember("lr_bounds", lambda: {"max_lr": 0.3, "losses": [1.0, math.nan]})
    saved = json.loads((tmp_path / JOURNAL).read_text())
    assert saved["records"]["lr_bounds"] == {"max_lr": 0.3, "losses": [1.0, "nan"]}


def test_resume_returns_the_records_without_computing_them_again(tmp_path):
    Journal.start(tmp_path, {"epochs": 2}).record("batch_size", 32)
    calls = []
    journal = Journal.resume(tmp_path, {"epochs": 2})
    assert journal.remember("batch_size", lambda: calls.append(1) or 64) == 32
    # computed, and returned as a resume will read it back (JSON: lists for tuples)
    assert journal.remember("momentum", lambda: (0.95, 0.85)) == [0.95, 0.85]
    assert calls == []
    assert Journal.load(tmp_path).get("momentum") == [0.95, 0.85]
    assert Journal.load(tmp_path).keys() == ["batch_size", "momentum"]


def test_other_settings_are_refused_naming_the_setting(tmp_path):
    Journal.start(tmp_path, {"epochs": 2, "seed": 0})
    with pytest.raises(ValueError, match="epochs 2 there, 3 now"):
        Journal.resume(tmp_path, {"epochs": 3, "seed": 0})


def test_a_constant_added_since_the_run_was_recorded_differs_only_away_from_its_default(
    tmp_path,
):
    # a run recorded before `extend_final_run` and `extension_reserve_fraction` existed
    current = dataclasses.asdict(RecipeSettings())
    earlier = {k: v for k, v in current.items() if not k.startswith("exten")}
    Journal.start(tmp_path, {"epochs": 2, "settings": earlier})
    Journal.resume(tmp_path, {"epochs": 2, "settings": current})  # resumes after an upgrade
    off = dataclasses.asdict(RecipeSettings(extend_final_run=False))
    with pytest.raises(ValueError, match=r"settings\.extend_final_run True there, False now"):
        Journal.resume(tmp_path, {"epochs": 2, "settings": off})
    other = dataclasses.asdict(RecipeSettings(lr_divisors=(10.0,)))
    with pytest.raises(ValueError, match=r"settings\.lr_divisors \[10\.0, 5\.0, 3\.0\] there"):
        Journal.resume(tmp_path, {"epochs": 2, "settings": other})


def test_nothing_to_resume_and_a_foreign_file_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tune run to resume"):
        Journal.load(tmp_path)
    (tmp_path / JOURNAL).write_text("{not json")
    with pytest.raises(ValueError, match=f"{JOURNAL} cannot be read as a tune journal"):
        Journal.load(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [  # a resume deleted any folder called previous-* that `replaces` named, anywhere on disk
        ("replaces", "/elsewhere/previous-keep", "replaces must be null or the name of a previous-"),
        ("replaces", "../other/previous-1", "replaces must be null or the name of a previous-"),
        ("replaces", "checkpoint-folder", "replaces must be null or the name of a previous-"),
        ("command", "--epochs 3", "command must be null or a list of flags"),  # split in letters
        ("records", [], "records must be a JSON object, got list"),  # started over, unsaid
    ],
)
def test_a_journal_edited_by_hand_is_refused_naming_the_field(tmp_path, field, value, message):
    Journal.start(tmp_path, {"epochs": 2}, command=["--epochs", "2"], replaces="previous-1")
    assert Journal.load(tmp_path).replaces == "previous-1"
    saved = json.loads((tmp_path / JOURNAL).read_text())
    saved[field] = value
    (tmp_path / JOURNAL).write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=f"{JOURNAL}: {message}"):
        Journal.load(tmp_path)


def test_a_record_that_json_cannot_hold_fails_before_anything_is_saved(tmp_path):
    journal = Journal.start(tmp_path, {})
    with pytest.raises(TypeError, match="must be JSON data"):
        journal.record("model", object())
    assert Journal.load(tmp_path).keys() == []


def test_without_a_folder_it_only_computes(tmp_path):
    journal = Journal(None, {})
    assert journal.remember("a", lambda: 1) == 1
    assert journal.path is None


def test_finish_and_command_survive_a_reload(tmp_path):
    journal = Journal.start(tmp_path, {}, command=["tune", "--epochs", "2"], replaces="previous-x")
    journal.finish()
    again = Journal.load(tmp_path)
    assert again.finished and again.command == ["tune", "--epochs", "2"]
    assert again.replaces == "previous-x"
    assert "finished" in again.summary()


def test_the_seconds_of_earlier_processes_are_kept_and_charged_to_the_unfinished_stage(tmp_path):
    # a user's check: after --resume the stage that was interrupted counted only the resumed
    # part of its time, and the total only this process's
    first = Journal(tmp_path, {"epochs": 2}, elapsed_s=0.0)
    first.record("batch_size", {"decision": 16, "seconds": 0.5})
    first.record("short_run/a", {"val_loss": 1.0})
    first.elapsed_before = 40.0  # as if the first process had run 40 s (no sleeping here)
    first.save()
    saved = json.loads((tmp_path / JOURNAL).read_text())
    assert saved["elapsed_s"] >= 40.0 and 0.0 <= saved["stage_at_s"]["batch_size"] < 40.0
    at = saved["stage_at_s"]["batch_size"]
    # the resume: the same numbers back, and the stage the first process left unfinished is
    # charged what that process spent after its last stage record
    resumed = Journal.resume(tmp_path, {"epochs": 2})
    assert resumed.elapsed_before == saved["elapsed_s"]
    assert resumed.stage_at_s == {"batch_size": at}
    lr = resumed.record("lr_bounds", {"decision": 0.1, "seconds": 2.0})
    assert lr["seconds"] == pytest.approx(2.0 + saved["elapsed_s"] - at)
    # once: the next stage is this process's alone, and measurements are never charged
    assert resumed.record("momentum", {"seconds": 1.0})["seconds"] == 1.0
    assert resumed.record("short_run/b", {"seconds": 3.0})["seconds"] == 3.0
    assert Journal.load(tmp_path).elapsed() >= saved["elapsed_s"]


def test_a_journal_from_before_the_seconds_were_saved_still_loads(tmp_path):
    Journal.start(tmp_path, {"epochs": 2}).record("batch_size", 16)
    data = json.loads((tmp_path / JOURNAL).read_text())
    del data["elapsed_s"], data["stage_at_s"]
    (tmp_path / JOURNAL).write_text(json.dumps(data))
    old = Journal.resume(tmp_path, {"epochs": 2})
    assert old.elapsed_before == 0.0 and old.stage_at_s == {}
    assert old.record("lr_bounds", {"seconds": 2.0})["seconds"] == 2.0


def test_a_run_recorded_before_the_in_run_search_resumes_as_the_short_run_search(tmp_path):
    # a journal without `lr_search` was made by the short-run search: a resume with today's
    # default (in_run) would ignore its short runs and overwrite its final run
    current = dataclasses.asdict(RecipeSettings())
    earlier = {k: v for k, v in current.items() if k != "lr_search"}
    Journal.start(tmp_path, {"epochs": 2, "settings": earlier})
    short = dataclasses.asdict(RecipeSettings(lr_search="short_runs"))
    Journal.resume(tmp_path, {"epochs": 2, "settings": short})
    with pytest.raises(ValueError, match=r"settings\.lr_search 'short_runs' there, 'in_run' now"):
        Journal.resume(tmp_path, {"epochs": 2, "settings": current})


def test_cli_resume_of_a_run_from_before_the_in_run_search_continues_it_by_short_runs(tmp_path):
    import json

    from superconverge.cli.main import main

    out = tmp_path / "run"
    assert main(["tune", "--lr-search", "short-runs", "--epochs", "1", "--out", str(out)]) == 0
    # as the previous version wrote it: no --lr-search, no lr_search setting, not finished
    path = out / JOURNAL
    data = json.loads(path.read_text())
    data["command"] = [a for a in data["command"] if a not in ("--lr-search", "short-runs")]
    del data["settings"]["settings"]["lr_search"]
    data["finished"] = False
    for key in ("final_run", "diagnosis"):
        data["records"].pop(key, None)
    path.write_text(json.dumps(data))
    (out / "plan.json").unlink()
    assert main(["tune", "--resume", str(out)]) == 0
    plan = json.loads((out / "plan.json").read_text())
    assert [e["step"] for e in plan["evidence"]][:2] == ["batch_size", "lr_bounds"]
    assert plan["policy"] == "smith" and plan["results"]["status"] == "completed"


def test_a_loss_partial_is_recorded_with_its_arguments(tmp_path):
    # every functools.partial was recorded as 'partial': a resume with another label_smoothing
    # (or a study worker with one) was taken
    import functools

    import torch

    from superconverge.tuning.resumable import tune_settings

    def settings(loss):
        data = (torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))
        return tune_settings(torch.nn.Linear(2, 2), data, data, None, loss_fn=loss, augment=None)

    smooth = functools.partial(torch.nn.functional.cross_entropy, label_smoothing=0.1)
    Journal.start(tmp_path, settings(smooth))
    Journal.resume(tmp_path, settings(smooth))
    other = functools.partial(torch.nn.functional.cross_entropy, label_smoothing=0.5)
    with pytest.raises(ValueError, match=r"loss_fn 'partial\(cross_entropy, label_smoothing=0\.1\)'"):
        Journal.resume(tmp_path, settings(other))


def test_the_ranks_differ_only_where_the_journal_recorded_them():
    # a reviewer's check: a torchrun run's journal from before world_size was recorded was
    # told it "trained on 1 processes (torchrun)", and neither resume worked
    from superconverge.tuning.journal import settings_differences

    assert settings_differences({"epochs": 2}, {"epochs": 2, "world_size": 2}) == []
    assert settings_differences({"epochs": 2, "world_size": 2}, {"epochs": 2}) == [
        "world_size 2 there, 'unset' now"
    ]
    assert settings_differences({"world_size": 2}, {"world_size": 4}) == [
        "world_size 2 there, 4 now"
    ]
