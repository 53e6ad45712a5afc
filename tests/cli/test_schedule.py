import subprocess
import sys

import pytest

from superconverge.cli.main import main


def _run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "superconverge", *args], capture_output=True, text=True, timeout=120
    )


CYCLIC = ["cyclic", "--total-steps", "100", "--max-lr", "0.1", "--base-lr", "0.01"]


@pytest.mark.parametrize(
    "flags",
    [
        ["one-cycle", "--max-lr", "0.1"],
        [
            "one-cycle",
            "--max-lr",
            "0.1",
            "--three-phase",
            "--shape",
            "linear",
            "--warmup-fraction",
            "0.25",
        ],
        ["smith", "--max-lr", "0.8", "--annihilation-fraction", "0.1"],
        ["fastai", "--max-lr", "1e-3", "--no-momentum"],
        [
            "cyclic",
            "--base-lr",
            "0.001",
            "--max-lr",
            "0.006",
            "--step-size",
            "40",
            "--mode",
            "triangular2",
        ],
        ["piecewise", "--values", "0.35", "0.035", "0.0035", "--boundaries", "100", "150"],
    ],
    ids=lambda flags: flags[0],
)
def test_schedule_prints_a_table_and_writes_a_png(tmp_path, capsys, flags):
    out = tmp_path / "plots" / "schedule.png"
    assert main(["schedule", *flags, "--total-steps", "200", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "lr start" in printed and "lr peak" in printed and "lr end" in printed
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.parent.glob(".*partial"))


def test_schedule_table_values_and_steps(tmp_path, capsys):
    main(
        [
            "schedule",
            "smith",
            "--total-steps",
            "11",
            "--max-lr",
            "1.0",
            "--annihilation-fraction",
            "0.2",
            "--out",
            str(tmp_path / "s.png"),
        ]
    )
    lines = {line[:16].strip(): line[16:].split() for line in capsys.readouterr().out.splitlines()}
    assert lines["lr start"] == ["0.1", "0"]
    assert lines["lr peak"] == ["1", "4"]
    assert lines["lr end"] == ["0.001", "10"]
    assert lines["momentum low"] == ["0.85", "4"]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["one-cycle", "--total-steps", "100", "--max-lr", "-1"], "--max-lr must be > 0, got -1.0"),
        (
            ["one-cycle", "--total-steps", "abc", "--max-lr", "0.1"],
            "--total-steps: invalid int value: 'abc'",
        ),
        (["one-cycle", "--total-steps", "100"], "--max-lr is required for the one-cycle policy"),
        (
            ["one-cycle", "--total-steps", "100", "--max-lr", "0.1", "--warmup-fraction", "1.5"],
            "--warmup-fraction must be in (0, 1), got 1.5",
        ),
        (
            CYCLIC,
            "--step-size is required",
        ),
        (
            [
                "cyclic",
                "--total-steps",
                "100",
                "--max-lr",
                "0.1",
                "--base-lr",
                "0.2",
                "--step-size",
                "5",
            ],
            "--base-lr must be <= --max-lr (0.1), got 0.2",
        ),
        (
            ["one-cycle", "--total-steps", "100", "--max-lr", "0.1", "--momentum", "0.8", "0.9"],
            "--momentum must be (high, low)",
        ),
        (["spiral", "--total-steps", "100"], "invalid choice: 'spiral'"),
        (  # a decay for a mode that has none was taken and changed nothing
            [*CYCLIC, "--step-size", "10", "--gamma", "0.99"],
            "--gamma applies to --mode exp_range, not triangular: leave it out",
        ),
        (
            ["one-cycle", "--total-steps", "100", "--max-lr", "0.1", "--out", "plot.jpg"],
            "--out must end in one of .png",
        ),
        (  # an auditor's check: "warmup_fraction=0.3 gives phases of [-0.10000000000000009"
            ["one-cycle", "--total-steps", "3", "--max-lr", "0.1"],
            "--warmup-fraction=0.3 gives phases of [-0.1, 2.1] steps",
        ),
        (  # it blamed --total-steps alone, in Python's names
            ["smith", "--total-steps", "1000", "--max-lr", "0.1", "--annihilation-fraction",
             "0.999"],
            "--annihilation-fraction=0.999 leaves half-cycles of 0 and an annihilation of 999 "
            "steps; each needs at least 1 step, so use more steps or a smaller fraction",
        ),
    ],
)
def test_bad_flags_exit_2_with_one_line_naming_the_flag(
    tmp_path, monkeypatch, capsys, flags, expected
):
    monkeypatch.chdir(tmp_path)
    assert main(["schedule", *flags]) == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    assert len(error.strip().splitlines()) == 1, error
    assert expected in error
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_an_existing_plot_survives_a_bad_invocation(tmp_path):
    out = tmp_path / "schedule.png"
    out.write_bytes(b"keep me")
    result = _run_cli(
        "schedule", "one-cycle", "--total-steps", "1", "--max-lr", "0.1", "--out", str(out)
    )
    assert result.returncode == 2
    assert "--total-steps must be >= 2, got 1" in result.stderr
    assert out.read_bytes() == b"keep me"


def test_console_script_and_help():
    result = _run_cli("--help")
    assert result.returncode == 0 and "schedule" in result.stdout
    result = _run_cli()
    assert result.returncode == 2


def test_force_overwrites_an_existing_plot(tmp_path, capsys):
    out = tmp_path / "s.png"
    out.write_bytes(b"old")
    flags = ["one-cycle", "--total-steps", "20", "--max-lr", "0.1", "--out", str(out)]
    assert main(["schedule", *flags]) == 2
    assert out.read_bytes() == b"old"
    assert main(["schedule", *flags, "--force"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_a_bad_progress_setting_does_not_stop_what_trains_nothing(tmp_path, capsys, monkeypatch):
    # SUPERCONVERGE_PROGRESS_INTERVAL=abc stopped `schedule` (exit 2), which prints no progress
    monkeypatch.setenv("SUPERCONVERGE_PROGRESS_INTERVAL", "abc")
    flags = ["one-cycle", "--max-lr", "0.1", "--total-steps", "50"]
    assert main(["schedule", *flags, "--out", str(tmp_path / "s.png")]) == 0
    assert "lr peak" in capsys.readouterr().out
