import os
import signal
import subprocess
import sys
import time
import warnings

import pytest

from superconverge.cli import fit, lr_find, report, reproduce, schedule, tune
from superconverge.cli._common import RunFailure, cli_logging
from superconverge.cli.main import SUBCOMMANDS, build_parser, main
from tests.cli.plans import digits_plan


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


def test_an_error_without_a_message_is_named(tmp_path, capsys):
    # a MemoryError from a user's function printed "raised MemoryError: ; fix that function"
    flags = ["--model", "tests.cli.entry:out_of_memory", "--out", str(tmp_path / "run")]
    assert main(["tune", *flags]) == 1
    err = capsys.readouterr().err
    assert "raised MemoryError (out of memory); fix that function" in err


def test_a_second_interrupt_while_the_first_is_told_still_gets_the_first_ones_line(
    monkeypatch, capsys
):
    # a user's check: two Ctrl-Cs 20 ms apart printed "interrupted before the command ran" after
    # the run had saved its work, without the line saying what it kept and how to go on
    import os
    import signal

    from superconverge.cli import main as cli_main

    def interrupted(args):
        raise KeyboardInterrupt("interrupted: what was kept, and how to go on")

    real = cli_main.explain

    def explain_while_interrupted_again(error, parser):
        os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C, while the line is made
        return real(error, parser)

    monkeypatch.setattr(report, "run", interrupted)
    monkeypatch.setattr(cli_main, "explain", explain_while_interrupted_again)
    assert main(["report", "x"]) == 130
    assert capsys.readouterr().err.strip() == (
        "superconverge report: error: interrupted: what was kept, and how to go on; files already "
        "written were left complete"
    )
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_interrupt_exits_130_in_one_line(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "run", interrupted)
    assert main(["report", "x"]) == 130
    assert (
        capsys.readouterr().err.strip()
        == "superconverge report: error: interrupted; files already written were left complete"
    )


def test_an_interrupt_while_the_command_starts_exits_130_in_one_line(monkeypatch, capsys):
    # the start imports torch (a second or more; since the names in --help are the CLI's own,
    # after the parser is built): a Ctrl-C then printed a KeyboardInterrupt traceback from deep
    # inside torch's import
    def interrupted(subparsers):
        raise KeyboardInterrupt

    monkeypatch.setattr(lr_find, "add_parser", interrupted)
    assert main(["tune", "--epochs", "3"]) == 130
    err = capsys.readouterr().err
    assert err == "superconverge: error: interrupted before the command ran\n"
    with pytest.raises(KeyboardInterrupt):  # --debug keeps the traceback
        main(["--debug", "tune"])


def _losing_an_interrupt(real):
    """`real`, after a Ctrl-C that it swallows, as torch's import does with one that reaches it
    while its C code imports numpy."""

    def loses_the_interrupt(*args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            pass
        return real(*args)

    return loses_the_interrupt


def test_a_ctrl_c_that_torchs_import_would_lose_still_stops_the_command(monkeypatch, capsys):
    # torch's import (as the command starts) clears an interrupt that arrives while
    # its C code imports numpy: `superconverge tune` then ran on as if never stopped
    monkeypatch.setattr(lr_find, "add_parser", _losing_an_interrupt(lr_find.add_parser))
    assert main(["report", "no-such-folder"]) == 130
    assert capsys.readouterr().err == "superconverge: error: interrupted before the command ran\n"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_interrupts_line_loads_no_torch():
    # explain() imported superconverge.data (torch) before it looked at the error: after a
    # Ctrl-C that stopped torch half-loaded, loading it again failed in other ways
    code = (
        "import sys, argparse\n"
        "from superconverge.cli._common import explain\n"
        "print(explain(KeyboardInterrupt(), argparse.ArgumentParser()))\n"
        "assert 'torch' not in sys.modules, 'torch loaded'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "130" in done.stdout


@pytest.mark.skipif(
    signal.getsignal(signal.SIGTERM) != signal.SIG_DFL, reason="the runner handles SIGTERM itself"
)
def test_sigterm_while_the_command_starts_exits_130(monkeypatch, capsys):
    real_add_parser = lr_find.add_parser

    def terminated(subparsers):
        os.kill(os.getpid(), signal.SIGTERM)  # before the subcommand's handler ran
        return real_add_parser(subparsers)

    monkeypatch.setattr(lr_find, "add_parser", terminated)
    assert main(["report", "x"]) == 130
    assert capsys.readouterr().err == "superconverge: error: interrupted before the command ran\n"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


@pytest.mark.skipif(
    signal.getsignal(signal.SIGTERM) != signal.SIG_DFL, reason="the runner handles SIGTERM itself"
)
def test_sigterm_stops_like_ctrl_c_and_the_default_action_comes_back(monkeypatch, capsys):
    def terminated(args):
        os.kill(os.getpid(), signal.SIGTERM)  # what a scheduler, CI or `timeout` sends
        time.sleep(10)  # the handler raises before this ends

    monkeypatch.setattr(report, "run", terminated)
    assert main(["report", "x"]) == 130
    assert capsys.readouterr().err.strip() == (
        "superconverge report: error: interrupted; files already written were left complete"
    )
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_version_names_the_library_python_torch_and_the_device(capsys):
    import torch

    import superconverge

    assert main(["--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"superconverge {superconverge.__version__}"
    assert lines[2] == f"torch {torch.__version__}"
    assert lines[1].startswith("python 3.")
    expected = "device cuda: " if torch.cuda.is_available() else "device cpu ("
    assert lines[3].startswith(expected)


def _subparsers():
    import argparse

    parser = build_parser()
    (choices,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return choices.choices


@pytest.mark.parametrize("command", ["schedule", "lr-find", "tune", "fit", "report", "reproduce"])
def test_help_shows_the_default_of_every_flag_that_has_one(command, capsys):
    subparser = _subparsers()[command]
    with_default = [
        a
        for a in subparser._actions
        if a.option_strings and a.default not in (None, False, [], "==SUPPRESS==")
    ]
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for action in with_default:
        assert "(default" in action.help, action.option_strings
        assert " ".join(action.help.replace("%%", "%").split()) in text
    if command == "tune":
        assert "--epochs EPOCHS (default: 10)" in text
        assert "--optimizer {auto,sgd,adamw,nadamw,adam}" in text and "(default: auto)" in text
    if command == "schedule":
        assert "(default: 0.95 0.85)" in text  # a pair as it is typed, not a Python tuple


def _fit_plan(tmp_path):
    """A saved plan on the bundled digits: one epoch of the MLP (a few seconds)."""
    return str(digits_plan(tmp_path))


def test_quiet_and_verbose_set_what_reaches_stderr(tmp_path, capsys, monkeypatch):
    """stderr is no terminal here (a log): by default the fit's progress lines (every 0 s here)
    and its epoch line; --quiet leaves the results only; --verbose names each line's module."""
    monkeypatch.setenv("SUPERCONVERGE_PROGRESS_INTERVAL", "0")
    plan = _fit_plan(tmp_path)
    assert main(["fit", "--plan", plan, "--out", str(tmp_path / "default")]) == 0
    default = capsys.readouterr()
    steps = [line for line in default.err.splitlines() if ", step " in line]
    assert steps and all(" left" in line and ", lr " in line for line in steps)
    assert "epoch 1/1, train_loss" in default.err
    assert "completed: 1 epoch;" in default.out

    assert main(["fit", "--quiet", "--plan", plan, "--out", str(tmp_path / "quiet")]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == "" and "completed: 1 epoch;" in quiet.out  # the results still print

    assert main(["-v", "fit", "--plan", plan, "--out", str(tmp_path / "verbose")]) == 0
    verbose = capsys.readouterr()
    assert "info superconverge.training.progress: epoch 1/1, train_loss" in verbose.err

    assert main(["fit", "-q", "-v", "--plan", plan, "--out", str(tmp_path / "both")]) == 2
    assert "--quiet and --verbose exclude each other" in capsys.readouterr().err
    import logging

    assert logging.getLogger("superconverge").level == logging.NOTSET  # left as it was
    assert not logging.getLogger("superconverge").handlers


@pytest.mark.parametrize("command", ["schedule", "lr-find", "tune", "fit", "report", "reproduce"])
def test_every_subcommand_takes_quiet_and_verbose(command):
    subparser = _subparsers()[command]
    assert {"--quiet", "-q", "--verbose", "-v", "--debug"} <= set(subparser._option_string_actions)


def test_a_flag_typo_is_named_by_its_subcommand_with_the_closest_flag(capsys):
    # a prefix is not taken for the flag it starts (argparse's default would run --epochs 3)
    assert main(["tune", "--epoch", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("superconverge tune: error: unrecognized arguments: --epoch 3")
    assert "did you mean --epochs?" in err and err.count("\n") == 1
    assert main(["lr-find", "--optimzer", "adamw"]) == 2
    assert "superconverge lr-find: error:" in capsys.readouterr().err
    assert main(["tune", "--zzz"]) == 2
    assert "did you mean" not in capsys.readouterr().err  # nothing close: no guess


def test_a_typo_in_a_required_flag_is_named_not_reported_as_missing(capsys):
    # argparse checks required flags first: "--total-steps is required" for --total_steps
    assert main(["schedule", "one-cycle", "--total_steps", "100", "--max-lr", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "superconverge schedule: error: unrecognized arguments: --total_steps "
        "(--total_steps: did you mean --total-steps?) (see --help)\n"
    )
    assert main(["fit", "--pan", "runs/x/plan.json"]) == 2
    assert "unrecognized arguments: --pan (--pan: did you mean --plan?)" in capsys.readouterr().err
    for nothing_mistyped in ([], ["--"]):  # what is missing ("--" only ends the flags)
        assert main(["fit", *nothing_mistyped]) == 2
        assert "the following arguments are required: --plan" in capsys.readouterr().err


def test_output_closed_by_its_reader_is_named_as_that_not_as_a_path(tmp_path, capsys, monkeypatch):
    # `superconverge schedule ... | head -1` said "Broken pipe; check the path and its
    # permissions" (exit 1): there is no path to check
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line, as after `| head -0`
    closed = os.fdopen(write_end, "w")  # buffered, as stdout is into a pipe
    monkeypatch.setattr(sys, "stdout", closed)
    flags = ["--total-steps", "10", "--max-lr", "0.1", "--out", str(tmp_path / "s.png")]
    assert main(["schedule", "one-cycle", *flags]) == 1
    closed.close()  # its descriptor now leads to os.devnull: no error at Python's exit
    assert capsys.readouterr().err == (
        "superconverge schedule: error: the output was closed before all the results were "
        "printed (broken pipe: whatever read superconverge's standard output, e.g. `| head`, "
        "stopped reading); the files written are complete\n"
    )


def test_a_reader_gone_before_the_table_leaves_the_plot_written(tmp_path):
    # an auditor's `superconverge schedule ... | true` left no plot (the table came first),
    # and the line said "the files written are complete"
    import shlex
    import subprocess

    out = tmp_path / "s.png"
    command = [sys.executable, "-m", "superconverge", "schedule", "one-cycle", "--total-steps",
               "1000", "--max-lr", "0.1", "--out", str(out)]  # fmt: skip
    done = subprocess.run(f"{shlex.join(command)} | true", shell=True, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert "the files written are complete" in done.stderr
    assert out.stat().st_size > 0


def test_threads_sets_torchs_threads_and_is_checked(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n))
    calls: list[int] = []
    assert main(["schedule", "one-cycle", "--help"]) == 0  # help exits before any setting
    assert main(["--threads", "0", "schedule", "one-cycle"]) == 2
    assert "argument --threads: must be an integer >= 1, got '0'" in capsys.readouterr().err
    assert main(["tune", "--threads", "1", "--epochs", "0"]) == 2  # applied, then --epochs fails
    assert calls == [1]


def test_a_python_warning_is_one_warning_line_and_verbose_says_where(capsys):
    with cli_logging(quiet=False, verbose=False), warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("max_lr 0.141 diverged", RuntimeWarning, stacklevel=1)
    # not Python's two lines with the source line
    assert capsys.readouterr().err == "warning: max_lr 0.141 diverged\n"
    with cli_logging(quiet=False, verbose=True), warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("max_lr 0.141 diverged", RuntimeWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert err.startswith("warning superconverge: max_lr 0.141 diverged (RuntimeWarning at ")
    assert err.count("\n") == 1


def test_a_diverged_fit_under_the_cli_is_one_warning_line(capsys):
    # the loop warned and also logged the same message: two identical lines on the CLI
    import torch

    from superconverge.data import ArrayData
    from superconverge.training import Trainer

    generator = torch.Generator().manual_seed(0)
    data = ArrayData(torch.randn(64, 4, generator=generator), torch.arange(64) % 3)
    torch.manual_seed(0)
    trainer = Trainer(torch.nn.Linear(4, 3), torch.nn.functional.cross_entropy, data,
                      batch_size=8, progress=False)  # fmt: skip
    with cli_logging(quiet=False, verbose=False), warnings.catch_warnings():
        warnings.simplefilter("always")
        history = trainer.fit_one_cycle(2, 1e6)
    assert history.status == "diverged"
    lines = [line for line in capsys.readouterr().err.splitlines() if "diverged" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: max_lr 1e+06 diverged")


def test_a_torchrun_process_ends_at_once_with_its_status_and_its_output_flushed(tmp_path):
    # a finished torchrun rank aborted now and then in the interpreter's exit (SIGABRT), and
    # torchrun reported the run failed: such a process now leaves by os._exit, output flushed
    import subprocess

    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}
    done = subprocess.run(
        [sys.executable, "-c", "import atexit, sys; from superconverge.cli.main import main; "
         "atexit.register(lambda: print('finalised', file=sys.stderr)); print('out'); "
         "sys.exit(main())", "schedule", "one-cycle", "--total-steps", "10", "--max-lr", "0.1",
         "--out", str(tmp_path / "s.png")],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("out\n") and done.stdout.endswith(f"wrote {tmp_path / 's.png'}\n")
    assert "finalised" not in done.stderr  # left before the interpreter's exit


def test_version_into_a_closed_pipe_and_a_closed_stdout_print_no_traceback(tmp_path):
    # an auditor's checks: `--version | true` printed a BrokenPipeError traceback; with
    # standard output closed (`>&-`) every command failed: "'NoneType' object has no
    # attribute 'flush'", exit 1
    import shlex
    import subprocess

    cli = shlex.join([sys.executable, "-m", "superconverge"])

    def shell(line):
        return subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=120)

    piped = shell(f"{cli} --version | true; exit ${{PIPESTATUS[0]}}")
    assert piped.returncode == 1 and "Traceback" not in piped.stderr
    assert "the output was closed before all the results were printed" in piped.stderr
    out = tmp_path / "s.png"
    closed = shell(f"{cli} schedule one-cycle --total-steps 100 --max-lr 0.1 --out {out} >&-")
    assert closed.returncode == 0, closed.stderr
    assert out.stat().st_size > 0


def test_the_names_in_the_help_are_the_librarys():
    # the help lists names kept beside the CLI, so that --help need not import torch
    from superconverge.cli._common import DATA_NAMES, MODEL_NAMES
    from superconverge.cli._data_flags import LOSS_NAMES, OPTIMIZER_NAMES
    from superconverge.data import DATASETS
    from superconverge.losses import LOSSES
    from superconverge.models import MODELS
    from superconverge.pytorch.optimizers import OPTIMIZERS

    assert tuple(MODELS) == MODEL_NAMES
    assert tuple(name for name in DATASETS if name != "csv") == DATA_NAMES
    assert tuple(LOSSES) == LOSS_NAMES
    assert set(OPTIMIZER_NAMES) == set(OPTIMIZERS)


def test_help_and_a_mistyped_flag_do_not_import_torch():
    # a user's check: every --help, and every typo's one line, took over a second, most of it
    # importing torch
    commands = [
        [*command, "--help"]
        for command in ([], ["tune"], ["fit"], ["lr-find"], ["report"], ["reproduce"], ["schedule"])
    ]
    for command in [*commands, ["tune", "--epoch", "3"], ["lr-find", "--dat", "digits"]]:
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "superconverge", *command],
            capture_output=True,
            text=True,
        )
        assert done.returncode == (2 if "--help" not in command else 0), done.stderr
        assert "usage: superconverge" in done.stdout or "error: unrecognized" in done.stderr
        imported = [line.rpartition("|")[2].strip() for line in done.stderr.splitlines()]
        assert "torch" not in imported, command


def test_a_ctrl_c_that_torchs_import_would_lose_while_parsing_still_stops(
    monkeypatch, capsys, tmp_path
):
    # a reviewer's check: --device cpu imports torch while the flags are parsed (--help's
    # parser no longer does), and an interrupt torch's import swallowed there was lost
    from superconverge.cli import _data_flags

    monkeypatch.setattr(_data_flags, "device_flag", _losing_an_interrupt(_data_flags.device_flag))
    assert main(["lr-find", "--device", "cpu", "--out", str(tmp_path / "out")]) == 130
    assert not (tmp_path / "out").exists()
    assert capsys.readouterr().err == "superconverge: error: interrupted before the command ran\n"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
