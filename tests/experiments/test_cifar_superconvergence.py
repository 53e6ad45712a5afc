import json
import math
import os
from pathlib import Path

import pytest

from superconverge.cli.main import main
from superconverge.experiments import cifar_superconvergence as experiment
from tests.data.conftest import make_cifar_archive

DATA = os.environ.get("SUPERCONVERGE_DATA")


def _check_outputs(out, settings):
    saved = json.loads((out / "results.json").read_text())
    results = saved["results"]
    assert set(results) == set(experiment.CONTENDERS)
    epochs = {name: row["epochs"] for name, row in results.items()}
    assert epochs == {
        "one cycle 0.1-3.5": settings.epochs,
        "piecewise 0.35/0.035/0.0035": 8 * settings.epochs,
        "constant 0.35 (E)": settings.epochs,
        "constant 0.35 (1.5E)": math.ceil(1.5 * settings.epochs),
        "Adam": settings.epochs,
        # what its final run trained (the table said E): the budget doubles it
        "recipe (tune)": 2 * settings.epochs,
    }
    assert results["recipe (tune)"]["compute"]["x_final_run"] == 2.0
    for name, row in results.items():
        accuracy = row["accuracy"]
        assert math.isnan(accuracy) or 0.0 <= accuracy <= 1.0, (name, row)
        if name != "recipe (tune)":  # one test point per epoch, steps and train seconds rising
            assert len(row["curve"]) == row["epochs"]
            steps = [point[0] for point in row["curve"]]
            assert steps == sorted(steps) and steps[0] > 0
    table = (out / "results.md").read_text()
    assert "| one cycle 0.1-3.5 | " in table and "0.8636 (8 epochs)" in table
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    return results


def test_every_contender_runs_on_a_tiny_archive_of_the_real_format(tmp_path):
    archive, _ = make_cifar_archive(
        tmp_path / "cifar10",
        name="cifar-10-subset-python.tar.gz",
        batches=(1,),
        per_batch=160,
        test=40,
    )
    settings = experiment.Settings(epochs=1, width=0.125, blocks=1, batch_size=16)
    experiment.run(tmp_path / "out", settings, str(archive.parent))
    results = _check_outputs(tmp_path / "out", settings)
    plan_steps = results["piecewise 0.35/0.035/0.0035"]["curve"][-1][0]
    assert plan_steps == 8 * 10  # 160 images at batch 16, 8 epochs


def test_cli_refuses_seeds_for_a_one_seed_experiment(tmp_path, capsys):
    out = tmp_path / "never"
    code = main(["reproduce", "cifar10-superconvergence", "--seeds", "3", "--out", str(out)])
    assert code == 2 and not out.exists()
    assert "--seeds is not an option of cifar10-superconvergence" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(
    not DATA or not Path(DATA, "cifar10").is_dir(), reason="SUPERCONVERGE_DATA unset"
)
def test_quick_run_on_the_real_archive(tmp_path):
    out = tmp_path / "quick"
    assert main(["reproduce", "cifar10-superconvergence", "--quick", "--out", str(out)]) == 0
    _check_outputs(out, experiment.QUICK)
