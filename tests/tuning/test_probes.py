"""The recipe's measurements: throughput probe and short runs (the GPU probe: tests/test_cuda.py)."""

import math
import os
import pickle
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from superconverge.data import load
from superconverge.models import build
from superconverge.tuning.probes import (
    ShortRun,
    map_in_processes,
    measure_throughput,
    run_short,
    run_short_runs,
)


def make_mlp():
    return build("mlp")


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def _short(digits, **changes):
    run = ShortRun(make_mlp, torch.nn.functional.cross_entropy, digits.train, digits.val,
                   batch_size=64, epochs=1, max_lr=0.1, min_lr=0.01, weight_decay=0.0,
                   momentum=(0.95, 0.85), seed=0)  # fmt: skip
    return run.at(**changes) if changes else run


def test_a_short_run_is_picklable_and_at_changes_only_what_it_names(digits):
    run = _short(digits)
    assert pickle.loads(pickle.dumps(run)).max_lr == 0.1  # it travels to worker processes
    moved = run.at(0.2, 0.02, 1e-4)
    assert (moved.max_lr, moved.min_lr, moved.weight_decay, moved.momentum) == (
        0.2,
        0.02,
        1e-4,
        (0.95, 0.85),
    )
    assert run.at(0.2, 0.02, momentum=0.9).momentum == 0.9
    assert moved.batch_size == run.batch_size and moved.seed == run.seed


def test_short_runs_report_validation_loss_and_are_repeatable(digits):
    first, again = run_short_runs([_short(digits), _short(digits)], workers=1)
    assert first["status"] == "completed" and math.isfinite(first["val_loss"])
    assert first["val_loss"] == again["val_loss"]  # same seed, same numbers
    assert 0.0 < first["val_accuracy"] <= 1.0
    constant = run_short(_short(digits, max_lr=0.1, min_lr=0.01, momentum=0.9))
    assert constant["status"] == "completed"


def test_a_diverged_short_run_has_no_validation_loss(digits):
    with pytest.warns(RuntimeWarning, match="diverged"):
        result = run_short(_short(digits, max_lr=1e4, min_lr=1e3))
    assert result["status"] == "diverged" and math.isnan(result["val_loss"])


def test_throughput_is_measured_for_every_size(digits):
    measured = measure_throughput(make_mlp, digits.train, [16, 32], torch.nn.functional.cross_entropy,
                                  torch.device("cpu"), steps=1, rounds=1)  # fmt: skip
    assert set(measured) == {16, 32} and all(v > 0 for v in measured.values())


def _start_sleep_and_finish(folder):
    (Path(folder) / "started").mkdir(exist_ok=True)
    time.sleep(20)  # a short run nobody will read, once interrupted
    (Path(folder) / "finished").mkdir()


def test_an_interrupt_stops_the_worker_processes_instead_of_waiting_for_them(tmp_path):
    """SIGTERM from a scheduler (the CLI turns it into KeyboardInterrupt) must not wait for the
    short runs in flight: the grace period before SIGKILL may be shorter than a run."""
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()

    def interrupt_once_both_run():
        while not all((folder / "started").exists() for folder in folders):
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # a real signal: Ctrl-C

    threading.Thread(target=interrupt_once_both_run, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        map_in_processes(_start_sleep_and_finish, [str(folder) for folder in folders], 2)
    assert not any((folder / "finished").exists() for folder in folders)  # stopped, not awaited


def _warn_and_square(x):
    import warnings

    warnings.warn("the same warning from every run", UserWarning, stacklevel=1)
    return x * x


def test_the_workers_warnings_are_shown_once_by_the_main_process(recwarn):
    import warnings

    # a user's check: tune --workers 2 --metric mse printed the metric's warning once per
    # spawned worker, in Python's two-line form, where the single process printed it once
    from superconverge._warnings import shown_once

    with shown_once():
        assert map_in_processes(_warn_and_square, [1, 2, 3], 2) == [1, 4, 9]
    shown = [w for w in recwarn if "the same warning" in str(w.message)]
    assert len(shown) == 1  # raised in each of the 3 runs, in 2 processes: shown here, once
    assert shown[0].category is UserWarning
    assert shown[0].filename == __file__ and shown[0].lineno > 0  # where the run raised it
    # outside one tune, Python's filters alone decide ("always": every time)
    recwarn.clear()
    warnings.simplefilter("always")
    map_in_processes(_warn_and_square, [1, 2], 1)
    assert [str(w.message) for w in recwarn] == ["the same warning from every run"] * 2


def test_a_metric_that_does_not_apply_is_warned_about_once_per_tune(recwarn):
    import superconverge as sc
    from superconverge.data import load
    from superconverge.models import build

    digits = load("digits")
    sc.tune(lambda: build("mlp"), digits.train, digits.val, epochs=1, metrics=["mse"])
    shown = [w for w in recwarn if "'mse' does not apply" in str(w.message)]
    assert len(shown) == 1  # a trainer per range test and short run raised it: shown once
    recwarn.clear()
    sc.tune(lambda: build("mlp"), digits.train, digits.val, epochs=1, metrics=["mse"])
    assert len([w for w in recwarn if "'mse' does not apply" in str(w.message)]) == 1
    # a Dataset: the data check sees 2 samples, the trainers batches of 16 (another message
    # text, the same warning)
    recwarn.clear()
    train = torch.utils.data.TensorDataset(digits.train.inputs, digits.train.targets)
    sc.tune(lambda: build("mlp"), train, digits.val, epochs=1, metrics=["mse"])
    assert len([w for w in recwarn if "'mse' does not apply" in str(w.message)]) == 1


def test_warnings_shown_once_per_tune_in_one_thread_do_not_leak_into_another():
    # two tunes at once in one process (a notebook's background thread) once shared one global
    import threading

    from superconverge import _warnings

    inside, release = threading.Event(), threading.Event()

    def background():
        with _warnings.shown_once():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=background)
    thread.start()
    inside.wait(10)
    assert _warnings._shown.get() is None  # this thread is in no tune
    with _warnings.shown_once():
        release.set()
        thread.join()
        assert _warnings._shown.get() == set()
    assert _warnings._shown.get() is None


def test_workers_refuse_what_cannot_reach_their_processes_before_anything_runs():
    # a user's check: tune(lambda: ..., workers=2) ran the range test, then failed with
    # PicklingError from inside the process pool
    import functools

    import superconverge as sc
    from superconverge.data import load
    from superconverge.models import build

    digits = load("digits")
    started = []

    def model_fn():
        started.append(1)
        return build("mlp")

    with pytest.raises(ValueError, match=r"model_fn cannot be sent to the worker processes of "
                       r"workers>1 .*define it at module level .*or pass workers=1"):  # fmt: skip
        sc.tune(model_fn, digits.train, digits.val, epochs=1, workers=2)
    assert started == []  # refused before the data check built a model

    class Local(torch.utils.data.Dataset):  # a Dataset class inside a function
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.zeros(64), 0

    with pytest.raises(ValueError, match="train_data cannot be sent to the worker processes"):
        sc.tune(functools.partial(build, "mlp"), Local(), digits.val, epochs=1, workers=2)


def _die(_):
    os._exit(1)  # as a worker killed by the OOM killer, or one that re-ran an unguarded script


def test_a_worker_that_dies_is_explained_not_left_as_brokenprocesspool():
    with pytest.raises(RuntimeError, match=r"a short run's worker process died .*guard its top "
                       r"level with `if __name__ == \"__main__\":`"):  # fmt: skip
        map_in_processes(_die, [1, 2], 2)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl's parent-death signal")
def test_workers_end_with_a_killed_main_process():
    # tune --workers 2 killed with SIGKILL (a scheduler's hard stop) left its spawned workers
    # behind for ever, holding the output pipes a wrapper waited on
    import subprocess

    script = (
        "import os, time; from superconverge.tuning.probes import map_in_processes\n"
        "print(os.getpid(), flush=True)\n"
        "map_in_processes(time.sleep, [60, 60], 2)\n"
    )
    main = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert main.stdout is not None and int(main.stdout.readline()) == main.pid
    workers: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        children = Path(f"/proc/{main.pid}/task/{main.pid}/children").read_text().split()
        workers = [pid for pid in children if "spawn_main" in _command_line(pid)]
        if len(workers) == 2:
            break
        time.sleep(0.1)
    assert len(workers) == 2, "the workers never started"
    main.kill()
    main.wait()
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    for pid in left:  # not to leave them to the next test
        os.kill(int(pid), signal.SIGKILL)
    assert not left


def _command_line(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""
