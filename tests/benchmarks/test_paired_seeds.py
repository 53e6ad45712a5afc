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
    # tune at the defaults of a later day: its records replace the recipe's, whatever they hold
    later = _write(tmp_path / "k.jsonl", [
        {"data": "mnist", "seed": 1, "divisor": 3.0, "average": 1.0, "test": {"accuracy": 0.97}},
    ])  # fmt: skip
    runs = paired_seeds.read([contenders], [divisor], 6.0, [later])
    assert runs["mnist"]["recipe"] == pytest.approx({0: 95.0, 1: 97.0})


def test_the_interval_holds_the_mean_and_is_the_same_each_time():
    differences = [0.1, -0.2, 0.3, 0.05, 0.0]
    low, high = paired_seeds.interval(differences)
    assert low < sum(differences) / 5 < high
    assert (low, high) == paired_seeds.interval(differences)
    assert paired_seeds.interval([0.5, 0.5, 0.5]) == pytest.approx((0.5, 0.5))


def test_variants_are_named_by_what_differs_and_never_count_as_the_default(tmp_path):
    default = {"data": "sst2", "seed": 0, "divisor": 6.0, "optimizer": "adamw", "beta2": 0.999,
               "momentum": [0.95, 0.85], "val_rise": False, "test": {"accuracy": 0.81}}  # fmt: skip
    beta2 = {**default, "beta2": 0.9955, "test": {"accuracy": 0.80}}
    held = {**default, "seed": 1, "momentum": [0.9, 0.9], "val_rise": True,
            "test": {"accuracy": 0.82}}  # fmt: skip
    assert paired_seeds.variant(default) == ""
    assert paired_seeds.variant(beta2) == "beta2 0.9955"
    assert paired_seeds.variant(held) == "momentum 0.9 0.9, val-rise"
    assert paired_seeds.variant({"seed": 0, "descent_beta2": 0.99}) == "descent-beta2 0.99"
    # the weight averaging: records before it have no "average" (tune's default then)
    assert paired_seeds.variant({**default, "average": 1.0}) == "average 1.0"
    assert paired_seeds.variant({**default, "average": None}) == ""
    records = _write(tmp_path / "v.jsonl", [default, beta2, held])
    runs = paired_seeds.read([], [records], 6.0)
    assert runs["sst2"]["recipe"] == pytest.approx({0: 81.0})  # the variants are not tune's
    variants = paired_seeds.read_variants([records])
    assert variants["sst2"]["beta2 0.9955"] == pytest.approx({0: 80.0})
    assert variants["sst2"]["momentum 0.9 0.9, val-rise"] == pytest.approx({1: 82.0})


def test_a_paired_row_counts_the_seeds_both_hold():
    row = paired_seeds.paired_row("x", {0: 1.0, 1: 2.0, 2: 3.0}, {1: 1.0, 2: 3.0, 5: 0.0})
    assert row[:2] == ["x", 2] and row[-1] == "1 / 1 / 0"
    assert paired_seeds.paired_row("x", {0: 1.0}, {1: 1.0}) is None
