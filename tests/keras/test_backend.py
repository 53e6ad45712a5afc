"""Which Keras backend `superconverge.keras` gets, in a fresh process (keras picks it once, when
first imported): torch when nothing else was asked for and TensorFlow (Keras's default) is
missing, the user's choice otherwise, and a message naming the backend when that one fails."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

PROBE = "import superconverge.keras, keras; print(keras.backend.backend())"


def _run(tmp_path, code, **env):
    clean = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    clean["KERAS_HOME"] = str(tmp_path / "keras-home")  # no keras.json of the user's
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=clean, timeout=120
    )


@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is not None, reason="TensorFlow is Keras's default here"
)
def test_without_tensorflow_and_without_a_choice_keras_runs_on_torch(tmp_path):
    run = _run(tmp_path, PROBE)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "torch"


def test_a_backend_the_user_set_is_kept(tmp_path):
    run = _run(tmp_path, PROBE, KERAS_BACKEND="torch")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "torch"


@pytest.mark.skipif(importlib.util.find_spec("jax") is not None, reason="jax is installed here")
@pytest.mark.parametrize("where", ["KERAS_BACKEND", "keras.json"])
def test_a_missing_backend_the_user_asked_for_is_named_with_the_way_out(tmp_path, where):
    env = {}
    if where == "KERAS_BACKEND":
        env["KERAS_BACKEND"] = "jax"
    else:  # asked for in keras's own config file: not replaced by torch behind the user's back
        (tmp_path / "keras-home").mkdir()
        (tmp_path / "keras-home" / "keras.json").write_text(json.dumps({"backend": "jax"}))
    run = _run(tmp_path, PROBE, **env)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert "its 'jax' backend cannot be imported" in last
    assert "set KERAS_BACKEND=torch" in last
    assert "needs Keras 3" not in run.stderr  # keras is there: it was never the problem


@pytest.mark.skipif(importlib.util.find_spec("jax") is not None, reason="jax is installed here")
def test_the_numpy_backend_names_the_module_it_lacks(tmp_path):
    # a user's check: "No module named 'jax'; install numpy", numpy being installed
    run = _run(tmp_path, PROBE, KERAS_BACKEND="numpy")
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 1 and "'numpy' backend cannot be imported" in last
    assert "install jax," in last and "install numpy" not in last
