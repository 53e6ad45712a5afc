"""`tune` against the no-search defaults, paired by seed, over every seed recorded: per data set
the medians and means, and per contender the recipe's difference on each seed with a 95%
bootstrap interval of its mean. No training: it reads `contenders.py`'s results files (the
rows of ``--compute equal-compute`` and the recipe's) and `edge_copies.py`'s (the recipe at a
``--divisor``).

    cd benchmarks && python paired_seeds.py --contenders contenders_inrun.jsonl \\
        contenders_inrun_seeds34.jsonl contenders_seeds59.jsonl --divisor-records \\
        edge_divisor.jsonl --divisor 6

A recipe row of a `contenders.py` file counts only for the seeds that `--divisor-records` do
not hold at `--divisor` (the records of the library's default at that time).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict

import numpy as np

from _common import table

RIVALS = ("prodigy", "nadamw", "schedule-free")
NAMES = {"prodigy": "Prodigy + cosine", "nadamw": "NAdamW (AlgoPerf)",
         "schedule-free": "schedule-free AdamW"}  # fmt: skip


def read(contender_files: list[str], divisor_files: list[str], divisor: float | None):
    """{data: {contender: {seed: test accuracy %}}}."""
    runs: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for path in contender_files:
        with open(path) as handle:
            for line in handle:
                r = json.loads(line)
                if r.get("status") != "completed" or "test" not in r:
                    continue
                who = r["contender"]
                if who in RIVALS and r.get("compute") != "equal-compute":
                    continue
                if who == "recipe" or who in RIVALS:
                    runs[r["data"]][who][r["seed"]] = 100 * r["test"]["accuracy"]
    for path in divisor_files:
        with open(path) as handle:
            for line in handle:
                r = json.loads(line)
                if r.get("divisor") == divisor and r.get("plateau", "restore") == "restore":
                    runs[r["data"]]["recipe"][r["seed"]] = 100 * r["test"]["accuracy"]
    return runs


def interval(differences: list[float], draws: int = 10_000) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of the mean difference (seeded: the same table)."""
    values = np.asarray(differences)
    rng = np.random.default_rng(0)
    means = values[rng.integers(0, len(values), (draws, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contenders", nargs="+", required=True, help="contenders.py results")
    parser.add_argument("--divisor-records", nargs="*", default=[], help="edge_copies.py results")
    parser.add_argument("--divisor", type=float, help="the recipe's divisor in those records")
    args = parser.parse_args()
    runs = read(args.contenders, args.divisor_records, args.divisor)
    for data in sorted(runs):
        recipe = runs[data].get("recipe", {})
        rows = []
        for who in RIVALS:
            theirs = runs[data].get(who, {})
            seeds = sorted(set(recipe) & set(theirs))
            if not seeds:
                continue
            ours = [recipe[s] for s in seeds]
            rival = [theirs[s] for s in seeds]
            diff = [a - b for a, b in zip(ours, rival, strict=True)]
            low, high = interval(diff)
            rows.append([
                NAMES[who], len(seeds), f"{statistics.median(ours):.2f}",
                f"{statistics.median(rival):.2f}", f"{statistics.mean(ours):.2f}",
                f"{statistics.mean(rival):.2f}", f"{statistics.mean(diff):+.2f}",
                f"[{low:+.2f}, {high:+.2f}]",
                f"{sum(d > 0 for d in diff)} / {sum(d == 0 for d in diff)} / {sum(d < 0 for d in diff)}",
            ])  # fmt: skip
        print(f"\n#### {data}: `tune` against each contender, paired by seed (test %)\n")
        print(table(["contender", "seeds", "tune median", "its median", "tune mean",
                     "its mean", "mean difference", "95% interval", "tune ahead / level / behind"],
                    rows))  # fmt: skip


if __name__ == "__main__":
    main()
