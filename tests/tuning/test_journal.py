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
