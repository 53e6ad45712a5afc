"""The ``superconverge`` command: builds the parser and dispatches to one module per subcommand.

Exit status: 0 done; 1 a runtime failure (one line naming what failed and what to do);
2 a usage error (one line naming the flag, the value and what is allowed); 130 interrupted.
No traceback unless ``--debug``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from superconverge.cli import fit, lr_find, report, reproduce, schedule, tune
from superconverge.cli._common import EXIT_USAGE, Parser, add_common_flags, explain, one_line

SUBCOMMANDS = (schedule, lr_find, tune, fit, report, reproduce)


def build_parser() -> Parser:
    parser = Parser(
        prog="superconverge",
        description="Leslie Smith's disciplined approach to hyper-parameters: LR range test, "
        "cyclical LRs, 1cycle.",
        epilog="Exit status: 0 done, 1 a run failed, 2 a bad flag or value, 130 interrupted.",
    )
    from superconverge import __version__

    parser.add_argument("--version", action="version", version=f"superconverge {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="print the Python traceback of a failure"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in SUBCOMMANDS:
        add_common_flags(command.add_parser(subparsers))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or argparse's one-line usage error
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except (Exception, KeyboardInterrupt) as error:
        status, message = explain(error, args.parser)
        if args.debug and status != EXIT_USAGE:
            raise
    print(f"{args.parser.prog}: error: {one_line(message)}", file=sys.stderr)
    return status
