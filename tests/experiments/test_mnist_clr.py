import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from superconverge.cli.main import main

DATA = os.environ.get("SUPERCONVERGE_DATA")


@pytest.mark.data
@pytest.mark.skipif(not DATA or not Path(DATA, "mnist").is_dir(), reason="SUPERCONVERGE_DATA unset")
def test_mnist_clr_quick_writes_table_json_and_plot(tmp_path, capsys):
    out = tmp_path / "clr"
    assert main(["reproduce", "mnist-clr", "--quick", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())["results"]
    assert set(results) == {"raw", "unit"}
    for scaling in ("raw", "unit"):
        assert set(results[scaling]) == {
            "CLR",
            "Adam",
            "SGD",
            "1cycle (range test)",
            "recipe (tune)",
        }
    # 94 steps of 3,000 images: a smoke test that every cell ran; the small fixed LRs of CLR and
    # SGD learn slowly on [0, 1] inputs (the point); on [0, 1] our 1cycle must learn
    accuracies = [r[0]["accuracy"] for s in results.values() for r in s.values()]
    assert all(0.0 <= a <= 1.0 or math.isnan(a) for a in accuracies), results  # NaN: diverged
    assert results["unit"]["1cycle (range test)"][0]["accuracy"] > 0.6
    assert len(results["unit"]["CLR"][0]["curve"]) == 4  # test accuracy along the epoch
    table = (out / "results.md").read_text()
    assert "| CLR | 0.9664 |" in table and "±" not in table  # one seed: no spread to show
    assert "(one seed)" in table and "**A reduced run** (3,000 training, 1,000 test" in table
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"


def test_reproduce_list_and_bad_names(tmp_path):
    run = subprocess.run([sys.executable, "-m", "superconverge", "reproduce", "--list"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0
    for name in ("mnist-clr", "cifar10-superconvergence", "cifar10-full", "cifar10-data-size"):
        assert name in run.stdout
    run = subprocess.run([sys.executable, "-m", "superconverge", "reproduce", "imagenet"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert (
        run.returncode == 2
        and "NAME must be one of mnist-clr, cifar10-superconvergence, cifar10-full, "
        "cifar10-data-size, got 'imagenet'"
        in run.stderr
    )
