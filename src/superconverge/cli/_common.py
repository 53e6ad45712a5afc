"""What the subcommands share: the error kinds, the parser, flag names in library messages,
``module:function`` entry points, output-folder claims and data resolution."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

EXIT_USAGE = 2


class UsageError(Exception):
    """A bad flag or value: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints the whole usage block by default)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def flag_message(error: Exception, parser: argparse.ArgumentParser) -> str:
    """Turn a library message that starts with a parameter name into one naming the flag."""
    text = str(error)
    match = re.match(r"([a-z][a-z0-9_]*)", text)
    if match:
        flag = "--" + match.group(1).replace("_", "-")
        if flag in parser._option_string_actions:  # noqa: SLF001 - argparse keeps flags here
            return flag + text[match.end() :]
    return text


def entry_point(spec: str, flag: str) -> Any:
    """``module:function`` → the function, or a UsageError naming the flag."""
    import importlib

    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise UsageError(f"{flag} must be a name or module:function, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"{flag} {spec}: cannot import {module_name} ({error})") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise UsageError(f"{flag} {spec}: {module_name} has no function {function_name}")
    return function


def check_outputs(folder: Path, names: Sequence[str], force: bool) -> None:
    """Refuse to overwrite any of `names` in `folder` without --force."""
    existing = [name for name in names if (folder / name).exists()]
    if existing and not force:
        raise UsageError(
            f"--out {folder} already holds {', '.join(existing)}; pass --force to overwrite "
            "or choose another --out"
        )


def claim_out_dir(folder: Path, force: bool) -> None:
    """Refuse a non-empty output folder without --force."""
    if folder.exists() and any(folder.iterdir()) and not force:
        raise UsageError(
            f"--out {folder} already exists and is not empty; pass --force to overwrite"
        )


def data_names() -> list[str]:
    """The data sets the CLI loads by name (csv needs a label column: the Python API only)."""
    from superconverge.data import DATASETS

    return [name for name in DATASETS if name != "csv"]


def resolve_data(data: str, data_dir: Path | None, seed: int) -> Any:
    """DataSplits from a data set name, or from a user's ``module:function`` returning them."""
    from superconverge.data import DataSplits, load

    if ":" in data:
        splits = entry_point(data, "--data")()
        if not isinstance(splits, DataSplits):
            raise UsageError(f"--data {data} must return superconverge.data.DataSplits")
        return splits
    if data not in data_names():
        names = ", ".join(data_names())
        raise UsageError(f"--data must be one of {names} or module:function, got {data!r}")
    return load(data, data_dir, seed=seed)


def short(value: Any) -> str:
    """A value in a few characters: floats to 3 significant digits, dicts as ``k v`` pairs."""
    if isinstance(value, dict):
        return ", ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items()
        )
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(f"{v:g}" for v in value) + ")"
    return f"{value:.3g}" if isinstance(value, float) else str(value)
