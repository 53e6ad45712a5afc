"""JSON helpers: NaN and infinity travel as strings, so files stay standard JSON."""

from __future__ import annotations

import math
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
