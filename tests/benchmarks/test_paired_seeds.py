"""benchmarks/paired_seeds.py: which records pair up, and the bootstrap interval."""

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("numpy")

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import paired_seeds  # noqa: E402


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_records_pair_by_seed_and_the_divisor_records_replace_the_recipe(tmp_path):
    def row(contender, seed, accuracy, compute="equal-compute", status="completed"):
        return {"data": "mnist", "seed": seed, "contender": contender, "compute": compute,
                "status": status, "test": {"accuracy": accuracy}}  # fmt: skip

    contenders = _write(tmp_path / "c.jsonl", [
        row("recipe", 0, 0.90, compute="both"), row("recipe", 1, 0.91, compute="both"),
        row("nadamw", 0, 0.92), row("nadamw", 1, 0.80, compute="equal-epochs"),
        row("prodigy", 1, 0.5, status="diverged"), row("adam", 0, 0.99),
    ])  # fmt: skip
    divisor = _write(tmp_path / "d.jsonl", [
        {"data": "mnist", "seed": 0, "divisor": 6.0, "test": {"accuracy": 0.95}},
        {"data": "mnist", "seed": 1, "divisor": 10.0, "test": {"accuracy": 0.10}},
        {"data": "mnist", "seed": 1, "divisor": 6.0, "plateau": "keep",
         "test": {"accuracy": 0.20}},
    ])  # fmt: skip
    runs = paired_seeds.read([contenders], [divisor], 6.0)
    assert runs["mnist"]["recipe"] == pytest.approx({0: 95.0, 1: 91.0})
    assert runs["mnist"]["nadamw"] == pytest.approx({0: 92.0})  # equal compute only
    assert "prodigy" not in runs["mnist"] and "adam" not in runs["mnist"]


def test_the_interval_holds_the_mean_and_is_the_same_each_time():
    differences = [0.1, -0.2, 0.3, 0.05, 0.0]
    low, high = paired_seeds.interval(differences)
    assert low < sum(differences) / 5 < high
    assert (low, high) == paired_seeds.interval(differences)
    assert paired_seeds.interval([0.5, 0.5, 0.5]) == pytest.approx((0.5, 0.5))
