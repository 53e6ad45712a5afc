"""JSON helpers: NaN and infinity travel as strings, so files stay standard JSON."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any


def encode_nonfinite(value: Any) -> Any:
    """A copy with NaN/inf floats as "nan"/"inf"/"-inf" and tuples as lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: encode_nonfinite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_nonfinite(item) for item in value]
    return value


def decode_nonfinite(value: Any) -> Any:
    """The inverse of `encode_nonfinite` (lists stay lists)."""
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    if isinstance(value, dict):
        return {key: decode_nonfinite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_nonfinite(item) for item in value]
    return value


def reject_unknown_keys(data: dict[str, Any], known: Any, what: str) -> None:
    """Raise ``ValueError: unknown <what>: [...]`` naming keys that are not in `known`."""
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown {what}: {unknown}")


NONFINITE = ("nan", "inf", "-inf")  # how `encode_nonfinite` writes NaN and infinities


def check_fields(cls: Any, data: dict[str, Any], what: str, required: Any = None) -> None:
    """Every `required` field of the dataclass `cls` (default: those without a default) is in
    `data`, and each value fits its field's annotation as JSON holds it (lists for tuples,
    "nan"/"inf"/"-inf" for non-finite floats).

    Raises:
        ValueError: ``not <what>: epochs missing``, or the first value of another type, where
            it is and what it is: ``field epochs[0]['val_loss'] must be float, got 'x'``.
    """
    if required is None:
        required = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
    missing = [name for name in required if name not in data]
    if missing:
        raise ValueError(f"not {what}: {', '.join(missing)} missing")
    try:
        hints = typing.get_type_hints(cls)
    except NameError:  # an annotation only importable for type checkers: its reader checks it
        hints = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            wrong = _mismatch(data[f.name], hints.get(f.name, Any), f.name)
            if wrong is not None:
                where, hint, value = wrong
                raise ValueError(f"field {where} must be {type_text(hint)}, got {value!r}")


def check_parts(data: dict[str, Any], hints: dict[str, Any], where: str) -> None:
    """Each key of `data` named in `hints` fits its annotation, as `check_fields` checks a
    dataclass's fields; keys not in `hints` are not checked, a missing one is allowed.

    Raises:
        ValueError: ``field results.test must be dict[str, float | null], got [1]``.
    """
    for key, hint in hints.items():
        if key in data:
            wrong = _mismatch(data[key], hint, f"{where}.{key}")
            if wrong is not None:
                place, part, value = wrong
                raise ValueError(f"field {place} must be {type_text(part)}, got {value!r}")


def _mismatch(value: Any, hint: Any, where: str) -> tuple[str, Any, Any] | None:
    """``(where, annotation, value)`` of the first part of JSON `value` that does not fit
    `hint` (the annotations dataclasses here use), or None where it all fits."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return None
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None if type(None) in args else (where, hint, value)
        options = [option for option in args if option is not type(None)]
        if len(options) == 1:  # `float | None`: name the part inside that does not fit
            inner = _mismatch(value, options[0], where)
            return (where, hint, value) if inner is not None and inner[0] == where else inner
        fits = any(_mismatch(value, option, where) is None for option in options)
        return None if fits else (where, hint, value)
    if hint is float:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        fits = number or (isinstance(value, str) and value in NONFINITE)
    elif hint is int:
        fits = isinstance(value, int) and not isinstance(value, bool)
    elif hint in (str, bool, list, dict):
        fits = isinstance(value, hint)
    elif origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return where, hint, value
        if origin is tuple and args[-1:] != (Ellipsis,):  # tuple[float, float]: that many
            if len(value) != len(args):
                return where, hint, value
            items = list(zip(value, args, strict=True))
        else:
            items = [(item, args[0] if args else Any) for item in value]
        for index, (item, item_hint) in enumerate(items):
            wrong = _mismatch(item, item_hint, f"{where}[{index}]")
            if wrong is not None:
                return wrong
        return None
    elif origin is dict:
        if not isinstance(value, dict):
            return where, hint, value
        item_hint = args[1] if args else Any
        for key, item in value.items():
            wrong = _mismatch(item, item_hint, f"{where}[{key!r}]")
            if wrong is not None:
                return wrong
        return None
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            return where, hint, value
        try:
            reject_unknown_keys(value, [f.name for f in dataclasses.fields(hint)], "fields")
            check_fields(hint, value, hint.__name__)
        except ValueError:
            return where, hint, value
        return None
    else:
        return None  # a type JSON cannot hold: its own reader checks it
    return None if fits else (where, hint, value)


def type_text(hint: Any) -> str:
    """``int``, ``str | null``, ``tuple[float, ...]``: an annotation as a JSON reader sees it."""
    text = hint.__name__ if isinstance(hint, type) else str(hint)
    text = re.sub(r"\b[\w.]+\.(\w+)", r"\1", text)  # typing.Any, package.module.Confidence
    return re.sub(r"\bNone(Type)?\b", "null", text)
