"""Crash tests of `Trainer` with an ``out_dir``: kills at any step and inside every file write,
a full disk, two writers. After each: every file present reads back, and finishing the run
(``Trainer.resume``, or a rerun when no checkpoint was saved yet) gives, on the CPU, the same
weights as a run that was never interrupted.

The child (`crash.py fit`) trains the digits MLP (with dropout) on 400 samples for 3 epochs of
13 steps. The default suite runs a few representative cases; ``-m slow`` runs the full matrix.
"""

import random
import subprocess

import pytest
import torch

from superconverge._files import FolderLock
from superconverge.training.checkpoint import load_checkpoint
from tests.reliability import crash
from tests.reliability.harness import (
    KILLED,
    assert_same_weights,
    loadable_files,
    run,
    start,
    wait_for,
)

STEPS_PER_EPOCH = -(-crash.TRAIN // crash.BATCH)  # 13
TOTAL_STEPS = crash.FIT_EPOCHS * STEPS_PER_EPOCH
WRITES = ("checkpoint.pt", "best.pt", "history.csv", "history.json", "model.pt")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    done = run("fit", out)
    return {"weights": torch.load(out / "final_weights.pt", weights_only=True), "run": done}


def finish(out):
    """Complete an interrupted run the way a user would: resume from the checkpoint, or start
    again when the first epoch did not finish."""
    if (out / "checkpoint.pt").exists():
        run("fit", out, "--resume")
    else:
        run("fit", out)
    return torch.load(out / "final_weights.pt", weights_only=True)


def kill_and_finish(out, reference, *cues, expect=KILLED):
    died = run("fit", out, cues=cues, expect=expect)
    assert loadable_files(out) == {}, f"after {cues}"
    assert not (out / "final_weights.pt").exists()
    assert_same_weights(reference["weights"], finish(out), f"after {cues}")
    assert not list(out.glob(".*.partial")), "a temporary file outlived the run that finished it"
    return died


def test_killed_in_the_first_epoch_a_rerun_loses_only_that_epoch(tmp_path, reference):
    kill_at = random.Random().randint(1, STEPS_PER_EPOCH)
    kill_and_finish(tmp_path, reference, "--kill-step", str(kill_at))


def test_killed_at_a_random_later_step_resumes_to_the_same_weights(tmp_path, reference):
    kill_at = random.Random().randint(STEPS_PER_EPOCH + 1, TOTAL_STEPS)
    run("fit", tmp_path, cues=("--kill-step", str(kill_at)), expect=KILLED)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["fit"]["epochs_done"] == (
        (kill_at - 1) // STEPS_PER_EPOCH
    )
    assert_same_weights(reference["weights"], finish(tmp_path), f"killed at step {kill_at}")


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [1, STEPS_PER_EPOCH, STEPS_PER_EPOCH + 1, TOTAL_STEPS - 1])
def test_kill_at_each_edge_of_an_epoch(tmp_path, reference, kill_at):
    kill_and_finish(tmp_path, reference, "--kill-step", str(kill_at))


def test_killed_while_writing_the_second_checkpoint(tmp_path, reference):
    kill_and_finish(tmp_path, reference, "--kill-write", "checkpoint.pt:2")


@pytest.mark.slow
@pytest.mark.parametrize("write", [f"{name}:{n}" for name in WRITES for n in (1, 2)
                                   if (name, n) not in (("history.json", 2), ("model.pt", 2))])  # fmt: skip
def test_killed_while_writing_each_kind_of_file(tmp_path, reference, write):
    kill_and_finish(tmp_path, reference, "--kill-write", write)


@pytest.mark.parametrize("write", ["checkpoint.pt:2", pytest.param("history.csv:2", marks=pytest.mark.slow),
                                   pytest.param("best.pt:2", marks=pytest.mark.slow)])  # fmt: skip
def test_a_full_disk_is_named_and_loses_nothing(tmp_path, reference, write):
    name = write.split(":")[0]
    failed = kill_and_finish(tmp_path, reference, "--enospc", write, expect=1)
    assert f"no space left on device while writing {tmp_path / name}" in failed.stderr


@pytest.mark.slow
def test_a_full_tmpfs_then_more_space_resumes_to_the_same_weights(tmp_path, reference):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=360k", "tmpfs", str(disk)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        out = disk / "run"
        failed = run("fit", out, expect=1)
        assert "no space left on device while writing" in failed.stderr, failed.stderr[-2000:]
        assert loadable_files(out) == {}
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        assert_same_weights(reference["weights"], finish(out), "after a full disk")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_second_writer_is_refused_at_once(tmp_path, reference):
    with FolderLock(tmp_path):  # this process holds the folder, as a running fit would
        refused = run("fit", tmp_path, expect=1)
    assert f"{tmp_path} is being written by pid" in refused.stderr
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.slow
def test_two_fits_into_one_folder_the_second_fails_and_the_first_is_intact(tmp_path, reference):
    gate = tmp_path.parent / f"{tmp_path.name}-gate"
    first = start("fit", tmp_path, cues=("--pause-step", "5", "--pause-file", str(gate)))
    try:
        wait_for(gate.with_suffix(".paused"), first)
        refused = run("fit", tmp_path, expect=1)
        assert "is being written by pid" in refused.stderr
    finally:
        gate.touch()
        finished = first.wait()
    assert finished.returncode == 0, finished.output[-3000:]
    weights = torch.load(tmp_path / "final_weights.pt", weights_only=True)
    assert_same_weights(reference["weights"], weights, "of the first writer")


# ----------------------------------------------------------------------- superconverge fit --plan
def _cli_plan(folder):
    """A digits plan for `superconverge fit --plan`: 3 epochs of 21 steps (1295 samples, 64)."""
    import json

    plan = {"epochs": 3, "batch_size": 64, "max_lr": 0.1, "min_lr": 0.01, "weight_decay": 0.0,
            "momentum": [0.95, 0.85], "data": "digits", "model": "mlp",
            "model_options": {"in_features": 64, "num_classes": 10}}  # fmt: skip
    path = folder / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def test_cli_fit_interrupted_says_what_it_kept_and_resume_ends_like_an_uninterrupted_run(
    tmp_path,
):
    # a user's check: Ctrl-C in epoch 2 of 3 said only "interrupted"; the same command was then
    # refused ("not empty; pass --force") and --force trained from scratch: fit had no resume
    plan = _cli_plan(tmp_path)
    whole, out = tmp_path / "whole", tmp_path / "out"
    run("cli", "fit", "--plan", plan, "--out", whole)
    command = ("fit", "--plan", plan, "--out", out)
    stopped = run("cli", *command, cues=("--signal", "INT", "--kill-step", "30"), expect=130)
    assert stopped.stderr.strip().endswith(
        f"interrupted: {out / 'checkpoint.pt'} holds epoch 1 of 3; continue with: superconverge "
        f"fit --plan {plan} --out {out} --resume; files already written were left complete"
    ), stopped.stderr[-1000:]
    assert loadable_files(out) == {}
    again = run("cli", *command, expect=2)
    assert "holds a fit of this plan that did not finish (epoch 1 of 3); continue it with: " in (
        again.stderr
    )
    resumed = run("cli", *command, "--resume")
    assert "completed: 3 epochs" in resumed.stdout
    weights = [load_checkpoint(folder / "checkpoint.pt")["model"] for folder in (whole, out)]
    assert_same_weights(*weights, "after fit --resume")
    assert run("cli", *command, "--resume").stdout.startswith(f"fit: {out} holds a finished run")


def test_cli_fit_resume_without_a_checkpoint_of_the_plan_is_refused(tmp_path):
    plan = _cli_plan(tmp_path)
    out = tmp_path / "out"
    stopped = run("cli", "fit", "--plan", plan, "--out", out,
                  cues=("--signal", "INT", "--kill-step", "5"), expect=130)  # fmt: skip
    again = f"superconverge fit --plan {plan} --out {out} --force"
    kept = "no checkpoint of an epoch was saved, nothing kept"
    assert f"interrupted: {kept}; start again with: {again};" in stopped.stderr
    refused = run("cli", "fit", "--plan", plan, "--out", out, "--resume", expect=2)
    assert f"--resume: {out} holds no checkpoint.pt of --plan {plan}" in refused.stderr
    assert "Traceback" not in refused.output
    both = run("cli", "fit", "--plan", plan, "--out", out, "--resume", "--force", expect=2)
    assert "--resume continues the run in --out and --force replaces it; pass one" in both.stderr
    run("cli", "fit", "--plan", plan, "--out", out, "--force")  # what the line said


def test_cli_fit_force_interrupted_names_the_run_it_replaces_and_resume_deletes_it(tmp_path):
    # a --force fit stopped mid-run left the run it replaced in previous-*/ without a word, and
    # its --resume never deleted it (only a run started with --force did, once finished)
    plan = _cli_plan(tmp_path)
    out = tmp_path / "out"
    command = ("fit", "--plan", plan, "--out", out)
    run("cli", *command)
    old = load_checkpoint(out / "checkpoint.pt")["model"]
    stopped = run("cli", *command, "--force", cues=("--signal", "INT", "--kill-step", "30"),
                  expect=130)  # fmt: skip
    (aside,) = [p for p in out.iterdir() if p.name.startswith("previous-")]
    assert f"holds epoch 1 of 3; the run it replaces is in {aside}/ until this one finishes; " in (
        stopped.stderr
    )
    assert_same_weights(old, load_checkpoint(aside / "checkpoint.pt")["model"], "moved aside")
    resumed = run("cli", *command, "--resume")
    assert f"fit: deleted the previous run {aside}" in resumed.stdout
    assert not aside.exists()
    assert_same_weights(old, load_checkpoint(out / "checkpoint.pt")["model"], "after --resume")
