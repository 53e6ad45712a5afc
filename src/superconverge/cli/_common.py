"""What the subcommands share: the error kinds and exit codes, the parser, flag names in library
messages, ``module:function`` entry points, output-folder claims and data resolution.

The contract: a usage error (a bad flag or value, an output that exists) exits 2 with one line
naming the flag, the value and what is allowed; a runtime failure exits 1 with one line naming
what failed and what to do; no traceback unless ``--debug``; nothing already saved is
overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import inspect
import json
import logging
import os
import re
import signal
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from superconverge._checks import MAX_SEED

EXIT_OK = 0
EXIT_FAILURE = 1  # the command was fine; running it failed (disk full, diverged, bad data file)
EXIT_USAGE = 2  # a bad flag or value: nothing was run
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT
# `superconverge.models.MODELS`' names, for the flags' help without importing torch (which
# would make every --help take a second); tests/cli/test_main.py checks they are the same
MODEL_NAMES = ("mlp", "mnist-cnn", "cifar-resnet", "resnet56", "resnet9")
# `superconverge.data.DATASETS` but csv (it needs a label column: the Python API only), alike
DATA_NAMES = ("digits", "mnist", "fashion-mnist", "cifar10")


class UsageError(Exception):
    """A bad flag or value: reported in one line, exit status 2."""


class RunFailure(Exception):
    """The command was valid but running it failed: reported in one line, exit status 1."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints the whole usage block by default) and
    every flag's default in ``--help``. Subcommands' parsers are of this class too (argparse
    builds them with the class of the parser that holds them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # no prefixes of flags: `--epoch 3` is a typo to name, not `--epochs` guessed silently
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._given: list[str] = []  # the arguments of the last parse, for `error`

    def error(self, message: str) -> NoReturn:
        if message.startswith("the following arguments are required"):
            # argparse checks required flags before it reports unknown ones: `--total_steps
            # 100` read "--total-steps is required"; the typo is the error to name
            known = self._option_string_actions
            typos = [
                given
                for given in self._given
                if given.startswith("--") and given.split("=", 1)[0] not in (*known, "--")
            ]
            if typos:
                message = unrecognized(typos, self)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """`argparse.ArgumentParser.parse_known_args`, remembering what it was given for
        `error` (a subcommand's parser is given the arguments after its name)."""
        self._given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """`argparse.ArgumentParser.parse_args`, with unknown flags named by the subcommand
        they were given to, and the closest flag it has suggested."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            target = getattr(parsed, "parser", None)
            target = target if isinstance(target, Parser) else self
            target.error(unrecognized(extras, target))
        return parsed

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        """`argparse.ArgumentParser.add_argument`, appending ``(default: X)`` to the help of a
        flag that has a default its help does not already state (argparse's
        ArgumentDefaultsHelpFormatter skips flags without help and prints ``False``/``None``)."""
        action = super().add_argument(*args, **kwargs)
        shown = _shown_default(action)
        if shown is not None and not re.search(r"\(default\b", action.help or ""):
            text = f"(default: {shown})".replace("%", "%%")  # help is a %-format string
            action.help = f"{action.help} {text}" if action.help else text
        return action


def unrecognized(extras: Sequence[str], parser: argparse.ArgumentParser) -> str:
    """argparse's "unrecognized arguments" message, with the closest known flag of each
    unknown one.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> _ = parser.add_argument("--epochs")
        >>> unrecognized(["--epoch", "3"], parser)
        'unrecognized arguments: --epoch 3 (--epoch: did you mean --epochs?)'
    """
    import difflib

    known = [flag for flag in parser._option_string_actions if flag.startswith("--")]  # noqa: SLF001
    hints = []
    for extra in extras:
        flag = extra.split("=", 1)[0]
        if flag.startswith("--"):
            close = difflib.get_close_matches(flag, known, n=1, cutoff=0.75)
            if close:
                hints.append(f"{flag}: did you mean {close[0]}?")
    text = f"unrecognized arguments: {' '.join(extras)}"
    return f"{text} ({'; '.join(hints)})" if hints else text


def _shown_default(action: argparse.Action) -> str | None:
    """A default worth showing as typed on the command line; None for none, off switches,
    hidden flags and empty lists."""
    default = action.default
    if action.help == argparse.SUPPRESS or default in (None, argparse.SUPPRESS):
        return None
    if isinstance(default, bool) or default == []:  # store_true switches: off unless given
        return None
    if isinstance(default, (tuple, list)):
        return " ".join(str(value) for value in default)
    return str(default)


def add_common_flags(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """Flags every subcommand takes; each may also come before the subcommand (`top`: the main
    parser, which holds their defaults)."""
    # below the subcommand a flag not given is left out, keeping one given before it
    default: Any = False if top else argparse.SUPPRESS
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="print the Python traceback of a failure instead of one line",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="no progress and no info lines on stderr: only the results, warnings and errors",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="also debug lines on stderr, each naming the module that wrote it",
    )
    parser.add_argument(
        "--threads",
        type=_threads,
        default=None if top else argparse.SUPPRESS,
        metavar="N",
        help="torch's CPU threads (default: torch's, capped at the cores this process may use); "
        "on a busy shared machine 1 can be many times faster",
    )


def _threads(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value!r}")
    return count


class _StderrHandler(logging.Handler):
    """Writes to the current ``sys.stderr`` (tests and notebooks replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:  # logging must never end a run
            self.handleError(record)


class _Formatter(logging.Formatter):
    """Info lines as they are; warnings and errors prefixed with their level; with `verbose`,
    every line with its level and logger."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if self.verbose:
            return f"{record.levelname.lower()} {record.name}: {message}"
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


@contextlib.contextmanager
def cli_logging(quiet: bool, verbose: bool) -> Iterator[None]:
    """For one command: the library's log lines on stderr at INFO (`quiet`: WARNING, which also
    turns progress off; `verbose`: DEBUG); the loggers are as they were afterwards."""
    if quiet and verbose:
        raise UsageError("--quiet and --verbose exclude each other; pass one")
    library = logging.getLogger("superconverge")
    handler = _StderrHandler()
    handler.setFormatter(_Formatter(verbose))
    level = library.level
    library.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    library.addHandler(handler)
    show_warning = warnings.showwarning

    def one_line_warning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        # a Python warning (e.g. a fit's RuntimeWarning that its max_lr diverged) as one
        # "warning: ..." line, not Python's two with a source line; --verbose says where
        where = f" ({category.__name__} at {filename}:{lineno})" if verbose else ""
        library.warning("%s%s", message, where)

    warnings.showwarning = one_line_warning
    try:
        yield
    finally:
        warnings.showwarning = show_warning
        library.removeHandler(handler)
        library.setLevel(level)


def flag_of(name: str, parser: argparse.ArgumentParser) -> str | None:
    """``--flag-name`` when `parser` has a flag for the library parameter `name`."""
    flag = "--" + name.replace("_", "-")
    return flag if flag in parser._option_string_actions else None  # noqa: SLF001 - argparse's table


def flag_message(error: Exception, parser: argparse.ArgumentParser) -> str | None:
    """A library message that starts with a parameter name, restated to name the flag; None when
    the message names no flag of this subcommand."""
    text = str(error)
    match = re.match(r"([a-z][a-z0-9_]*)(?:\['([^']*)'\])?", text)
    if match:
        name, key = match.groups()
        flag = flag_of(_FLAG_NAMES.get(name, name), parser)
        if flag is not None:  # metrics['f1'] raised ... -> --metric f1 raised ...
            rest = re.sub(  # "must be <= max_lr (0.1)": the other parameter is a flag too
                r"\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+) \(",
                lambda other: f"{flag_of(other[1], parser) or other[1]} (",
                text[match.end() :],
            )
            rest = re.sub(  # "warmup_fraction=0.3 gives phases ...": its flag (a number after
                # "=", so that Python advice such as RecipeSettings(lr_search='...') stays)
                r"\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+)=(?=[-0-9.])",
                lambda other: f"{flag_of(other[1], parser) or other[1]}=",
                rest,
            )
            return flag + ("" if key is None else f" {key}") + rest
    return None


# the library's parameters whose flags are named otherwise (one --metric per metric)
_FLAG_NAMES = {"metrics": "metric", "loss_fn": "loss"}


def one_line(text: str) -> str:
    return " ".join(str(text).split()) or "(no message)"


# the library's advice for batches it cannot split (BATCH_FN_ADVICE), on the command line
CLI_BATCH_FN = "--batch-fn module:function (a function batch -> (inputs, targets))"


STDOUT_CLOSED = (
    "the output was closed before all the results were printed (broken pipe: whatever read "
    "superconverge's standard output, e.g. `| head`, stopped reading); the files written are "
    "complete"
)


def stdout_closed(error: BaseException) -> bool:
    """Whether `error` is the reader of standard output gone (``superconverge ... | head``),
    not a failure of the run: poll reports an error on a pipe whose reading end is closed."""
    if not isinstance(error, BrokenPipeError):
        return False
    import select

    try:
        poller = select.poll()  # not on Windows: there a broken pipe is explained as an OSError
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll, or a stdout without a descriptor
        return False


def explain(error: BaseException, parser: argparse.ArgumentParser) -> tuple[int, str]:
    """The exit status and one-line message for an exception that ended a subcommand."""
    from superconverge._files import NO_ROOM, FolderBusyError

    if stdout_closed(error):  # not "check the path and its permissions": there is none
        return EXIT_FAILURE, STDOUT_CLOSED
    if isinstance(error, UsageError):
        return EXIT_USAGE, str(error)
    if isinstance(error, RunFailure):
        return EXIT_FAILURE, str(error)
    if isinstance(error, FolderBusyError):  # another run writes there: nothing wrong with the flags
        return EXIT_FAILURE, str(error)
    if isinstance(error, KeyboardInterrupt):  # tune's says what it kept and how to go on
        return (
            EXIT_INTERRUPTED,
            f"{str(error) or 'interrupted'}; files already written were left complete",
        )
    # after the interrupt: one that stopped torch loading must not load it again here
    from superconverge.data import DataFormatError

    if isinstance(error, DataFormatError):
        return EXIT_FAILURE, f"{error}; replace the file with the original (see --data-dir)"
    from superconverge.batches import DataError

    if isinstance(error, DataError):  # the data the flags name do not fit the model or loss
        return EXIT_USAGE, flag_message(error, parser) or str(error)  # "loss_fn" is --loss
    from superconverge.metrics import MetricError

    if isinstance(error, MetricError):  # the user's --metric function raised, maybe mid-run
        return EXIT_FAILURE, flag_message(error, parser) or str(error)
    if isinstance(error, (ValueError, TypeError)):
        named = flag_message(error, parser)
        if named is not None:  # a library check of a value this subcommand's flag passed in
            return EXIT_USAGE, named
        from superconverge.batches import BATCH_FN_ADVICE

        text = str(error)
        if BATCH_FN_ADVICE in text and flag_of("batch_fn", parser):  # batches the flags can read
            return EXIT_USAGE, text.replace(BATCH_FN_ADVICE, CLI_BATCH_FN)
        from superconverge.data.pipelines import COLLATE_FN_ADVICE

        if COLLATE_FN_ADVICE in text and flag_of("collate_fn", parser):
            text = text.replace(COLLATE_FN_ADVICE, "(or pass --collate-fn module:function)")
        if re.match(r"(train|val|test)_data[ :]", text) and flag_of("data", parser):
            # what --data module:function returned (NumPy arrays: exit 1, "TypeError: ...")
            return EXIT_USAGE, f"--data: {one_line(text)}"
    if isinstance(error, OSError):
        text = error.strerror or str(error)  # without the "[Errno 28]" prefix
        if error.filename and str(error.filename) not in text:
            text = f"{text}: {error.filename}"
        if error.errno in NO_ROOM:
            return EXIT_FAILURE, f"{text}; {make_room(error)} or choose another --out"
        return EXIT_FAILURE, f"{text}; check the path and its permissions"
    if isinstance(error, MemoryError):
        return EXIT_FAILURE, "out of memory; lower --batch-size or use a smaller --model"
    return (
        EXIT_FAILURE,
        f"{type(error).__name__}: {error} (run again with --debug for the traceback)",
    )


def make_room(error: OSError) -> str:
    """What gives a write that found no room (`NO_ROOM`) its room: the file-size limit is the
    process's own, so space freed elsewhere would not help it."""
    if error.errno == errno.EFBIG:
        return "raise the file-size limit (ulimit -f unlimited)"
    return "free some space"


def check_seed(seed: int) -> int:
    if not 0 <= seed <= MAX_SEED:
        raise UsageError(f"--seed must be in [0, {MAX_SEED}], got {seed}")
    return seed


def import_named(spec: str, flag: str, form: str = "module:function") -> tuple[Any, str]:
    """(the module that ``module:name`` names, imported; the name), or a UsageError naming the
    flag when `spec` is not of that `form` or the module cannot be imported. Importing runs the
    module's code: only call this for a name the user typed on the command line (or explicitly
    trusted)."""
    import importlib

    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise UsageError(f"{flag} must be {form}, got {spec!r}")
    # the current folder, as `python -m` and uvicorn have it: the console script's sys.path
    # holds only its own folder, so `--data mypkg.data:splits` from the project failed
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    try:
        return importlib.import_module(module_name), name
    except ImportError as error:
        missing = getattr(error, "name", None) or ""
        if isinstance(error, ModuleNotFoundError) and not _names_part_of(missing, module_name):
            # the module was found: one it imports is not installed (was "cannot import
            # mymod (No module named 'x'; looked in the current folder ...)")
            raise UsageError(
                f"{flag} {spec}: importing {module_name} failed: it imports {missing}, which "
                f"is not installed here ({error})"
            ) from None
        raise UsageError(
            f"{flag} {spec}: cannot import {module_name} ({error}; looked in the current folder "
            "and the installed packages)"
        ) from None
    except SyntaxError as error:  # a typo in the file the flag names, as a typo in the flag
        where = f"{error.filename}, line {error.lineno}" if error.filename else "its source"
        raise UsageError(
            f"{flag} {spec}: {module_name} has a syntax error ({error.msg}; {where})"
        ) from None


def _names_part_of(missing: str, module_name: str) -> bool:
    """Whether the module `missing` is `module_name` or a package above it (``a`` or ``a.b``
    of ``a.b.c``): then `module_name` itself was not found."""
    return missing == module_name or module_name.startswith(f"{missing}.")


def entry_point(spec: str, flag: str) -> Callable[[], Any]:
    """``module:function`` → the function, checked to be callable with no arguments, or a
    UsageError naming the flag; a module that fails while being imported is a RunFailure."""
    module_name = spec.partition(":")[0]
    try:
        module, function_name = import_named(spec, flag, "a name or module:function")
    except UsageError:
        raise
    except SystemExit as error:  # a script's top level: its exit would end superconverge's
        raise RunFailure(
            f"{flag} {spec}: importing {module_name} {_exited(error)} (a script's top level "
            "runs on import: guard it with if __name__ == '__main__':)"
        ) from error
    except Exception as error:  # the module itself failed while being imported
        raise RunFailure(
            f"{flag} {spec}: importing {module_name} raised {described(error)}"
        ) from error
    function = getattr(module, function_name, None)
    if function is None:
        raise UsageError(f"{flag} {spec}: {module_name} has no function {function_name}")
    if not callable(function):  # it is there: "has no function x" misled a user's check
        raise UsageError(
            f"{flag} {spec}: {module_name}.{function_name} is not a function (type "
            f"{type(function).__name__})"
        )
    try:
        inspect.signature(function).bind()
    except TypeError:
        raise UsageError(
            f"{flag} {spec}: the function must take no arguments, it has "
            f"{inspect.signature(function)}"
        ) from None
    except ValueError:  # builtins without a signature: calling them will tell
        pass
    checked: Callable[[], Any] = function
    return checked


def described(error: BaseException) -> str:
    """``Type: message``, or the type alone where the error has no message (``MemoryError`` from
    a user's function printed "raised MemoryError: ; fix that function")."""
    text = str(error)
    if isinstance(error, MemoryError) and not text:
        return "MemoryError (out of memory)"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def call_entry_point(function: Callable[[], Any], spec: str, flag: str) -> Any:
    """`function()`, with what it raised restated as a runtime failure naming the flag."""
    try:
        return function()
    except SystemExit as error:  # it ended superconverge silently, with exit status 0 for exit(0)
        # argparse exits with 2, having read superconverge's own command line
        parser = " (an argparse parser in it?)" if error.code == EXIT_USAGE else ""
        raise RunFailure(
            f"{flag} {spec} {_exited(error)} instead of returning{parser}; fix that function"
        ) from error
    except Exception as error:
        raise RunFailure(f"{flag} {spec} raised {described(error)}; fix that function") from error


def _exited(error: SystemExit) -> str:
    """``called sys.exit(2)``, for an entry point that exited instead of returning."""
    return f"called sys.exit({'' if error.code is None else repr(error.code)})"


def model_from_flag(
    model: str, width: float | None, splits: Any, flag: str = "--model"
) -> tuple[Any, str, dict[str, Any]]:
    """(factory, name, build options) for a model name or a ``module:function`` the user named.

    An entry point is called once here, so that one returning no model fails before training.
    """
    from superconverge.models import MODELS, ModelFactory, model_options_for

    if ":" in model:
        if width is not None:
            raise UsageError(f"--width applies to the built-in models, not {flag} {model}")
        function = entry_point(model, flag)
        check_model(call_entry_point(function, model, flag), model, flag)
        return function, model, {}
    if model not in MODELS:
        names = ", ".join(MODELS)
        raise UsageError(f"{flag} must be one of {names} or module:function, got {model!r}")
    options = model_options_for(model, splits.input_shape, splits.num_classes or 1, width)
    return ModelFactory(model, options), model, options


def check_model(model: Any, spec: str, flag: str) -> None:
    """A UsageError unless an entry point returned a torch module."""
    from torch import nn

    if not isinstance(model, nn.Module):
        raise UsageError(f"{flag} {spec} must return a torch.nn.Module, got {type(model).__name__}")


def _usable_folder(
    folder: Path, flag: str, given: Path | None = None, resume: bool = False
) -> None:
    """Refuse a folder that cannot be created or written, leaving nothing behind (a probe
    folder is created and removed where access() cannot tell); messages show the flag's value
    `given` (default `folder`). A folder to `resume` in is to be made writable, not replaced:
    another would start the run over (a user's check)."""
    shown = folder if given is None else given
    if resume and folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(
            f"{flag}: {folder} is not writable; make it writable (chmod u+w {folder}) and run "
            "the same command again (another folder would start the run over)"
        )
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{flag} {shown}: {folder} is a file, not a folder; choose a folder")
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(
            f"{flag} {shown}: cannot create the folder, {existing} is a file; choose another {flag}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {shown}: {existing} is not writable; choose another {flag}")
    try:  # what access() cannot tell (root, a read-only mount, /proc): try, and leave nothing
        os.rmdir(tempfile.mkdtemp(prefix=".superconverge-probe-", dir=existing))
    except OSError as error:
        reason = error.strerror or str(error)
        raise UsageError(
            f"{flag} {shown}: cannot create a folder in {existing} ({reason}); choose another "
            f"{flag}"
        ) from None


def check_outputs(folder: Path, names: Sequence[str], force: bool) -> None:
    """Refuse to overwrite any of `names` in `folder` without --force, or an unusable folder."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is a file, not a folder; choose a folder")
    existing = [name for name in names if (folder / name).exists()]
    if existing and not force:
        raise UsageError(
            f"--out {folder} already holds {', '.join(existing)}; pass --force to overwrite "
            "or choose another --out"
        )
    _usable_folder(folder, "--out")


def check_output_file(path: Path, force: bool) -> None:
    """Refuse to overwrite `path` without --force, or a path whose folder cannot be made."""
    if path.is_dir():
        raise UsageError(f"--out {path} is a folder; name a file such as {path / 'schedule.png'}")
    if path.exists() and not force:
        raise UsageError(f"--out {path} already exists; pass --force to overwrite it")
    _usable_folder(path.parent, "--out", path)


def refuse_busy_folder(folder: Path, flag: str = "--out", advice: str = "") -> None:
    """A FolderBusyError (exit 1) naming the process that writes `folder`, if one does: before
    any advice about what the folder holds (--resume, --force: both refused while it runs)."""
    from superconverge._files import FolderBusyError, folder_holder

    holder = folder_holder(folder)
    if holder is not None:  # not "pass --force": a folder being written is not to be replaced
        advice = advice or f"wait for it to finish, or choose another {flag}"
        raise FolderBusyError(f"{flag} {folder} is being written by {holder}; {advice}")


@contextlib.contextmanager
def interrupts_ignored() -> Iterator[None]:
    """Ctrl-C and SIGTERM ignored for the block: what the first interrupt's line says (what was
    kept, how to go on) is made and printed whole; only in the main thread (where handlers are
    set), and the handlers are put back after."""
    saved = ignore_interrupts()
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def ignore_interrupts() -> dict[int, Any]:
    """Ignore Ctrl-C and SIGTERM from now on (in the main thread; elsewhere nothing changes);
    the handlers they had, by signal."""
    saved: dict[int, Any] = {}
    with contextlib.suppress(ValueError):  # not the main thread
        for signum in (signal.SIGINT, signal.SIGTERM):
            saved[signum] = signal.signal(signum, signal.SIG_IGN)
    return saved


def claim_out_dir(folder: Path, force: bool, resume: bool = False, flag: str = "--out") -> None:
    """Refuse a non-empty output folder without --force (or `resume`), or an unusable one,
    named by `flag` (the one the user gave the folder with)."""
    from superconverge._run_folder import is_empty_but_for_us

    refuse_busy_folder(folder, flag)
    # the lock file, runs moved aside and dead writers' temporary files are not a run
    if not (force or resume) and not is_empty_but_for_us(folder):
        unfinished = unfinished_tune(folder)
        if unfinished is not None:  # --force would discard it once the new run finished
            raise UsageError(
                f"--out {folder} holds a tune that did not finish ({unfinished}); pass --force "
                "to replace it, or choose another --out"
            )
        raise UsageError(
            f"--out {folder} already exists and is not empty; pass --force to overwrite "
            "or choose another --out"
        )
    _usable_folder(folder, flag, resume=resume)


def remove_if_only_the_lock(folder: Path) -> bool:
    """Remove a folder this command made when it holds nothing a resume would use: the lock,
    and at most a tune journal whose only records are `FREE_RECORDS`. A run stopped by its data
    or model before any range test or short run would otherwise leave a folder the same --out
    then refuses as not empty. Whether it was removed."""
    from superconverge._files import LOCK_NAME
    from superconverge.tuning.journal import FREE_RECORDS, JOURNAL, Journal

    if not folder.is_dir():
        return False
    names = sorted(p.name for p in folder.iterdir())
    if names == sorted([LOCK_NAME, JOURNAL]):
        try:
            if set(Journal.load(folder).records) - FREE_RECORDS:
                return False
        except (OSError, ValueError):
            return False
        (folder / JOURNAL).unlink()
    elif names != [LOCK_NAME]:
        return False
    (folder / LOCK_NAME).unlink(missing_ok=True)
    folder.rmdir()
    return True


def resume_command(
    out: Path, command: Sequence[str] | None, ranks: int = 1, *, trusted: bool = True
) -> str:
    """The command that continues the run in `out` that `command` started on `ranks`
    processes (torchrun's, in a journal's ``world_size``). `trusted`: the code the command
    names is the user's own (this process ran it), so the command trusts it.

    Example:
        >>> resume_command(Path("runs/x"), ["--data", "mine:load"], 2)
        'torchrun --nproc-per-node 2 -m superconverge tune --resume runs/x --trust-plan-code'
    """
    trust = " --trust-plan-code" if trusted and named_code(command or []) else ""
    launcher = (
        f"torchrun --nproc-per-node {ranks} -m superconverge" if ranks > 1 else "superconverge"
    )
    return f"{launcher} tune --resume {out}{trust}"


CODE_FLAGS = ("--data", "--model", "--loss", "--metric", "--batch-fn", "--collate-fn")


def named_code(command: Sequence[str]) -> list[str]:
    """The ``module:function`` entry points `command` (a tune command line) names, as
    ``--flag spec``: the code a resume of it would import and call.

    Example:
        >>> named_code(["--data", "mine:load", "--model=mlp", "--metric=mine:f1", "--epochs", "2"])
        ['--data mine:load', '--metric mine:f1']
    """
    named, flag_before = [], None
    for token in command:
        flag, has_value, value = token.partition("=")
        if has_value and flag in CODE_FLAGS and ":" in value:
            named.append(f"{flag} {value}")
        elif flag_before in CODE_FLAGS and ":" in token:
            named.append(f"{flag_before} {token}")
        flag_before = token
    return named


def unfinished_tune(folder: Path) -> str | None:
    """What an interrupted or killed tune left in `folder` and how to continue it, or None: no
    journal, a finished one, or one that cannot be read."""
    from superconverge.tuning.journal import JOURNAL, Journal
    from superconverge.tuning.resumable import kept_on_interrupt

    if not (folder / JOURNAL).is_file():
        return None
    try:
        journal = Journal.load(folder)
    except (OSError, ValueError):
        return None
    if journal.finished:
        return None
    command = resume_command(folder, journal.command, journal.ranks, trusted=False)
    code = named_code(journal.command or [])
    checked = (  # refused without the flag (an auditor's check): said, not added unasked
        f", adding --trust-plan-code once you have checked the code it names ({' '.join(code)})"
        if code
        else ""
    )
    how = (
        f"continue it with `{command}`{checked}"
        if journal.command
        else f"it was started from Python: continue it with tune(..., out_dir={str(folder)!r}, "
        "resume=True) and the same arguments"
    )
    return f"started {journal.started}; kept: {kept_on_interrupt(journal)}; {how}"


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    """``--data`` (a bundled data set or module:function) and ``--data-dir``, as lr-find and tune
    share them."""
    parser.add_argument(
        "--data", default="digits", help=f"{', '.join(data_names())}, or module:function"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="folder with the data files (default: $SUPERCONVERGE_DATA/<data>)",
    )


def data_names() -> list[str]:
    """The data sets the CLI loads by name (`DATA_NAMES`)."""
    return list(DATA_NAMES)


def resolve_data(data: str, data_dir: Path | None, seed: int, flag: str = "--data") -> Any:
    """DataSplits from a data set name, or from a user's ``module:function`` returning them."""
    from superconverge.data import BUNDLED_DATASETS, DataSplits, load

    if ":" in data:
        if data_dir is not None:
            raise UsageError(
                f"--data-dir applies to the data sets read from files, not {flag} {data}"
            )
        splits = call_entry_point(entry_point(data, flag), data, flag)
        if not isinstance(splits, DataSplits):  # Datasets, loader factories, tensors
            from superconverge.cli._data_flags import user_data

            return user_data(data, splits)
        return splits
    if data not in data_names():
        names = ", ".join(data_names())
        raise UsageError(f"{flag} must be one of {names} or module:function, got {data!r}")
    if data_dir is not None:
        if data in BUNDLED_DATASETS:
            raise UsageError(
                f"--data-dir applies to the data sets read from files; {data} is built in"
            )
        if not data_dir.is_dir():
            raise UsageError(f"--data-dir {data_dir} is not a folder")
    try:
        return load(data, data_dir, seed=seed)
    except FileNotFoundError as error:
        raise UsageError(f"--data-dir: {error}{_data_dir_hint(data, data_dir)}") from None


def _data_dir_hint(data: str, data_dir: Path | None) -> str:
    """The fix for the usual mix-up of the two folders, where the folders show it: --data-dir
    names the data set's own folder (.../mnist), SUPERCONVERGE_DATA the folder above it."""
    from superconverge.data.datasets import DATA_ENV

    if data_dir is not None:
        if (data_dir / data).is_dir():
            return (
                f" --data-dir names the folder that holds the files, not the one above it: "
                f"pass --data-dir {data_dir / data}"
            )
        return ""
    base = os.environ.get(DATA_ENV)
    if base and Path(base).name == data and not (Path(base) / data).exists():
        return (
            f" {DATA_ENV} names the folder above each data set's own ({DATA_ENV}/{data}): set "
            f"{DATA_ENV}={Path(base).parent}, or pass --data-dir {base}"
        )
    return ""


def read_json(path: Path, flag: str) -> Any:
    """The JSON in `path`, or a UsageError naming the flag, the file and what is wrong."""
    if not path.exists():
        raise UsageError(f"{flag} {path} not found")
    if not path.is_file():
        raise UsageError(f"{flag} {path} is not a file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"{flag} {path}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{flag} {path} is not a JSON text file (not UTF-8)") from None
    except json.JSONDecodeError as error:
        raise UsageError(
            f"{flag} {path} is not valid JSON (line {error.lineno} column {error.colno}: "
            f"{error.msg})"
        ) from None
    except RecursionError:
        raise UsageError(f"{flag} {path} is nested too deeply to be a tune file") from None


def scores_line(test: dict[str, Any]) -> str:
    """``test accuracy 0.9638, test loss 0.1309``: accuracy (or binary_accuracy) first where
    there is one, then the loss and every other metric (a regression's mse, mae); none is
    invented.

    Example:
        >>> scores_line({"loss": 0.4825, "mse": 0.4825, "mae": 0.55})
        'test loss 0.4825, test mse 0.4825, test mae 0.5500'
        >>> scores_line({"loss": 0.1309, "accuracy": 0.9638})
        'test accuracy 0.9638, test loss 0.1309'
        >>> scores_line({"loss": 0.1233, "binary_accuracy": 0.9551})
        'test binary_accuracy 0.9551, test loss 0.1233'
    """
    names = sorted(
        (name for name, value in test.items() if isinstance(value, (int, float))),
        key=lambda name: (name not in ("accuracy", "binary_accuracy"), name != "loss"),
    )
    return ", ".join(f"test {name} {test[name]:.4f}" for name in names)


def refuse_torchrun(command: str) -> None:
    """`command` runs in one process: under torchrun each rank ran all of it, printed it, and
    the second failed on the first's folder lock (a user's check). Said before anything runs;
    `tune` is the command that joins the ranks."""
    from superconverge.pytorch.distributed import launched_ranks

    ranks = launched_ranks()
    if ranks > 1:
        raise UsageError(
            f"{command} runs in one process, and torchrun started {ranks}: run it without "
            "torchrun (superconverge tune trains on all of them; from Python, a Trainer "
            "under torchrun shards the data itself)"
        )


def model_note(out: Path) -> str:
    """``"; model: OUT/model.pt"`` where the run wrote it (the weights its test scores are of),
    else ``""``: the end of the line `tune` and `fit --plan` finish with."""
    from superconverge.training.checkpoint import MODEL

    model = out / MODEL
    return f"; model: {model}" if model.is_file() else ""
