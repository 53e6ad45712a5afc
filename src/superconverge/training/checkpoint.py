"""Checkpoints that are never half-written and load with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from superconverge._files import write_atomically

FORMAT_VERSION = 1


def save_atomically(payload: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over `path`.

    A crash (even SIGKILL) at any moment leaves either the previous file or the new one, never
    a truncated mix: the rename is atomic on POSIX file systems.
    """
    return write_atomically(path, lambda handle: torch.save(payload, handle))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by `save_atomically`, with ``weights_only=True``.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: the file is not a superconverge checkpoint (or is corrupt).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # a corrupt or foreign file: say which
        raise ValueError(
            f"checkpoint {path} cannot be read ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {path} is not a superconverge checkpoint (format {FORMAT_VERSION})"
        )
    return payload


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) RNG states, in types ``weights_only`` accepts."""
    numpy_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(numpy_state[1], dtype=np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def model_signature(model: torch.nn.Module) -> dict[str, list[int]]:
    """Parameter and buffer names with their shapes: tells two architectures apart."""
    return {name: list(tensor.shape) for name, tensor in model.state_dict().items()}


def check_signature(saved: dict[str, list[int]], model: torch.nn.Module, path: str | Path) -> None:
    """Raise a clear error when a checkpoint was written for another model."""
    current = model_signature(model)
    missing = sorted(set(saved) - set(current))
    extra = sorted(set(current) - set(saved))
    shapes = sorted(k for k in set(saved) & set(current) if saved[k] != current[k])
    if missing or extra or shapes:
        details = []
        if missing:
            details.append(f"missing in this model: {missing[:5]}")
        if extra:
            details.append(f"not in the checkpoint: {extra[:5]}")
        if shapes:
            key = shapes[0]
            details.append(f"shape of {key}: checkpoint {saved[key]}, model {current[key]}")
        raise ValueError(f"checkpoint {path} was written for another model ({'; '.join(details)})")
