"""Two sets of `edge_copies.py` records paired by data set and seed: what a change of `tune`'s
defaults did to the test accuracy, the validation accuracy and the validation loss of the weights
the run kept (the decisions' quantity: the recipe decides on the validation loss).

    python compare_records.py --new edge_kind.jsonl --old edge_average.jsonl \\
        edge_average_digits59.jsonl --old-where divisor=6 average=1.0

`--old-where` / `--new-where` keep only records whose fields have those values (numbers compare
as numbers). A (data, seed) found twice in one set takes its last record.
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

from _common import table


def parse_where(pairs: list[str]) -> dict[str, Any]:
    """``["divisor=6", "average=1.0"]`` -> ``{"divisor": 6.0, "average": 1.0}``."""
    where: dict[str, Any] = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        try:
            where[name] = float(text)
        except ValueError:
            where[name] = text
    return where


def read(paths: list[str], where: dict[str, Any]) -> dict[tuple[str, int], dict]:
    """{(data, seed): record} of the records that match `where`."""
    records: dict[tuple[str, int], dict] = {}
    for path in paths:
        with open(path) as handle:
            for line in handle:
                record = json.loads(line)
                if all(record.get(name) == value for name, value in where.items()):
                    records[(record["data"], int(record["seed"]))] = record
    return records


def kept_validation_loss(record: dict) -> float | None:
    """The validation loss of the weights the run kept (the mean's or the last), where the
    record holds it (records of runs with weight averaging)."""
    outcome = record.get("average_outcome")
    if not outcome:
        return None
    key = "val_loss_average" if outcome["kept"] == "average" else "val_loss_last"
    return float(outcome[key])


def rows(new: dict, old: dict) -> list[list[str]]:
    out = []
    for data in sorted({data for data, _ in new}):
        seeds = sorted(seed for d, seed in new if d == data and (d, seed) in old)
        if not seeds:
            continue
        pairs = [(new[(data, s)], old[(data, s)]) for s in seeds]
        test = [(100 * a["test"]["accuracy"], 100 * b["test"]["accuracy"]) for a, b in pairs]
        val = [100 * (a["val"]["accuracy"] - b["val"]["accuracy"]) for a, b in pairs]
        diff = [a - b for a, b in test]
        losses = [(kept_validation_loss(a), kept_validation_loss(b)) for a, b in pairs]
        relative = [(a - b) / b for a, b in losses if a is not None and b is not None]
        out.append([
            data, str(len(seeds)),
            f"{statistics.median(a for a, _ in test):.2f}", f"{statistics.median(b for _, b in test):.2f}",
            f"{statistics.mean(a for a, _ in test):.2f}", f"{statistics.mean(b for _, b in test):.2f}",
            f"{statistics.mean(diff):+.2f}",
            f"{sum(d > 0 for d in diff)} / {sum(d == 0 for d in diff)} / {sum(d < 0 for d in diff)}",
            f"{statistics.mean(val):+.2f}",
            f"{100 * statistics.mean(relative):+.1f}% ({sum(r < 0 for r in relative)} of "
            f"{len(relative)} lower)" if relative else "-",
        ])  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--new", nargs="+", required=True, help="edge_copies.py records")
    parser.add_argument("--old", nargs="+", required=True, help="edge_copies.py records")
    parser.add_argument("--new-where", nargs="*", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--old-where", nargs="*", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    new = read(args.new, parse_where(args.new_where))
    old = read(args.old, parse_where(args.old_where))
    header = ["data", "seeds", "new test median", "old test median", "new test mean",
              "old test mean", "test difference", "new ahead / level / behind",
              "val accuracy difference", "val loss of the kept weights, new vs old"]  # fmt: skip
    print(table(header, rows(new, old)))


if __name__ == "__main__":
    main()
