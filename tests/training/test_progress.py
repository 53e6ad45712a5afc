import io
import logging
import re
import sys
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from superconverge.data import ArrayData
from superconverge.training import Trainer
from superconverge.training.progress import (
    FitProgress,
    format_seconds,
    resolve_progress,
    silenced,
    tell,
)

LOSS = nn.functional.cross_entropy
LINE = re.compile(
    r"epoch (\d+)/(\d+), step (\d+)/(\d+), loss (\d+\.\d{4}), lr ([0-9.e+-]+), (\S+) left$"
)


def _data(samples=32):
    generator = torch.Generator().manual_seed(0)
    return ArrayData(torch.randn(samples, 4, generator=generator), torch.arange(samples) % 3)


class _Pipe(io.StringIO):
    """stderr as a batch job has it: not a terminal."""

    def isatty(self):
        return False


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_outside_a_terminal_a_real_fit_prints_plain_lines_with_step_loss_lr_and_time_left(
    capsys,
):
    """capsys's stderr is no terminal, as a batch job's or a pipe's."""
    torch.manual_seed(0)
    trainer = Trainer(
        nn.Linear(4, 3), LOSS, _data(), _data(16), batch_size=8, sync_every=2,
        progress_interval=0, device="cpu",
    )  # fmt: skip
    assert trainer.progress == "lines"
    history = trainer.fit_one_cycle(2, 0.05)  # 4 steps per epoch, losses read every 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    progress = [LINE.match(line) for line in lines if line.startswith("epoch") and "step" in line]
    assert all(progress)
    steps = [(int(m[1]), int(m[3]), int(m[4])) for m in progress]
    assert steps == [(1, 2, 8), (1, 4, 8), (2, 6, 8), (2, 8, 8)]  # (epoch, step, total)
    assert [float(m[5]) for m in progress] == pytest.approx(
        [history.step_losses[i] for i in (1, 3, 5, 7)], abs=1e-4
    )
    assert [float(m[6]) for m in progress] == pytest.approx(
        [history.step_lrs[i][0] for i in (1, 3, 5, 7)], rel=1e-2
    )
    assert progress[-1][7] == "0s"  # nothing left after the last step
    epochs = [line for line in lines if "train_loss" in line]
    assert len(epochs) == 2 and epochs[0].startswith("epoch 1/2, train_loss ")
    assert "\r" not in err  # no bar redrawn into a log


def test_lines_wait_for_the_interval():
    now = [0.0]
    progress = FitProgress("lines", epochs=1, total_steps=100, interval_s=30, clock=lambda: now[0])
    progress.start_epoch(1, 100)
    said = []
    progress_line = progress.line

    def recording(step, loss, lr, at):
        said.append(step)
        return progress_line(step, loss, lr, at)

    progress.line = recording
    for step in range(10, 101, 10):
        now[0] += 10.0  # 10 steps every 10 s: a line every 30 s
        progress.advance(10, step, 0.5, 0.1)
    assert said == [30, 60, 90]


def test_time_left_comes_from_this_fits_own_pace_also_after_a_resume():
    progress = FitProgress("lines", epochs=4, total_steps=400, start_step=200, clock=lambda: 0.0)
    progress.start_epoch(3, 100)
    # 50 steps since the resume in 25 s: 150 left at 2 steps/s
    assert progress.line(250, 0.25, 0.01, 25.0) == (
        "epoch 3/4, step 250/400, loss 0.2500, lr 0.01, 1m15s left"
    )
    assert progress.line(200, 0.25, 0.01, 0.0).endswith("? left")  # no pace yet


def test_auto_is_a_bar_in_a_terminal_lines_in_a_pipe_and_off_when_logging_is_quiet(
    monkeypatch,
):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert resolve_progress("auto") == "bar"
    monkeypatch.setattr(sys, "stderr", _Pipe())
    assert resolve_progress("auto") == "lines"
    library = logging.getLogger("superconverge")
    monkeypatch.setattr(library, "level", logging.WARNING)  # the CLI's --quiet
    assert silenced() and resolve_progress("auto") == "off"
    assert resolve_progress(True) == "bar" and resolve_progress("lines") == "lines"
    assert resolve_progress(False) == "off"


def test_auto_in_a_jupyter_kernel_is_a_bar(monkeypatch):
    shell = SimpleNamespace(config={"IPKernelApp": {}})  # what get_ipython() is in a kernel
    ipython = SimpleNamespace(get_ipython=lambda: shell)
    monkeypatch.setattr(sys, "stderr", _Pipe())  # a kernel's stderr is no terminal
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    assert resolve_progress("auto") == "bar"


def test_a_bar_uses_tqdm_auto_and_closes_each_epoch(monkeypatch):
    import tqdm.auto

    made = []

    class Bar:
        def __init__(self, **kwargs):
            self.kwargs, self.updates, self.closed, self.postfix = kwargs, 0, False, None
            made.append(self)

        def update(self, n):
            self.updates += n

        def set_postfix(self, refresh=True, **values):
            self.postfix = values

        def close(self):
            self.closed = True

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    torch.manual_seed(0)
    trainer = Trainer(nn.Linear(4, 3), LOSS, _data(), batch_size=8, sync_every=1, progress="bar")
    trainer.fit_one_cycle(2, 0.05)
    assert [bar.kwargs["desc"] for bar in made] == ["epoch 1/2", "epoch 2/2"]
    assert all(bar.closed and bar.updates == 4 for bar in made)
    assert set(made[0].postfix) == {"loss", "lr"}


def test_off_prints_nothing(capsys):
    torch.manual_seed(0)
    Trainer(nn.Linear(4, 3), LOSS, _data(), batch_size=8, progress=False).fit_one_cycle(1, 0.05)
    assert capsys.readouterr().err == ""


def test_progress_lines_go_through_logging_when_it_shows_them(capsys):
    """With a handler that shows INFO (the CLI's), each line is printed once, by the handler."""
    library = logging.getLogger("superconverge")
    shown = io.StringIO()
    handler = logging.StreamHandler(shown)
    library.addHandler(handler)
    library.setLevel(logging.INFO)
    try:
        torch.manual_seed(0)
        trainer = Trainer(
            nn.Linear(4, 3), LOSS, _data(), batch_size=8, sync_every=4, progress_interval=0
        )
        trainer.fit_one_cycle(1, 0.05)
    finally:
        library.removeHandler(handler)
        library.setLevel(logging.NOTSET)
    lines = shown.getvalue().splitlines()
    assert len(lines) == 2 and LINE.match(lines[0]) and "train_loss" in lines[1]
    assert capsys.readouterr().err == ""  # not printed a second time


def test_a_decision_is_shown_once_whatever_logging_shows_and_not_when_silenced(capsys):
    library = logging.getLogger("superconverge")
    stage = logging.getLogger("superconverge.tuning.stages")
    tell("tune: batch_size = 16", stage)  # nothing configured: printed to stderr
    assert capsys.readouterr().err == "tune: batch_size = 16\n"
    shown = io.StringIO()
    handler = logging.StreamHandler(shown)
    library.addHandler(handler)
    library.setLevel(logging.INFO)
    try:
        tell("lr_find (SGD): max_lr 0.1", stage)  # the CLI's case: its handler shows it
        assert shown.getvalue() == "lr_find (SGD): max_lr 0.1\n"
        assert capsys.readouterr().err == ""
        library.setLevel(logging.WARNING)  # silenced (--quiet): neither
        tell("tune: momentum = 0.9", stage)
        assert shown.getvalue() == "lr_find (SGD): max_lr 0.1\n"
        assert capsys.readouterr().err == ""
    finally:
        library.removeHandler(handler)
        library.setLevel(logging.NOTSET)
    tuning = logging.getLogger("superconverge.tuning")
    tuning.setLevel(logging.WARNING)  # one sub-package silenced: its lines hidden, not printed
    try:
        tell("tune: momentum = 0.9", stage)
        assert capsys.readouterr().err == ""
    finally:
        tuning.setLevel(logging.NOTSET)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"progress": "yes"}, TypeError, "progress must be 'auto', 'bar', 'lines', 'off'"),
        ({"progress_interval": -1}, ValueError, "progress_interval must be >= 0 seconds, got -1"),
        ({"progress_interval": "30"}, TypeError, "progress_interval must be a number"),
    ],
)
def test_bad_progress_settings_name_the_parameter(kwargs, error, message):
    with pytest.raises(error, match=message):
        Trainer(nn.Linear(4, 3), LOSS, _data(), **kwargs)


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 59.4, 60, 3599, 3600)] == [
        "0s",
        "59s",
        "1m00s",
        "59m59s",
        "1h00m",
    ]


def test_the_interval_comes_from_the_environment_when_not_given(monkeypatch):
    monkeypatch.setenv("SUPERCONVERGE_PROGRESS_INTERVAL", "5")
    assert Trainer(nn.Linear(4, 3), LOSS, _data()).progress_interval == 5.0
    assert Trainer(nn.Linear(4, 3), LOSS, _data(), progress_interval=2).progress_interval == 2.0
    monkeypatch.setenv("SUPERCONVERGE_PROGRESS_INTERVAL", "soon")
    with pytest.raises(ValueError, match="SUPERCONVERGE_PROGRESS_INTERVAL must be seconds >= 0"):
        Trainer(nn.Linear(4, 3), LOSS, _data())
    monkeypatch.delenv("SUPERCONVERGE_PROGRESS_INTERVAL")
    assert Trainer(nn.Linear(4, 3), LOSS, _data()).progress_interval == 30.0
