"""A new run never mixes with an earlier one: the earlier one is moved aside, whole."""

import os
import subprocess
import sys
import textwrap

import pytest

from superconverge._files import LOCK_NAME, FolderBusyError
from superconverge._run_folder import discard, is_empty_but_for_us, move_aside, run_files


def test_the_earlier_run_moves_aside_whole_and_other_files_stay(tmp_path):
    for name in ("plan.json", "checkpoint.pt", "report.html"):
        (tmp_path / name).write_text(name)
    (tmp_path / "my_notes.txt").write_text("mine")
    (tmp_path / LOCK_NAME).write_text("pid 1")
    aside = move_aside(tmp_path)
    assert sorted(p.name for p in aside.iterdir()) == ["checkpoint.pt", "plan.json", "report.html"]
    assert (aside / "plan.json").read_text() == "plan.json"
    assert sorted(p.name for p in tmp_path.iterdir() if p != aside) == [LOCK_NAME, "my_notes.txt"]
    assert not is_empty_but_for_us(tmp_path)  # the user's notes
    os.unlink(tmp_path / "my_notes.txt")
    assert is_empty_but_for_us(tmp_path)
    discard(aside)
    assert not aside.exists()


def test_a_move_cut_short_by_a_kill_is_completed_into_the_same_subfolder(tmp_path):
    staging = tmp_path / ".moving-aside-20260101-000000"
    staging.mkdir()
    (staging / "plan.json").write_text("old plan")  # moved before the kill
    (tmp_path / "checkpoint.pt").write_text("old weights")  # not yet moved
    aside = move_aside(tmp_path)
    assert aside.name == "previous-20260101-000000"
    assert sorted(p.name for p in aside.iterdir()) == ["checkpoint.pt", "plan.json"]
    assert [p.name for p in tmp_path.iterdir()] == [aside.name]


def test_two_moves_in_one_second_get_two_subfolders(tmp_path):
    (tmp_path / "plan.json").write_text("first")
    first = move_aside(tmp_path)
    (tmp_path / "plan.json").write_text("second")
    second = move_aside(tmp_path)
    assert first != second
    assert (first / "plan.json").read_text() == "first"
    assert (second / "plan.json").read_text() == "second"


def test_temporary_files_are_not_a_run(tmp_path):
    (tmp_path / ".journal.json.123.abc.partial").write_bytes(b"half")  # a writer killed mid-write
    assert run_files(tmp_path) == []
    assert is_empty_but_for_us(tmp_path)


def test_a_refit_of_the_plan_goes_aside_with_the_run(tmp_path):
    # `fit --plan runs/x/plan.json` writes runs/x/refit; `tune --force --out runs/x` left it
    # beside the new plan, a refit of a plan no longer there
    (tmp_path / "plan.json").write_text("old plan")
    (tmp_path / "refit").mkdir()
    (tmp_path / "refit" / "plan.json").write_text("refit of the old plan")
    aside = move_aside(tmp_path)
    assert sorted(p.name for p in aside.iterdir()) == ["plan.json", "refit"]
    assert (aside / "refit" / "plan.json").read_text() == "refit of the old plan"
    assert is_empty_but_for_us(tmp_path)


def test_a_refit_being_written_is_not_moved_from_under_its_writer(tmp_path):
    (tmp_path / "plan.json").write_text("old plan")
    refit = tmp_path / "refit"
    refit.mkdir()
    code = textwrap.dedent(f"""
        import sys
        from superconverge._files import FolderLock
        with FolderLock({str(refit)!r}):
            print("held", flush=True)
            sys.stdin.readline()
    """)
    writer = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusyError, match=rf"{refit} is being written by pid"):
            move_aside(tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json", "refit"]  # untouched
    finally:
        writer.communicate("done\n", timeout=30)
