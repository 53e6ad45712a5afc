import json
import math

import pytest

from superconverge.cli.main import main
from superconverge.experiments import EXPERIMENTS, MODULES
from superconverge.experiments import cifar_data_size as experiment
from tests.data.conftest import make_cifar_archive

TINY = experiment.Settings(sizes=(40, 80), seeds=2, width=0.125, blocks=1, batch_size=16,
                           cycle_steps=4, piecewise_factor=3, test_every=3)  # fmt: skip


@pytest.fixture
def archive_dir(tmp_path):
    archive, _ = make_cifar_archive(tmp_path / "cifar10-full", batches=(1,), per_batch=96, test=24)
    return archive.parent


def test_the_piecewise_baseline_drops_tenfold_at_the_given_fractions_of_its_steps():
    settings = experiment.Settings(
        cycle_steps=10, piecewise_factor=8, piecewise_drops=(0.625, 0.875)
    )
    plan, momentum = experiment._plan("piecewise", settings)
    assert plan.total_steps == 80 and momentum == 0.9
    assert [plan.lr(t) for t in (0, 49, 50, 69, 70, 79)] == pytest.approx(
        [0.35, 0.35, 0.035, 0.035, 0.0035, 0.0035]
    )


def test_the_cycle_is_one_triangle_from_min_to_max_and_back():
    settings = experiment.Settings(cycle_steps=10, cycle_lrs=(0.1, 3.0), cycle_momentum=0.9)
    plan, momentum = experiment._plan("one cycle", settings)
    assert plan.total_steps == 10 and momentum == 0.9
    assert [plan.lr(t) for t in (0, 5, 10)] == pytest.approx([0.1, 3.0, 0.1])


def test_the_cpu_protocol_passes_over_the_smallest_set_several_times():
    # 250 cycle steps (8,000 images) never revisited an image; the overfitting Table 1 is about
    # needs the baseline to see the small set many times
    full = experiment.FULL
    passes = full.cycle_steps * full.batch_size / min(full.sizes)
    assert passes >= 4 and full.piecewise_factor * passes >= 16


def test_summary_is_mean_and_sample_sd_of_the_finished_runs():
    runs = {
        "a": {"size": 10, "policy": "one cycle", "accuracy": 0.5},
        "b": {"size": 10, "policy": "one cycle", "accuracy": 0.7},
        "c": {"size": 10, "policy": "one cycle", "accuracy": math.nan},  # diverged
        "d": {"size": 10, "policy": "piecewise", "accuracy": 0.9},
    }
    mean, sd, finished, total = experiment.summary(runs, 10, "one cycle")
    assert (mean, finished, total) == (pytest.approx(0.6), 2, 3)
    assert sd == pytest.approx(math.sqrt(0.02))  # ((0.1² + 0.1²) / (2 - 1)) ** 0.5
    assert math.isnan(experiment.summary(runs, 10, "piecewise")[1])  # one run: no sd


def test_every_size_seed_and_policy_runs_its_exact_steps_and_resumes(archive_dir, tmp_path):
    out = tmp_path / "out"
    runs = experiment.run(out, TINY, str(archive_dir))
    assert len(runs) == 2 * 2 * 2
    for row in runs.values():
        steps = 4 if row["policy"] == "one cycle" else 12
        assert row["steps"] == steps and row["samples"] == 16 * steps  # stops mid-epoch
        assert [p[0] for p in row["curve"]] == [s for s in (3, 6, 9, 12) if s < steps] + [steps]
        assert math.isnan(row["accuracy"]) or row["accuracy"] == row["curve"][-1][-1]
    saved = json.loads((out / "results.json").read_text())
    assert saved["environment"]["test"] == 24 and set(saved["runs"]) == set(runs)
    table = (out / "results.md").read_text()
    assert "| 40 | " in table and "| 80 | " in table
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"

    def never(*args, **kwargs):
        raise AssertionError("a finished run ran again")

    experiment.one_run, saved_run = never, experiment.one_run  # type: ignore[assignment]
    try:
        assert experiment.run(out, TINY, str(archive_dir)) == json.loads(json.dumps(runs))
    finally:
        experiment.one_run = saved_run


def test_sizes_beyond_the_archive_are_refused(archive_dir, tmp_path):
    with pytest.raises(ValueError, match=r"sizes \[200\] exceed the 96 training images"):
        experiment.run(tmp_path / "out", experiment.Settings(sizes=(200,)), str(archive_dir))


def test_the_table_cites_the_paper_for_the_sizes_it_published():
    rows = [("one cycle", 0.8), ("piecewise", 0.7)]
    runs = {
        experiment._key(10_000, 0, policy): {"size": 10_000, "policy": policy, "accuracy": value}
        for policy, value in rows
    }
    text = experiment.table(
        runs, experiment.Settings(sizes=(10_000,)), {"test": 10, "device": "cpu"}
    )
    assert "| 10,000 | 80.0 | 70.0 | +10.0 | 80.6 / 71.4 | 1/1 / 1/1 |" in text


def test_registered_for_reproduce_with_its_cli_seeds(tmp_path, archive_dir, monkeypatch):
    assert (
        MODULES["cifar10-data-size"] == experiment.__name__ and "cifar10-data-size" in EXPERIMENTS
    )
    seen = {}
    monkeypatch.setattr(experiment, "run", lambda out, settings, data_dir: seen.update(
        settings=settings) or (out.mkdir(parents=True, exist_ok=True) or (out / "results.md").write_text("ok")))  # fmt: skip
    assert main(["reproduce", "cifar10-data-size", "--quick", "--seeds", "3",
                 "--out", str(tmp_path / "r")]) == 0  # fmt: skip
    assert seen["settings"].seeds == 3 and seen["settings"].sizes == experiment.QUICK.sizes
