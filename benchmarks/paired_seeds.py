"""`tune` against the no-search defaults, paired by seed, over every seed recorded: per data set
the medians and means, and per contender the recipe's difference on each seed with a 95%
bootstrap interval of its mean. No training: it reads `contenders.py`'s results files (the
rows of ``--compute equal-compute`` and the recipe's) and `edge_copies.py`'s (the recipe at a
``--divisor``).

    cd benchmarks && python paired_seeds.py --contenders contenders_inrun.jsonl \\
        contenders_inrun_seeds34.jsonl contenders_seeds59.jsonl --divisor-records \\
        edge_divisor.jsonl --divisor 6

A recipe row of a `contenders.py` file counts only for the seeds that `--divisor-records` do
not hold at `--divisor` (the records of the library's default at that time). `--variants`
(`edge_copies.py` records of another optimizer, beta2, momentum or the validation-aware rise)
adds a table per data set: each variant against `tune` at its defaults and against NAdamW
(`--all-rivals`: against Prodigy and schedule-free AdamW too). `--default-records`
(`edge_copies.py` records of `tune` at the defaults of the day they ran, no flag given) replace
the recipe's record of their data set and seed, whatever the files before hold.

    python paired_seeds.py --contenders ... --default-records edge_kind.jsonl

    python paired_seeds.py --contenders contenders_inrun.jsonl contenders_inrun_seeds34.jsonl \
        contenders_seeds59.jsonl contenders_cifar_seeds59a.jsonl contenders_cifar_seeds59b.jsonl \
        --divisor-records edge_divisor.jsonl --divisor 6 --variants edge_variants.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict

import numpy as np

from _common import table

RIVALS = ("prodigy", "nadamw", "schedule-free", "nadamw-average")
NAMES = {"prodigy": "Prodigy + cosine", "nadamw": "NAdamW (AlgoPerf)",
         "schedule-free": "schedule-free AdamW",
         "nadamw-average": "NAdamW + the recipe's weight averaging"}  # fmt: skip


# edge_copies.py's variants: the record's value where it differs from tune's default
VARIANT_DEFAULTS = {"optimizer": "adamw", "beta2": 0.999, "momentum": [0.95, 0.85],
                    "val_rise": False, "descent_beta2": None,
                    "start_lr": 1e-4, "average": None}  # fmt: skip


def variant(record: dict) -> str:
    """The variant an `edge_copies.py` record measured ("" for tune's defaults): its settings
    that differ from tune's, e.g. ``"beta2 0.9955"``."""
    parts = []
    for key, default in VARIANT_DEFAULTS.items():
        value = record.get(key, default)
        if value != default:
            shown = " ".join(map(str, value)) if isinstance(value, list) else value
            name = key.replace("_", "-")
            parts.append(name if value is True else f"{name} {shown}")
    return ", ".join(parts)


def read(
    contender_files: list[str],
    divisor_files: list[str],
    divisor: float | None,
    default_files: list[str] = (),  # type: ignore[assignment]
):
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
                if (r.get("divisor") == divisor and r.get("plateau", "restore") == "restore"
                        and not variant(r)):  # fmt: skip
                    runs[r["data"]]["recipe"][r["seed"]] = 100 * r["test"]["accuracy"]
    for path in default_files:  # tune at its defaults of the day: every seed it holds
        with open(path) as handle:
            for line in handle:
                r = json.loads(line)
                runs[r["data"]]["recipe"][r["seed"]] = 100 * r["test"]["accuracy"]
    return runs


def read_variants(paths: list[str]) -> dict[str, dict[str, dict[int, float]]]:
    """{data: {variant: {seed: test accuracy %}}} of `edge_copies.py` records."""
    runs: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for path in paths:
        with open(path) as handle:
            for line in handle:
                r = json.loads(line)
                if variant(r):
                    runs[r["data"]][variant(r)][r["seed"]] = 100 * r["test"]["accuracy"]
    return runs


def paired_row(name: str, ours_by_seed: dict[int, float], theirs_by_seed: dict[int, float]):
    """One table row: medians, means, the mean difference, its interval, the counts."""
    seeds = sorted(set(ours_by_seed) & set(theirs_by_seed))
    if not seeds:
        return None
    ours = [ours_by_seed[s] for s in seeds]
    theirs = [theirs_by_seed[s] for s in seeds]
    diff = [a - b for a, b in zip(ours, theirs, strict=True)]
    low, high = interval(diff)
    return [
        name, len(seeds), f"{statistics.median(ours):.2f}", f"{statistics.median(theirs):.2f}",
        f"{statistics.mean(ours):.2f}", f"{statistics.mean(theirs):.2f}",
        f"{statistics.mean(diff):+.2f}", f"[{low:+.2f}, {high:+.2f}]",
        f"{sum(d > 0 for d in diff)} / {sum(d == 0 for d in diff)} / {sum(d < 0 for d in diff)}",
    ]  # fmt: skip


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
    parser.add_argument("--variants", nargs="*", default=[], help="edge_copies.py variants")
    parser.add_argument(
        "--default-records",
        nargs="*",
        default=[],
        help="edge_copies.py records of tune at its defaults of the day (they replace the recipe's)",
    )
    parser.add_argument(
        "--all-rivals", action="store_true", help="pair the variants with every rival, not NAdamW alone"
    )
    args = parser.parse_args()
    runs = read(args.contenders, args.divisor_records, args.divisor, args.default_records)
    for data in sorted(runs):
        recipe = runs[data].get("recipe", {})
        rows = []
        for who in RIVALS:
            row = paired_row(NAMES[who], recipe, runs[data].get(who, {}))
            if row:
                rows.append(row)
        print(f"\n#### {data}: `tune` against each contender, paired by seed (test %)\n")
        print(table(["contender", "seeds", "tune median", "its median", "tune mean",
                     "its mean", "mean difference", "95% interval", "tune ahead / level / behind"],
                    rows))  # fmt: skip
    variants = read_variants(args.variants)
    header = [
        "variant",
        "against",
        "seeds",
        "variant median",
        "its median",
        "variant mean",
        "its mean",
        "mean difference",
        "95% interval",
        "variant ahead / level / behind",
    ]
    for data in sorted(variants):
        rows = []
        for name, results in sorted(variants[data].items()):
            rivals = RIVALS if args.all_rivals else ("nadamw",)
            pairs = [("tune", runs[data].get("recipe", {}))]
            pairs += [(NAMES[who], runs[data].get(who, {})) for who in rivals]
            for against, theirs in pairs:
                row = paired_row(name, results, theirs)
                if row:
                    rows.append([row[0], against, *row[1:]])
        rivals_named = "every rival" if args.all_rivals else "NAdamW"
        print(f"\n#### {data}: the variants against `tune` at its defaults and {rivals_named} (test %)\n")
        print(table(header, rows))


if __name__ == "__main__":
    main()
