"""The ``superconverge`` command: builds the parser and dispatches to one module per subcommand.

Bad flags or values end with one line on stderr naming the flag, and exit status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from superconverge.cli import fit, lr_find, report, reproduce, schedule, tune
from superconverge.cli._common import EXIT_USAGE, Parser, UsageError, flag_message

SUBCOMMANDS = (schedule, lr_find, tune, fit, report, reproduce)


def build_parser() -> Parser:
    parser = Parser(
        prog="superconverge",
        description="Leslie Smith's disciplined approach to hyper-parameters: LR range test, "
        "cyclical LRs, 1cycle.",
    )
    from superconverge import __version__

    parser.add_argument("--version", action="version", version=f"superconverge {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in SUBCOMMANDS:
        command.add_parser(subparsers)
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
    except UsageError as error:
        message = str(error)
    except (ValueError, FileNotFoundError) as error:  # library messages start with the name
        message = flag_message(error, args.parser)
    print(f"{args.parser.prog}: error: {message}", file=sys.stderr)
    return EXIT_USAGE
