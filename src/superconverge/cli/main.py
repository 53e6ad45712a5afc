"""The ``superconverge`` command: builds the parser and dispatches to one module per subcommand.

Exit status: 0 done; 1 a runtime failure (one line naming what failed and what to do);
2 a usage error (one line naming the flag, the value and what is allowed); 130 interrupted
(Ctrl-C, or SIGTERM as a job scheduler, CI or ``timeout`` sends it: the same clean stop, with
tune's line saying how to resume). No traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from superconverge.cli import fit, lr_find, report, reproduce, schedule, tune
from superconverge.cli._common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    STDOUT_CLOSED,
    Parser,
    UsageError,
    add_common_flags,
    cli_logging,
    explain,
    ignore_interrupts,
    interrupts_ignored,
    one_line,
    stdout_closed,
)

SUBCOMMANDS = (schedule, lr_find, tune, fit, report, reproduce)
# the commands that train nothing, so print no progress (nor read its setting)
NOT_TRAINING = ("schedule", "report")


class _Versions(argparse.Action):
    """``--version``: the library, Python, torch and the device ``--device auto`` picks."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.update(nargs=0, default=argparse.SUPPRESS)
        super().__init__(option_strings, argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from superconverge._environment import versions

        print("\n".join(f"{name} {value}" for name, value in versions().items()))
        parser.exit()


def build_parser() -> Parser:
    parser = Parser(
        prog="superconverge",
        description="Leslie Smith's disciplined approach to hyper-parameters: LR range test, "
        "cyclical LRs, 1cycle.",
        epilog="Exit status: 0 done, 1 a run failed, 2 a bad flag or value, 130 interrupted.",
    )
    parser.add_argument(
        "--version",
        action=_Versions,
        help="print the versions of superconverge, Python and torch and the device, and exit",
    )
    add_common_flags(parser, top=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in SUBCOMMANDS:
        add_common_flags(command.add_parser(subparsers))
    return parser


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the command as Ctrl-C does (files complete, tune's resume line, exit 130)
    instead of killing it silently; only where SIGTERM has its default action, in the main
    thread (a host that set its own handler keeps it)."""
    try:
        installed = signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        if installed:
            signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread
        installed = False
    try:
        yield
    finally:
        if installed and signal.getsignal(signal.SIGTERM) is _raise_interrupt:  # none set since
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C (and SIGTERM, where it interrupts) wait for the end of the block, then interrupt.

    A command imports torch, and torch's import loses an interrupt that arrives while
    its C code imports numpy: it clears the error and goes on, so the command then ran as if
    never stopped, or failed later with a RecursionError from the half-loaded numpy (2 in 40
    Ctrl-Cs in the first second of `superconverge tune`).
    """
    held: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        held.append(signum)

    raising = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: _raise_interrupt}
    replaced = []
    try:
        for signum, handler in raising.items():
            if signal.getsignal(signum) is handler:  # a host's own handler is left alone
                signal.signal(signum, hold)
                replaced.append(signum)
    except ValueError:  # not the main thread: signals reach only the main thread's handlers
        pass
    try:
        yield
    finally:
        for signum in replaced:
            signal.signal(signum, raising[signum])
    if held:
        raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status. Without `argv` (the process's own command line:
    the console script, ``python -m superconverge``) Ctrl-C and SIGTERM are ignored once the
    command has ended: one more that arrived while the interpreter exits printed a traceback
    from torch's finalisers after the command's last line."""
    status = _main(list(argv if argv is not None else sys.argv[1:]))
    if argv is None:
        ignore_interrupts()
        if "torch" in sys.modules:  # not after --help: importing torch would take a second
            from superconverge.pytorch.distributed import launched_ranks

            if launched_ranks() > 1:
                _leave_without_finalisers(status)
    return status


def _leave_without_finalisers(status: int) -> None:
    """End a torchrun process now, its output flushed: in 1 run of 10 here (2 of 12 in an
    auditor's), a rank that had finished, its process group destroyed, aborted in the
    interpreter's own exit (C++ finalisers: "terminate called without an active exception",
    SIGABRT), and torchrun then reported the whole run failed."""
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a reader gone (`| head`): nothing to flush to
            stream.flush()
    os._exit(status)


def _main(given: list[str]) -> int:
    try:  # SIGTERM too from the start: a stop while the command starts is a stop, not a kill
        with _terminate_as_interrupt():
            return _parse_and_run(given)
    except KeyboardInterrupt:  # before the command ran (the parser, or the command's imports)
        if "--debug" in given:
            raise
        print("superconverge: error: interrupted before the command ran", file=sys.stderr)
        return EXIT_INTERRUPTED


def _parse_and_run(argv: list[str]) -> int:
    if sys.stdout is None:  # started with its standard output closed (`>&-`): what it prints
        # goes nowhere, as asked ("'NoneType' object has no attribute 'flush'", exit 1)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  # for the rest of the process
    with _interrupts_held():
        parser = build_parser()
    try:
        with _interrupts_held():  # --device cpu and --version import torch while parsing
            args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or argparse's one-line usage error
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    except BrokenPipeError as error:  # `--version | true`: a traceback (an auditor's check)
        if not stdout_closed(error):
            raise
        devnull = os.open(os.devnull, os.O_WRONLY)  # Python's flush at exit would fail again
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        print(f"superconverge: error: {STDOUT_CLOSED}", file=sys.stderr)
        return EXIT_FAILURE
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return EXIT_USAGE
    with _interrupts_held():  # the commands' torch, here and not in --help's parser (a second)
        import torch  # noqa: F401
    args.argv = argv  # e.g. for tune --resume
    try:
        _apply_environment(args)
        with cli_logging(args.quiet, args.verbose):
            status = int(args.handler(args))
        sys.stdout.flush()  # a reader gone (`| head`) is found here, not in Python's exit
        return status
    except (Exception, KeyboardInterrupt) as error:
        # a second Ctrl-C while the first one's line is made: that line still comes (it
        # escaped as "interrupted before the command ran", after the run had saved its work)
        with interrupts_ignored():
            status, message = explain(error, args.parser)
            if args.debug and status != EXIT_USAGE:
                raise
            if stdout_closed(error):  # Python's flush at exit would print a second error
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
            print(f"{args.parser.prog}: error: {one_line(message)}", file=sys.stderr)
        return status


def _apply_environment(args: argparse.Namespace) -> None:
    """Check SUPERCONVERGE_PROGRESS_INTERVAL where the command trains, and set --threads,
    before the command runs."""
    from superconverge.training.progress import resolve_interval

    try:  # the environment's setting, checked before anything runs (it was read mid-search)
        if args.command not in NOT_TRAINING:  # a bad one stopped `schedule` and `report` too
            resolve_interval(None)
    except ValueError as error:
        raise UsageError(str(error)) from error
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)  # tune keeps a count below the usable cores
