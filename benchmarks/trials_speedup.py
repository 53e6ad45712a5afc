"""Wall-clock speed-up of the recipe's search when its short runs are trials of a shared Optuna
study taken by several processes (issue 19), on the CLI as a user runs it.

Per repeat, in alternating order: (a) one process, torch at its default threads (the cores it may
use); (b) one process at 1 thread; (c) a coordinator (``--study``) and one worker (``--join``),
1 thread each. The search's seconds are the stages before the final run (``plan.json``'s
evidence); the decisions of each run are printed so that a reader sees they are the same. Medians
over the repeats; the ratios are (a) / (c) and (b) / (c).

    cd benchmarks && python trials_speedup.py --data mnist --data-dir ../../shared/data \\
        --model mlp --epochs 3 --budget 2 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, table

SEARCH = ("batch_size", "lr_bounds", "weight_decay", "momentum")
DECISIONS = ("optimizer", "batch_size", "max_lr", "weight_decay", "momentum")


def tune_command(args: argparse.Namespace, out: Path, *extra: str) -> list[str]:
    command = [
        sys.executable, "-m", "superconverge", "tune", "-q", "--data", args.data,
        "--epochs", str(args.epochs), "--budget", str(args.budget), "--out", str(out), *extra,
    ]  # fmt: skip
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    if args.model:
        command += ["--model", args.model]
    return command


def environment(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def search_seconds(out: Path) -> tuple[float, dict]:
    plan = json.loads((out / "plan.json").read_text())
    seconds = sum(step["seconds"] for step in plan["evidence"] if step["step"] in SEARCH)
    return seconds, {name: plan[name] for name in DECISIONS}


def one_process(args: argparse.Namespace, out: Path, threads: int | None) -> tuple[float, dict]:
    subprocess.run(
        tune_command(args, out), env=environment(threads), check=True, stdout=subprocess.DEVNULL
    )
    return search_seconds(out)


def coordinator_and_worker(args: argparse.Namespace, out: Path) -> tuple[float, dict]:
    url = f"sqlite:///{out.parent / (out.name + '.db')}"
    coordinator = subprocess.Popen(tune_command(args, out, "--study", url), env=environment(1))
    worker = subprocess.Popen(
        [sys.executable, "-m", "superconverge", "tune", "-q", "--join", url],
        env=environment(1),
        stdout=subprocess.DEVNULL,
    )
    if coordinator.wait() != 0 or worker.wait() != 0:
        raise RuntimeError("the coordinator or the worker failed")
    return search_seconds(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--budget", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir")
    parser.add_argument("--model")
    args = parser.parse_args()
    print(machine())
    print(f"load average before: {os.getloadavg()}")
    ways = {
        "one process, default threads": lambda out: one_process(args, out, None),
        "one process, 1 thread": lambda out: one_process(args, out, 1),
        "coordinator + 1 worker, 1 thread each": lambda out: coordinator_and_worker(args, out),
    }
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            order = list(ways) if repeat % 2 == 0 else list(reversed(ways))
            for name in order:
                start = time.perf_counter()
                out = Path(folder) / f"{repeat}-{list(ways).index(name)}"
                search, decisions = ways[name](out)
                seconds[name].append(search)
                print(
                    f"repeat {repeat}: {name}: search {search:.1f} s (whole run "
                    f"{time.perf_counter() - start:.1f} s); {decisions}",
                    flush=True,
                )
    print(f"load average after: {os.getloadavg()}")
    shared = statistics.median(seconds["coordinator + 1 worker, 1 thread each"])
    rows = [
        [name, f"{statistics.median(values):.1f}", f"{statistics.median(values) / shared:.2f}"]
        for name, values in seconds.items()
    ]
    print(
        f"\n{args.data}, {args.epochs} epochs, budget {args.budget}, median of {args.repeats}\n"
        + table(["search run by", "search seconds", "x the shared study's"], rows)
    )


if __name__ == "__main__":
    main()
