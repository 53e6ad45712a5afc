"""DESIGN.md's layer rules, checked in a fresh interpreter."""

import subprocess
import sys


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in out.stdout.split()}


def test_schedule_math_imports_no_torch_numpy_or_matplotlib():
    loaded = _modules_loaded_by("import superconverge.schedules")
    assert not loaded & {"torch", "numpy", "matplotlib"}


def test_top_level_package_loads_torch_only_when_a_torch_name_is_used():
    assert "torch" not in _modules_loaded_by(
        "import superconverge; superconverge.one_cycle(10, 0.1)"
    )
    assert "torch" in _modules_loaded_by("import superconverge; superconverge.HyperparamScheduler")
