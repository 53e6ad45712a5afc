"""A saved plan for the CLI's ``fit --plan`` tests: one epoch of the MLP on the bundled digits."""

import json
from pathlib import Path
from typing import Any

DIGITS_PLAN = {
    "epochs": 1,
    "batch_size": 64,
    "max_lr": 0.1,
    "min_lr": 0.01,
    "weight_decay": 0.0,
    "momentum": [0.95, 0.85],
    "policy": "smith",
    "seed": 0,
    "data": "digits",
    "model": "mlp",
    "model_options": {"in_features": 64, "num_classes": 10},
}


def digits_plan(folder: Path, **changes: Any) -> Path:
    """Write ``folder/plan.json`` (a few seconds of training) with `changes` applied; its path."""
    path = folder / "plan.json"
    path.write_text(json.dumps({**DIGITS_PLAN, **changes}))
    return path
