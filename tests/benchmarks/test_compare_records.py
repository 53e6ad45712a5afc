"""benchmarks/compare_records.py: which records pair up, and what each column measures."""

import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import compare_records  # noqa: E402


def _record(data, seed, test, val, kept="last", loss=0.5, **fields):
    outcome = {"kept": kept, "val_loss_last": loss, "val_loss_average": loss}
    return {"data": data, "seed": seed, "test": {"accuracy": test}, "val": {"accuracy": val},
            "average_outcome": outcome, **fields}  # fmt: skip


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_records_pair_by_data_and_seed_and_the_filter_keeps_the_old_default(tmp_path):
    new = _write(tmp_path / "new.jsonl", [
        _record("mnist", 0, 0.990, 0.980, loss=0.04),
        _record("mnist", 1, 0.985, 0.980, kept="average", loss=0.03),
        _record("mnist", 7, 0.999, 0.999),  # no old record of seed 7: left out
    ])  # fmt: skip
    old = _write(tmp_path / "old.jsonl", [
        _record("mnist", 0, 0.980, 0.970, loss=0.05, divisor=6.0),
        _record("mnist", 1, 0.985, 0.990, loss=0.06, divisor=6.0),
        _record("mnist", 1, 0.100, 0.100, loss=9.0, divisor=10.0),  # another variant: filtered out
    ])  # fmt: skip
    pairs = compare_records.read([old], compare_records.parse_where(["divisor=6"]))
    assert sorted(pairs) == [("mnist", 0), ("mnist", 1)] and pairs[("mnist", 1)]["test"]["accuracy"] == 0.985
    (row,) = compare_records.rows(compare_records.read([new], {}), pairs)
    assert row[:2] == ["mnist", "2"]
    assert row[6] == "+0.50" and row[7] == "1 / 1 / 0"  # test: +1.0 and 0.0 points
    assert row[8] == "+0.00"  # validation: +1.0 and -1.0 points
    # the kept weights' validation loss: 0.04 vs 0.05 (-20%), the mean's 0.03 vs 0.06 (-50%)
    assert row[9] == "-35.0% (2 of 2 lower)"
