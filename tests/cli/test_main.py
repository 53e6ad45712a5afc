import subprocess
import sys

import pytest

from superconverge.cli import fit, lr_find, report, reproduce, schedule, tune
from superconverge.cli._common import RunFailure
from superconverge.cli.main import SUBCOMMANDS, build_parser, main


def test_one_module_per_subcommand_each_with_add_parser_and_run():
    assert (schedule, lr_find, tune, fit, report, reproduce) == SUBCOMMANDS
    for module in SUBCOMMANDS:
        assert callable(module.add_parser) and callable(module.run)


def test_each_subcommand_dispatches_to_its_module():
    parser = build_parser()
    assert parser.parse_args(["report", "x"]).handler is report.run
    assert parser.parse_args(["reproduce", "--list"]).handler is reproduce.run
    assert parser.parse_args(["fit", "--plan", "p.json"]).handler is fit.run
    assert parser.parse_args(["tune"]).handler is tune.run


def test_no_subcommand_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "schedule" in capsys.readouterr().out


def test_python_dash_m_and_help():
    result = subprocess.run(
        [sys.executable, "-m", "superconverge", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "lr-find" in result.stdout


def test_debug_shows_the_traceback_of_a_runtime_failure(tmp_path, capsys):
    flags = ["--model", "tests.cli.entry:raises", "--out", str(tmp_path / "run")]
    assert main(["tune", *flags]) == 1
    assert "raised RuntimeError" in capsys.readouterr().err
    with pytest.raises(RunFailure, match="raised RuntimeError"):
        main(["tune", *flags, "--debug"])
    with pytest.raises(RunFailure):
        main(["--debug", "tune", *flags])


def test_interrupt_exits_130_in_one_line(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "run", interrupted)
    assert main(["report", "x"]) == 130
    assert (
        capsys.readouterr().err.strip()
        == "superconverge report: error: interrupted; files already written were left complete"
    )
