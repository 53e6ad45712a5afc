"""Shared helpers of the benchmark scripts: machine facts, timing, markdown tables."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence


def machine() -> str:
    import numpy
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{datetime.date.today()}, {cpu}, {os.cpu_count()} cores, {gpu}; Python "
        f"{platform.python_version()}, torch {torch.__version__}, numpy {numpy.__version__}, "
        f"torch threads {torch.get_num_threads()}"
    )


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def medians_alternating(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Run each callable `repeats` times, alternating between them, and return median seconds."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(timed(run))
    return {name: statistics.median(values) for name, values in times.items()}


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def keep(record: dict, records: list[dict], path: str | None) -> None:
    """A run's record: kept for the table, printed as a JSON line, and appended to `path`."""
    records.append(record)
    print(json.dumps(record), flush=True)
    if path:
        with open(path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
