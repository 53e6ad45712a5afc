import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from superconverge.training.checkpoint import load_checkpoint

SCRIPT = Path(__file__).with_name("train_script.py")
STEPS_PER_EPOCH = 41  # 1295 digits training samples / batch 32, rounded up


def _run(out, *args, expect_kill=False, env=None):
    run = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=None if env is None else {**os.environ, **env},
    )
    if expect_kill:
        assert run.returncode == -9, run.stderr[-2000:]
    else:
        assert run.returncode == 0, run.stderr[-2000:]
    return run


def _weights(path):
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    _run(out, "full")
    return _weights(out / "final_weights.pt")


def test_sigkill_at_a_random_step_then_resume_gives_the_same_weights(tmp_path, uninterrupted):
    kill_at = random.Random().randrange(STEPS_PER_EPOCH + 1, 3 * STEPS_PER_EPOCH)  # after epoch 1
    _run(tmp_path, "kill", str(kill_at), expect_kill=True)
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved["fit"]["epochs_done"] == kill_at // STEPS_PER_EPOCH
    _run(tmp_path, "resume")
    resumed = _weights(tmp_path / "final_weights.pt")
    for name, tensor in uninterrupted.items():
        assert torch.equal(tensor, resumed[name]), f"{name} differs (killed at step {kill_at})"


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_one_valid(tmp_path, uninterrupted):
    _run(tmp_path, "kill-in-save", expect_kill=True)
    saved = load_checkpoint(tmp_path / "checkpoint.pt")  # the epoch-1 checkpoint, intact
    assert saved["fit"]["epochs_done"] == 1
    _run(tmp_path, "resume")
    resumed = _weights(tmp_path / "final_weights.pt")
    for name, tensor in uninterrupted.items():
        assert torch.equal(tensor, resumed[name]), name
    assert not list(tmp_path.glob(".*.partial"))  # the next save cleaned up after itself


def test_a_fit_with_frozen_groups_and_discriminative_lrs_resumes_exactly(tmp_path):
    # fine_tune's kind of fit: a frozen first group and one optimizer group per param group; a
    # fresh trainer has neither until the checkpoint says so
    env = {"TRAIN_DISCRIMINATIVE": "1"}
    _run(tmp_path / "full", "full", env=env)
    expected = _weights(tmp_path / "full" / "final_weights.pt")
    out = tmp_path / "killed"
    _run(out, "kill", str(2 * STEPS_PER_EPOCH + 5), expect_kill=True, env=env)
    assert load_checkpoint(out / "checkpoint.pt")["frozen"] == [0, 1]
    _run(out, "resume", env=env)
    resumed = _weights(out / "final_weights.pt")
    for name, tensor in expected.items():
        assert torch.equal(tensor, resumed[name]), name


def test_fine_tune_killed_in_its_frozen_phase_resumes_into_its_second_phase(tmp_path):
    # before: the resume finished the frozen phase and returned, the second phase never ran
    env = {"TRAIN_FINE_TUNE": "1"}
    _run(tmp_path / "full", "full", env=env)
    expected = _weights(tmp_path / "full" / "final_weights.pt")
    out = tmp_path / "killed"
    _run(out, "kill", str(STEPS_PER_EPOCH + 5), expect_kill=True, env=env)  # frozen epoch 2 of 2
    saved = load_checkpoint(out / "checkpoint.pt")
    assert saved["fit"]["epochs_done"] == 1 and saved["frozen"]
    assert saved["then"]["fine_tune"]["epochs"] == 2
    _run(out, "resume", env=env)
    finished = load_checkpoint(out / "checkpoint.pt")
    assert finished["then"] is None and not finished["frozen"]  # the second phase's last save
    assert finished["fit"] == {"epochs": 2, "epochs_done": 2}
    resumed = _weights(out / "final_weights.pt")
    for name, tensor in expected.items():
        assert torch.equal(tensor, resumed[name]), name
