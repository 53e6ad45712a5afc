"""Crash tests of the recipe (`tune`, from Python and from the CLI): Ctrl-C during each stage,
SIGKILL at random steps (the final run's first epoch included) and inside every file write, a
full disk, ``--force`` over a finished run, two runs into one folder. After each: every file
present reads back, and ``--resume`` (``tune(..., resume=True)``) ends with the same decisions
and, on the CPU, the same weights as a run that was never interrupted.

The child runs `tune` on 400 digits (MLP, batch 32, 2 epochs, weight decays 1e-3 and 0). The
default suite runs a few representative cases; ``-m slow`` runs the full matrix.
"""

import json
import random

import pytest

from superconverge._files import FolderLock
from superconverge.training.checkpoint import load_checkpoint
from superconverge.tuning.journal import JOURNAL, Journal
from tests.reliability import crash
from tests.reliability.harness import (
    KILLED,
    assert_same_weights,
    loadable_files,
    record_writes,
    run,
    stage_steps,
    start,
    wait_for,
)

INTERRUPTED = 130  # the CLI's exit status after Ctrl-C (128 + SIGINT)
STAGES = ("batch_size", "lr_bounds", "weight_decay", "momentum", "final_run", "diagnosis")
WRITES = ("journal.json", "checkpoint.pt", "best.pt", "history.csv", "history.json", "plan.json",
          "range_tests.json", "lr_find.png", "report.md", "report.html", "model.pt")  # fmt: skip


def cli_tune(out, *extra, cues=(), expect=0):
    return run("cli", "tune", *crash.TUNE_CLI_ARGS, "--out", out, *extra, cues=cues, expect=expect)


def cli_resume(out, cues=(), expect=0):
    # the run's --data is an entry point: its own resume command trusts it
    return run("cli", "tune", "--resume", out, "--trust-plan-code", cues=cues, expect=expect)


def outcome(out):
    """The decisions in plan.json and the final weights in checkpoint.pt."""
    plan = json.loads((out / "plan.json").read_text())
    return crash.decisions(plan), load_checkpoint(out / "checkpoint.pt")["model"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted CLI run: its decisions, weights, and the steps each stage spent."""
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    done = cli_tune(out)
    keys = Journal.load(out).keys()
    stages = [key for key in keys if "/" not in key]
    assert tuple(stages) == STAGES, keys
    decisions, weights = outcome(out)
    return {"decisions": decisions, "weights": weights, "steps": stage_steps(done, keys),
            "writes": record_writes(done, keys), "keys": keys, "run": done,
            "out": out}  # fmt: skip


def assert_like_reference(out, reference, what):
    assert loadable_files(out) == {}
    decisions, weights = outcome(out)
    assert decisions == reference["decisions"], what
    assert_same_weights(reference["weights"], weights, what)
    assert Journal.load(out).finished


def interrupt_during(stage, reference):
    """Cues that interrupt `stage`: at its middle optimizer step, or, for a stage that trains
    nothing (a given batch size, the default momentum), while its record is being saved."""
    first, last = reference["steps"][stage]
    if last >= first:
        return ("--signal", "INT", "--kill-step", str((first + last) // 2))
    return ("--signal", "INT", "--kill-write", f"{JOURNAL}:{reference['writes'][stage]}")


@pytest.mark.parametrize("stage", [pytest.param(s, marks=() if s == "final_run" else pytest.mark.slow)
                                   for s in STAGES])  # fmt: skip
def test_ctrl_c_during_a_stage_then_resume_ends_like_an_uninterrupted_run(
    tmp_path, reference, stage
):
    out = tmp_path / "run"
    stopped = cli_tune(out, cues=interrupt_during(stage, reference), expect=INTERRUPTED)
    # the data is an entry point this command ran: the resume it offers trusts it
    assert f"superconverge tune --resume {out} --trust-plan-code" in stopped.output
    assert "Traceback" not in stopped.output
    # one line says what was kept and how to go on (it was three, one of them about a checkpoint
    # the final run had not written yet)
    assert stopped.output.count("superconverge tune --resume") == 1
    assert f"kept in {out}" in stopped.output
    assert ("checkpoint" in stopped.output) == (out / "checkpoint.pt").is_file()
    journal = Journal.load(out)
    assert stage not in journal and not journal.finished
    assert loadable_files(out) == {}
    resumed = cli_resume(out)
    assert f"resuming {out}" in resumed.output
    assert_like_reference(out, reference, f"after Ctrl-C in {stage}")


def test_ctrl_c_while_writing_the_report_says_the_run_is_saved_and_how_to_render_it(
    tmp_path, reference
):
    # it said only "interrupted; files already written were left complete": nothing told the
    # user that the run had finished, nor how to get its report
    from superconverge.cli.main import main

    out = tmp_path / "run"
    stopped = cli_tune(out, cues=("--signal", "INT", "--kill-write", "report.html:1"),
                       expect=INTERRUPTED)  # fmt: skip
    assert "interrupted while writing the report: the run finished and is saved in" in (
        stopped.output
    )
    assert f"render its report with: superconverge report {out}" in stopped.output
    assert "Traceback" not in stopped.output and not (out / "report.html").exists()
    assert_like_reference(out, reference, "Ctrl-C while writing the report")
    assert main(["report", str(out)]) == 0 and (out / "report.html").is_file()


def test_sigkill_at_a_random_step_then_resume(tmp_path, reference):
    total = reference["steps"]["diagnosis"][1]
    kill_at = random.Random().randint(1, total)
    out = tmp_path / "run"
    cli_tune(out, cues=("--kill-step", str(kill_at)), expect=KILLED)
    cli_resume(out)
    assert_like_reference(out, reference, f"killed at step {kill_at}")


@pytest.mark.slow
def test_sigkill_in_the_final_runs_first_epoch_loses_at_most_that_epoch(tmp_path, reference):
    first, _ = reference["steps"]["final_run"]
    out = tmp_path / "run"
    cli_tune(out, cues=("--kill-step", str(first + 3)), expect=KILLED)
    assert "momentum" in Journal.load(out)  # every decision before the final run is kept
    cli_resume(out)
    assert_like_reference(out, reference, "killed in the final run's first epoch")


@pytest.mark.slow
@pytest.mark.parametrize(
    "write", [f"{name}:1" for name in WRITES] + ["checkpoint.pt:2", f"{JOURNAL}:3"]
)
def test_sigkill_while_writing_each_kind_of_file_then_resume(tmp_path, reference, write):
    out = tmp_path / "run"
    cli_tune(out, cues=("--kill-write", write), expect=KILLED)
    assert loadable_files(out) == {}, write
    if (out / JOURNAL).exists():
        cli_resume(out)
    else:  # killed before the journal's first save: nothing was decided, start again
        cli_tune(out)
    assert_like_reference(out, reference, f"killed while writing {write}")


def test_a_full_disk_is_named_the_cli_exits_1_and_resume_finishes(tmp_path, reference):
    out = tmp_path / "run"
    failed = cli_tune(out, cues=("--enospc", f"{JOURNAL}:4"), expect=1)
    assert f"no space left on device while writing {out / JOURNAL}" in failed.output
    assert "Traceback" not in failed.output
    assert loadable_files(out) == {}
    cli_resume(out)
    assert_like_reference(out, reference, "after a full disk")


@pytest.mark.parametrize("sent", ["KILL", pytest.param("INT", marks=pytest.mark.slow)])
def test_force_over_a_finished_run_then_a_kill_never_mixes_the_two(tmp_path, reference, sent):
    out = tmp_path / "run"
    cli_tune(out)
    old_plan = (out / "plan.json").read_text()
    first, _ = reference["steps"]["final_run"]
    cues = ("--signal", sent, "--kill-step", str(first + 3))
    replaced = cli_tune(out, "--force", cues=cues, expect=KILLED if sent == "KILL" else INTERRUPTED)
    aside = [p for p in out.iterdir() if p.name.startswith("previous-")]
    assert len(aside) == 1 and f"moved the previous run to {aside[0]}" in replaced.output
    if sent == "INT":  # the interrupt's line says where the replaced run waits
        assert f"the run it replaces is in {aside[0]}/ until this one finishes; continue " in (
            replaced.output
        )
    assert (aside[0] / "plan.json").read_text() == old_plan  # the old run, whole
    assert {p.name for p in aside[0].iterdir()} >= {"checkpoint.pt", "best.pt", "report.html"}
    assert not (out / "plan.json").exists() and not (out / "report.html").exists()
    resumed = cli_resume(out)
    assert not aside[0].exists() and f"deleted the previous run {aside[0]}" in resumed.output
    assert " s of them before the resume); report: " in resumed.output  # the whole run's time
    assert_like_reference(out, reference, "after --force then a kill")


def test_a_second_tune_into_a_busy_folder_fails_at_once_with_exit_1(tmp_path, reference):
    out = tmp_path / "run"
    with FolderLock(out):
        refused = cli_tune(out, expect=1)
        refused_forced = cli_tune(out, "--force", expect=1)
    for result in (refused, refused_forced):
        assert f"{out} is being written by pid" in result.output
        assert "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == [".superconverge.lock"]


@pytest.mark.slow
def test_two_tunes_at_once_the_second_fails_and_the_first_ends_like_the_reference(
    tmp_path, reference
):
    out, gate = tmp_path / "run", tmp_path / "gate"
    first = start("cli", "tune", *crash.TUNE_CLI_ARGS, "--out", out,
                  cues=("--pause-step", "5", "--pause-file", str(gate)))  # fmt: skip
    try:
        wait_for(gate.with_suffix(".paused"), first)
        refused = cli_tune(out, "--force", expect=1)
        assert "is being written by pid" in refused.output
    finally:
        gate.touch()
        finished = first.wait()
    assert finished.returncode == 0, finished.output[-3000:]
    assert_like_reference(out, reference, "of the first of two writers")


def test_resume_with_nothing_to_resume_says_so(tmp_path):
    missing = run("cli", "tune", "--resume", tmp_path, expect=None)
    assert missing.returncode in (1, 2) and "no tune run to resume" in missing.output
    assert "Traceback" not in missing.output


# ----------------------------------------------------------------------------- the Python API
@pytest.fixture(scope="module")
def python_reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("python")
    run("tune", folder / "run", "--result", folder / "result.pt")
    return _result(folder / "result.pt")


def _result(path):
    import torch

    return torch.load(path, weights_only=False)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["lr_bounds", "final_run"])
def test_python_tune_interrupted_then_resume_true_ends_the_same(tmp_path, python_reference, reference,
                                                                stage):  # fmt: skip
    out = tmp_path / "run"
    stopped = run("tune", out, cues=interrupt_during(stage, reference), expect=1)
    assert "KeyboardInterrupt" in stopped.output and "resume=True" in stopped.output
    run("tune", out, "--resume", "--result", tmp_path / "result.pt")
    resumed = _result(tmp_path / "result.pt")
    assert resumed["decisions"] == python_reference["decisions"]
    assert_same_weights(python_reference["weights"], resumed["weights"], f"after {stage}")
