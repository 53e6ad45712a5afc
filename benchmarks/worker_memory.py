"""Where a DataLoader worker's memory goes: private pages against pages shared with the main
process after fork, with and without ``gc.freeze()`` before the fork (issue 14).

The CIFAR-10 PNG folders of ``_png_folder.py`` read by its ``PngFolder`` with 2 persistent
workers, 600 steps of a linear model at batch 32; the script prints each process's RSS, PSS,
shared and private memory from ``/proc/PID/smaps_rollup`` (Linux), then what importing torch
and building one optimizer cost a fresh process.

    SUPERCONVERGE_DATA=../../shared/data python _png_folder.py /tmp/cifar-png   # once
    python worker_memory.py --png /tmp/cifar-png [--freeze]
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

FIELDS = ("Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty")


def rollup(pid: int) -> dict[str, float]:
    """MiB per field of ``/proc/PID/smaps_rollup``."""
    lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    return {line.split(":")[0]: int(line.split()[1]) / 1024 for line in lines}


def children() -> list[int]:
    pids: list[int] = []
    for task in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        pids += [int(c) for c in task.read_text().split()]
    return pids


def loader_run(png: str, freeze: bool) -> None:
    import torch

    from _png_folder import PngFolder

    torch.set_num_threads(1)
    data = PngFolder(f"{png}/train", augment=True)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = torch.utils.data.DataLoader(
        data, batch_size=32, shuffle=True, num_workers=2, persistent_workers=True
    )
    peak = {"workers": 0.0, "tree": 0.0}

    def watch() -> None:
        while True:
            workers = sum(rollup(pid)["Pss"] for pid in children())
            peak["workers"] = max(peak["workers"], workers)
            peak["tree"] = max(peak["tree"], workers + rollup(os.getpid())["Pss"])
            time.sleep(0.3)

    threading.Thread(target=watch, daemon=True).start()
    if freeze:
        gc.freeze()  # the heap so far is not traversed by the workers' collections
    batches = iter(loader)
    if freeze:
        gc.unfreeze()
    for step, (inputs, targets) in enumerate(batches):
        loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 600:
            break
    time.sleep(1)
    print(f"gc.freeze before fork: {freeze}; peak PSS of the 2 workers {peak['workers']:.0f} MiB, "
          f"of the tree {peak['tree']:.0f} MiB")  # fmt: skip
    print("| process | " + " | ".join(FIELDS) + " |")
    print("|---" * (len(FIELDS) + 1) + "|")
    for pid, role in [*((p, "worker") for p in children()), (os.getpid(), "main")]:
        values = rollup(pid)
        print(f"| {role} | " + " | ".join(f"{values[f]:.0f}" for f in FIELDS) + " |")


FLOOR = """
import sys
from pathlib import Path
def rss():
    return int(next(l for l in Path('/proc/self/smaps_rollup').read_text().splitlines()
                    if l.startswith('Rss:')).split()[1]) / 1024
start = rss()
import torch
after_import = rss()
model = torch.nn.Linear(10, 2)
torch.optim.SGD(model.parameters(), lr=0.1)
print(f"| fresh Python | {start:.0f} |\\n| after import torch | {after_import:.0f} |\\n"
      f"| after one torch.optim.SGD(...) | {rss():.0f} (torch._dynamo loaded: "
      f"{'torch._dynamo' in sys.modules}) |")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--png", default="/tmp/cifar-png")
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() before the fork")
    args = parser.parse_args()
    loader_run(args.png, args.freeze)
    print("\n| a process | RSS MiB |\n|---|---|")
    print(subprocess.run([sys.executable, "-c", FLOOR], capture_output=True, text=True,
                         check=True).stdout, end="")  # fmt: skip


if __name__ == "__main__":
    main()
