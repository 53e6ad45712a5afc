"""The recipe's final run: 1cycle against warmup-stable-decay and linear decay to zero.

Issue 16, item 3: where a warmup-stable-decay (WSD) or a linear-decay-to-zero (D2Z) schedule
would win over the recipe's 1cycle, find out and say so. Per data set and seed:

- the recipe: ``superconverge.tune`` at its defaults, as in ``contenders.py`` (same data, model,
  initial weights); its final run is the 1cycle row (cyclical momentum, the recipe's LR bounds);
- with the recipe's choices (optimizer, batch size, weight decay; its max_lr as the peak LR),
  the same number of epochs from the same initial weights under:
  - WSD (Hu et al. 2024, arXiv:2404.06395; Hägele et al. 2024, arXiv:2405.18392): linear warmup
    over 5% of the steps, the peak held, a linear cool-down to 0 over the last 20%;
  - D2Z (Bergsma et al. 2025, arXiv:2502.15938): linear warmup over 5%, then linearly to 0;
  both with constant momentum 0.9 (SGD's momentum, AdamW's beta1), as those papers train.

All three rows of a seed process the same training samples (one final run each); the recipe's
search is not counted here (see ``contenders.py`` for equal compute). The peak LR is the one
the recipe chose for 1cycle: a schedule that wants another peak is not given it (said in the
docs). The recipe's own choices are checked against ``contenders_budget.jsonl`` where that file
holds the same setup and seed: a reproducibility check of issue 16's item 0 across days and load.

    cd benchmarks
    SUPERCONVERGE_DATA=../../shared/data python final_schedules.py --data mnist sst2 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

import superconverge as sc
from _common import machine, table
from contenders import DEFAULTS, LOSS, CountingFactory, SampleCounter, Setup, Task, load_task
from superconverge.schedules import Plan
from superconverge.schedules.primitives import Chain, Constant, Ramp
from superconverge.training import Trainer

SCHEDULES = ("1cycle", "wsd", "d2z")
LABELS = {
    "1cycle": "1cycle (the recipe's final run)",
    "wsd": "WSD: warmup 5%, hold, linear cool-down 20%",
    "d2z": "D2Z: warmup 5%, linear to 0",
}
WARMUP, COOLDOWN, MOMENTUM = 0.05, 0.20, 0.9


def schedule_plan(kind: str, peak: float, total_steps: int) -> Plan:
    """WSD or D2Z over `total_steps`, peaking at `peak`, with constant momentum."""
    warmup = max(1, round(WARMUP * total_steps))
    if kind == "wsd":
        cooldown = max(1, round(COOLDOWN * total_steps))
        hold = max(1, total_steps - warmup - cooldown)
        phases: tuple[Any, ...] = (
            Ramp(0.0, peak, warmup),
            Constant(peak, steps=hold),
            Ramp(peak, 0.0, cooldown),
        )
    elif kind == "d2z":
        phases = (Ramp(0.0, peak, warmup), Ramp(peak, 0.0, max(1, total_steps - warmup)))
    else:
        raise ValueError(f"schedule must be 'wsd' or 'd2z', got {kind!r}")
    return Plan(Chain(phases), Constant(MOMENTUM), total_steps, peak, kind)


def run_seed(task: Task, seed: int) -> list[dict[str, Any]]:
    """The recipe (its final run: the 1cycle row), then WSD and D2Z at its choices."""
    start = time.perf_counter()
    counter = SampleCounter()
    factory = CountingFactory(task.build_model, seed, counter)  # contenders.py's: same weights
    plan = sc.tune(factory, task.train, task.val, epochs=task.setup.epochs,
                   test_data=task.test, augment=task.augment, seed=seed)  # fmt: skip
    setting = (f"{plan.optimizer}, batch {plan.batch_size}, max_lr {plan.max_lr:.3g}, "
               f"wd {plan.weight_decay:g}")  # fmt: skip
    history = plan.history
    assert history is not None
    rows = [{
        "schedule": "1cycle",
        "setting": setting,
        "test": plan.results.get("test", {}),
        "val": plan.results.get("final_val_metrics", {}),
        "steps": history.steps,
        "backoffs": [n for n in history.notes if "restored the weights" in n],
        "seconds": plan.results.get("train_seconds"),
        "recipe_seconds": time.perf_counter() - start,
        "recipe_compute": plan.compute,
        "recipe_samples": counter.samples,
    }]  # fmt: skip
    for kind in ("wsd", "d2z"):
        begin = time.perf_counter()
        counter.samples = 0
        trainer = Trainer(factory(), LOSS, task.train, task.val,
                          batch_size=plan.batch_size, weight_decay=plan.weight_decay, seed=seed,
                          augment=task.augment, optimizer=plan.optimizer)  # fmt: skip
        total = task.setup.epochs * trainer.steps_per_epoch
        result = trainer.fit(task.setup.epochs, schedule_plan(kind, plan.max_lr, total))
        last = result.epochs[-1] if result.epochs else {}
        test = trainer.evaluate(task.test) if result.status == "completed" else {}
        trainer.close()
        rows.append({
            "schedule": kind,
            "setting": setting,
            "test": test,
            "val": {k[4:]: v for k, v in last.items() if k.startswith("val_")},
            "steps": result.steps,
            "status": result.status,
            "samples": counter.samples,
            "seconds": time.perf_counter() - begin,
        })  # fmt: skip
    return rows


def recorded_setting(setup: Setup, seed: int, path: Path) -> str | None:
    """The recipe's choices for this setup and seed in contenders.py's results, if any."""
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if (record["setup"] == setup.key() and record["seed"] == seed
                and record["contender"] == "recipe"):  # fmt: skip
            return str(record["setting"])
    return None


def report(records: list[dict[str, Any]]) -> None:
    header = ["data", "schedule", "median test %", "worst test %", "median val %",
              "median test loss", "seeds", "steps"]  # fmt: skip
    rows = []
    for data in dict.fromkeys(r["data"] for r in records):
        for kind in SCHEDULES:
            mine = [r for r in records if r["data"] == data and r["schedule"] == kind]
            done = sorted((r for r in mine if r["test"]), key=lambda r: r["seed"])
            if not done:
                continue
            test = [r["test"]["accuracy"] for r in done]
            rows.append([data, LABELS[kind], f"{100 * statistics.median(test):.2f}",
                         f"{100 * min(test):.2f}",
                         f"{100 * statistics.median(r['val']['accuracy'] for r in done):.2f}",
                         f"{statistics.median(r['test']['loss'] for r in done):.4f}",
                         ",".join(str(r["seed"]) for r in done) + (
                             f" ({len(mine) - len(done)} failed)" if len(done) < len(mine) else ""),
                         f"{done[0]['steps']:,}"])  # fmt: skip
    print(table(header, rows))
    print("\nper seed (test %: 1cycle / wsd / d2z; the recipe's choices):")
    for data in dict.fromkeys(r["data"] for r in records):
        for seed in sorted({r["seed"] for r in records if r["data"] == data}):
            mine = {r["schedule"]: r for r in records if r["data"] == data and r["seed"] == seed}
            accs = " / ".join(
                f"{100 * mine[k]['test']['accuracy']:.2f}" if k in mine and mine[k]["test"] else "-"
                for k in SCHEDULES
            )
            first = next(iter(mine.values()))
            check = first.get("recorded_setting")
            same = "" if check is None else (
                "; same choices as contenders_budget.jsonl" if check == first["setting"]
                else f"; contenders_budget.jsonl had: {check}")  # fmt: skip
            print(f"- {data} seed {seed}: {accs} ({first['setting']}{same})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", default=["mnist", "sst2"], choices=list(DEFAULTS))
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--results", default="final_schedules.jsonl")
    parser.add_argument("--report", action="store_true", help="only print the tables")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    torch.set_num_threads(1)
    logging.getLogger("superconverge").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="superconverge")
    path = Path(args.results)
    records = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    if not args.report:
        print(machine())
        for name in args.data:
            setup = DEFAULTS[name]
            try:
                task = load_task(setup)
            except FileNotFoundError as error:  # the data are not where SUPERCONVERGE_DATA says
                sys.exit(f"final_schedules.py: {error}")
            for seed in range(args.seeds):
                if any(r["data"] == name and r["seed"] == seed for r in records):
                    continue  # done in an earlier run of this command
                rows = run_seed(task, seed)
                recorded = recorded_setting(setup, seed, Path("contenders_budget.jsonl"))
                with path.open("a") as handle:
                    for row in rows:
                        row.update(data=name, seed=seed, setup=setup.key(),
                                   recorded_setting=recorded)  # fmt: skip
                        handle.write(json.dumps(row, default=str) + "\n")
                records += rows
                print(name, seed, [(r["schedule"], r["test"].get("accuracy")) for r in rows],
                      flush=True)  # fmt: skip
    report(records)


if __name__ == "__main__":
    main()
