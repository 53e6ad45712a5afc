"""The LR range test: its cost, and how well each rule's suggestion trains.

Part 1 (cost): wall time of `lr_find` against a plain training loop of the same number of steps
on the same model and batches, alternating the two, median over --repeats; and the peak memory
(max RSS) of each, measured in a fresh child process.

Part 2 (quality): on MNIST with `mnist-cnn`, for SGD (momentum 0.9) and Adam at batch 32 and
128: one range test, then every rule's suggestion — ours (minimum/10, the default;
valley; steepest) and, computed on the same recorded curve, pytorch-lr-finder's steepest rule and
fastai's valley rule exactly as those libraries compute them — used as max_lr of a 1cycle run
(torch OneCycleLR's schedule) of --epochs epochs from the same initial weights. Test accuracy.

    SUPERCONVERGE_DATA=../shared/data python benchmarks/lr_finder.py --seeds 2
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

import superconverge as sc
from _common import machine, medians_alternating, table
from superconverge.data import ArrayLoader, load
from superconverge.finder.analysis import suggest_valley
from superconverge.finder.runner import TrainingSnapshot
from superconverge.models import build

LOSS = torch.nn.functional.cross_entropy


def torch_lr_finder_steepest(lrs: list[float], smoothed: list[float]) -> float | None:
    """pytorch-lr-finder's suggestion: np.gradient of the (smoothed) loss history by index,
    skipping the first 10 and last 5 points, argmin (LRFinder.plot(suggest_lr=True))."""
    y = np.array(smoothed[10:-5])
    if len(y) < 3 or not np.all(np.isfinite(y)):
        y = y[np.isfinite(y)]
        if len(y) < 3:
            return None
    return float(lrs[10:-5][int(np.gradient(y).argmin())])


def fastai_valley(lrs: list[float], smoothed: list[float], num_it: int) -> float | None:
    """fastai's lr_find: valley on losses[num_it // 10 : -5] (its recorder holds smoothed loss)."""
    x, y = lrs[num_it // 10 : -5], smoothed[num_it // 10 : -5]
    finite = [i for i, v in enumerate(y) if not math.isfinite(v)]
    if finite:
        x, y = x[: finite[0]], y[: finite[0]]
    # our suggest_valley skips the first 10% itself; pad so it sees exactly fastai's slice
    pad = math.ceil(len(x) / 9) + 1
    return suggest_valley([x[0]] * pad + x, [y[0]] * pad + y)


def make(optimizer_name: str, seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = build("mnist-cnn")
    if optimizer_name == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(), lr=0.01, momentum=0.9
        )
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return model, optimizer


def train_one_cycle(model, optimizer, loader: ArrayLoader, epochs: int, max_lr: float) -> bool:
    plan = sc.one_cycle(epochs * len(loader), max_lr)
    scheduler = sc.HyperparamScheduler(optimizer, plan)
    model.train()
    for _ in range(epochs):
        for inputs, targets in loader:
            loss = LOSS(model(inputs), targets)
            if not torch.isfinite(loss):
                return False
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    return True


@torch.no_grad()
def accuracy(model: torch.nn.Module, data) -> float:
    model.eval()
    correct = sum(
        int((model(x).argmax(1) == y).sum()) for x, y in ArrayLoader(data, 1000, shuffle=False)
    )
    return correct / len(data)


def quality(args: argparse.Namespace) -> None:
    splits = load("mnist", val_fraction=0.0)
    rows, raw = [], []
    for optimizer_name in ("sgd", "adam"):
        for batch in (32, 128):
            per_rule: dict[str, list[tuple[float | None, float]]] = {}
            for seed in range(args.seeds):
                model, optimizer = make(optimizer_name, seed)
                loader = ArrayLoader(splits.train, batch, seed=seed)
                result = sc.lr_find(model, LOSS, loader, optimizer=optimizer)
                lrs, smoothed = list(result.lrs), list(result.smoothed_losses)
                candidates = {
                    "ours: minimum/10 (default)": result.max_lr,
                    "ours: valley": result.suggestions["valley"],
                    "ours: steepest": result.suggestions["steepest"],
                    "pytorch-lr-finder steepest": torch_lr_finder_steepest(lrs, smoothed),
                    "fastai valley": fastai_valley(lrs, smoothed, 100),
                }
                for rule, lr in candidates.items():
                    acc = math.nan
                    if lr is not None:
                        run_model, run_optimizer = make(optimizer_name, seed)
                        ok = train_one_cycle(
                            run_model, run_optimizer, ArrayLoader(splits.train, batch, seed=seed),
                            args.epochs, lr,
                        )  # fmt: skip
                        acc = accuracy(run_model, splits.test) if ok else 0.0
                    per_rule.setdefault(rule, []).append((lr, acc))
                    raw.append({"optimizer": optimizer_name, "batch": batch, "seed": seed,
                                "rule": rule, "max_lr": lr, "test_accuracy": acc})  # fmt: skip
                    print(optimizer_name, batch, seed, rule, lr, acc, flush=True)
            for rule, values in per_rule.items():
                lrs_found = [v[0] for v in values if v[0] is not None]
                accs = [v[1] for v in values]
                lr_text = ", ".join(f"{v:.3g}" for v in lrs_found) or "none"
                rows.append([optimizer_name, batch, rule, lr_text,
                             f"{statistics.median(accs):.4f}", f"{min(accs):.4f}"])  # fmt: skip
    print()
    print(f"MNIST, mnist-cnn, 1cycle, {args.epochs} epoch(s), test accuracy, {args.seeds} seed(s)")
    print(
        table(["optimizer", "batch", "rule", "max_lr (per seed)", "median acc", "worst acc"], rows)
    )
    Path(args.json).write_text(json.dumps(raw, indent=1))


def cost_child(kind: str, steps: int) -> None:
    splits = load("mnist", val_fraction=0.0)
    model, optimizer = make("sgd", 0)
    loader = ArrayLoader(splits.train, 128, seed=0)
    if kind == "finder":
        sc.lr_find(model, LOSS, loader, optimizer=optimizer, num_steps=steps, end_lr=1e-2)
    elif kind == "loop":
        plain_loop(model, optimizer, loader, steps)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def finder_run(model, optimizer, loader, steps: int) -> None:
    # end_lr low enough that no run stops early: both sides do exactly `steps` steps
    sc.lr_find(model, LOSS, loader, optimizer=optimizer, num_steps=steps, end_lr=1e-2)


def plain_loop(model, optimizer, loader, steps: int) -> None:
    """A hand-written loop: forward, loss, backward, step, and the loss read (as logging does)."""
    model.train()
    batches = iter(loader)
    for _ in range(steps):
        try:
            inputs, targets = next(batches)
        except StopIteration:
            batches = iter(loader)
            inputs, targets = next(batches)
        loss = LOSS(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()


def cost(args: argparse.Namespace) -> None:
    splits = load("mnist", val_fraction=0.0)
    steps = args.steps
    rows = []
    for batch in (32, 128):
        loader = ArrayLoader(splits.train, batch, seed=0)
        model, optimizer = make("sgd", 0)

        runs = {
            "loop": partial(plain_loop, model, optimizer, loader, steps),
            "lr_find": partial(finder_run, model, optimizer, loader, steps),
        }
        seconds = medians_alternating(runs, args.repeats)
        rows.append([batch, steps, f"{seconds['loop']:.3f}", f"{seconds['lr_find']:.3f}",
                     f"{seconds['lr_find'] / seconds['loop']:.3f}"])  # fmt: skip
        print(rows[-1], flush=True)
    model, optimizer = make("sgd", 0)
    plain_loop(model, optimizer, ArrayLoader(splits.train, 128, seed=0), 1)  # momentum buffers
    snapshot = TrainingSnapshot(model, optimizer)
    snapshot_bytes = sum(v.numel() * v.element_size() for _, v, _, _ in snapshot.params)
    snapshot_bytes += sum(v.numel() * v.element_size() for *_, v in snapshot.buffers)
    snapshot_bytes += sum(
        t.numel() * t.element_size()
        for state in snapshot.optimizer_state["state"].values()
        for t in state.values()
        if isinstance(t, torch.Tensor)
    )
    memory = {}
    for kind in ("none", "loop", "finder"):
        out = subprocess.run([sys.executable, __file__, "--child", kind, "--steps", str(steps)],
                             capture_output=True, text=True, check=True)  # fmt: skip
        memory[kind] = int(out.stdout.split()[-1]) / 1024
    print()
    print(f"wall time (s) of {steps} steps, MNIST mnist-cnn, SGD, median of {args.repeats} runs")
    print(table(["batch", "steps", "plain loop", "lr_find", "ratio"], rows))
    print()
    print(
        "peak RSS (MiB) of a fresh process, batch 128: "
        f"data+model only {memory['none']:.0f}, plain loop {memory['loop']:.0f}, "
        f"lr_find {memory['finder']:.0f} (difference {memory['finder'] - memory['loop']:+.0f}); "
        f"the CPU snapshot itself: {snapshot_bytes / 1024:.0f} KiB (weights, buffers, momentum)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("cost", "quality", "both"), default="both")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--json", default="lr_finder_results.json")
    parser.add_argument("--child", choices=("none", "loop", "finder"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        cost_child(args.child, args.steps)
        return
    print(machine())
    start = time.time()
    if args.part in ("cost", "both"):
        cost(args)
    if args.part in ("quality", "both"):
        quality(args)
    print(f"total {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
