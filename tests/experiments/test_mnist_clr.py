import json
import math
import os
import re
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
    assert len(results["unit"]["recipe (tune)"][0]["curve"]) >= 3  # its final run's (it had none)
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


def test_the_table_flags_chance_level_runs_and_lists_max_lr_per_scaling_in_seed_order():
    # a user's check: --quick printed rows of 0.1135 (learnt nothing) without a word, and the
    # max_lr cell listed the values of both scalings sorted, so no run could be matched to one
    from superconverge.experiments.mnist_clr import CONTENDERS, Settings, _table

    def runs(*pairs):
        return [{"accuracy": a, "max_lr": lr} for a, lr in pairs]

    results = {
        scaling: {name: runs((0.95, None), (0.96, None)) for name in CONTENDERS}
        for scaling in ("raw", "unit")
    }
    results["raw"]["recipe (tune)"] = runs((0.1135, 0.3), (0.97, 0.02))
    results["unit"]["recipe (tune)"] = runs((0.098, 0.5), (0.1135, 0.04))
    results["raw"]["1cycle (range test)"] = runs((0.9, 0.05), (math.nan, 0.01))
    results["unit"]["1cycle (range test)"] = runs((0.9, 0.05), (0.91, 0.01))
    table = _table(results, Settings(seeds=2))
    recipe = next(line for line in table.splitlines() if line.startswith("| recipe (tune) |"))
    assert "(1 at chance) |" in recipe and "(at chance) |" in recipe
    assert recipe.endswith("| raw: 0.3, 0.02; [0, 1]: 0.5, 0.04 |")
    cycle = next(line for line in table.splitlines() if line.startswith("| 1cycle"))
    assert "(1 diverged)" in cycle and cycle.endswith("| 0.05, 0.01 |")  # the same: said once
    assert "chance" not in next(line for line in table.splitlines() if line.startswith("| CLR"))


def test_an_interrupted_run_keeps_its_finished_runs_and_resumes(tmp_path, monkeypatch):
    # results.json was written once, at the end: an interrupt lost every run made
    from superconverge.experiments import mnist_clr
    from tests.data.conftest import make_mnist

    make_mnist(tmp_path / "mnist", train=320, test=40)
    settings = mnist_clr.Settings(seeds=1, evaluations=2)
    real, calls = mnist_clr._contender, []

    def interrupted_at_the_third(name, seed, *args):
        calls.append((name, seed))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(name, seed, *args)

    monkeypatch.setattr(mnist_clr, "_contender", interrupted_at_the_third)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        mnist_clr.run(out, settings, str(tmp_path / "mnist"))
    first = json.loads((out / "results.json").read_text())["results"]
    assert {name: len(runs) for name, runs in first["raw"].items()} == {"CLR": 1, "Adam": 1}
    assert mnist_clr.recorded_runs(out, settings) == 2
    assert mnist_clr.recorded_runs(out, mnist_clr.Settings(seeds=2, evaluations=2)) == 0
    monkeypatch.setattr(mnist_clr, "_contender", real)
    results = mnist_clr.run(out, settings, str(tmp_path / "mnist"))
    assert results["raw"]["CLR"] == first["raw"]["CLR"]  # kept, not run again
    assert all(len(runs) == 1 for scaling in results.values() for runs in scaling.values())
    assert (out / "accuracy.png").is_file()
    # the heading says one epoch; the recipe's final run trained the budget's 2 (unsaid)
    assert results["raw"]["recipe (tune)"][0]["epochs"] == 2
    # each number names its scaling (a user's check: "(5,400, 6,162 training samples ...)")
    assert re.search(
        r"The recipe's final run trained 2 epochs \(training samples, its search's included: "
        r"raw [0-9,]+; \[0, 1\] [0-9,]+\)",
        (out / "results.md").read_text(),
    )
