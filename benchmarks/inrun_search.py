"""An LR search that costs (almost) nothing: the final run's warm-up is the range test.

The prototype of `superconverge.training.edge` (`fit_one_cycle(max_lr="search")`, `tune`'s
default LR search since 2026-12-03), kept for the variants docs/benchmarks.md records ("The LR
search inside the final run"). Its defaults are the library's, except that it copies the
weights every `--every` steps before the step (the library: every tenth of a decade of LR,
after the step, the last 12 kept) and runs one optimizer at a fixed batch.

Issue 16: on the full CIFAR-10 the recipe's picks would beat every no-search default if its
search cost under about 0.17 of a run (`recipe_longer.py`), and no search by short runs fits in
that. This prototype spends the search inside the final run. One run of exactly N training
samples (the same counting, data, model and initial weights as `contenders.py`):

1. **Ramp**: the LR grows exponentially from `--start-lr`, by a factor per step that would take
   it to `--end-lr` over `--ramp-fraction` of the run's steps (a slow range test that trains).
   Weights and optimizer state are copied every `--every` steps.
2. **Edge**: the bias-corrected EMA of the training loss (range tests' smoothing, beta 0.98) is
   watched; when it rises `--rise` times above its lowest value, makes no new low for
   `--patience` decades of LR, or is not finite, the ramp has passed the edge of stability.
   max_lr = the LR at the lowest smoothed loss / `--divisor`.
3. **Back**: the latest copy taken at an LR <= max_lr is restored (its optimizer state too).
4. **Descent**: the steps left (N's steps less every step taken, the lost ones included) follow
   Smith's descent (`--descent smith`: linearly to max_lr / 10 at 86.3% of the run, then to a
   hundredth of that) or a cosine to max_lr / 1e4 (`--descent cosine`); beta1 (momentum) is
   0.9 in the ramp, then rises from 0.85 (smith; cosine: 0.9) to 0.95. A smoothed loss `--anneal-rise` times its lowest
   restores the latest copy and halves the LR (at most `--backoffs` times).

    SUPERCONVERGE_DATA=../../shared/data python inrun_search.py --data cifar10 --train-size 0 \\
        --val-size 5000 --epochs 1 --width 0.125 --seed 0 --samples 89669
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import time

import torch

from _common import machine
from contenders import (
    DEFAULTS,
    LOSS,
    CountingFactory,
    SampleCounter,
    add_size_flags,
    evaluate,
    load_task,
    setup_from,
)
from superconverge.data import ArrayLoader

BETA = 0.98  # the range tests' smoothing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=list(DEFAULTS), default="cifar10")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--samples", type=int, required=True)
    parser.add_argument("--start-lr", type=float, default=1e-4)
    parser.add_argument("--end-lr", type=float, default=10.0)
    parser.add_argument("--ramp-fraction", type=float, default=0.3)
    parser.add_argument("--rise", type=float, default=1.1)
    parser.add_argument(
        "--anneal-rise",
        type=float,
        default=4.0,
        help="after the edge: a smoothed loss this many times its lowest backs off",
    )
    parser.add_argument(
        "--patience",
        type=float,
        default=0.5,
        help="decades of the ramp without a new lowest smoothed loss: the edge",
    )
    parser.add_argument("--descent", choices=("cosine", "smith"), default="smith")
    parser.add_argument("--divisor", type=float, default=4.0)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--backoffs", type=int, default=2)
    add_size_flags(parser)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", default="inrun_search.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine())
    setup = setup_from(args)
    task = load_task(setup)
    counter = SampleCounter()
    model = CountingFactory(task.build_model, args.seed, counter)()
    if args.optimizer == "adamw":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(
            model.parameters(), lr=args.start_lr, betas=(0.9, 0.999),
            weight_decay=args.weight_decay)  # fmt: skip
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=args.start_lr, momentum=0.9,
                                    nesterov=True, weight_decay=args.weight_decay)  # fmt: skip
    total = math.ceil(args.samples / args.batch)
    ramp_steps = max(1, round(args.ramp_fraction * total))
    factor = (args.end_lr / args.start_lr) ** (1 / ramp_steps)
    patience = round(args.patience * ramp_steps / math.log10(args.end_lr / args.start_lr))
    descent_end = round(0.863 * total)  # smith: the cycle ends here, annihilation after

    def set_hyper(lr: float, momentum: float) -> None:
        for group in optimizer.param_groups:
            group["lr"] = lr
            if "betas" in group:
                group["betas"] = (momentum, group["betas"][1])
            else:
                group["momentum"] = momentum

    copies: list[tuple[int, float, dict, dict]] = []  # (step, lr, model, optimizer)
    phase, step, lr = "ramp", 0, args.start_lr
    average, count, lowest, lowest_lr, lowest_step = 0.0, 0, math.inf, args.start_lr, 0
    max_lr, anneal_start, scale, backoffs_left, events = None, 0, 1.0, args.backoffs, []
    start = time.perf_counter()
    loader = ArrayLoader(task.train, args.batch, seed=args.seed, augment=task.augment)
    model.train()
    while step < total:
        for inputs, targets in loader:
            if step >= total:
                break
            if phase == "ramp":
                lr, momentum = args.start_lr * factor**step, 0.9
                if step >= ramp_steps:  # never reached the edge: anneal from the ramp's end
                    max_lr, phase, anneal_start = lr, "anneal", step
                    events.append({"step": step, "event": "ramp ended", "max_lr": lr})
            if phase == "anneal":
                assert max_lr is not None
                if args.descent == "cosine":
                    progress = (step - anneal_start) / max(1, total - anneal_start)
                    cosine = 0.5 * (1 + math.cos(math.pi * progress))
                    lr = scale * (max_lr / 1e4 + (max_lr - max_lr / 1e4) * cosine)
                    momentum = 0.95 - (0.95 - 0.9) * cosine
                elif step < descent_end:
                    progress = (step - anneal_start) / max(1, descent_end - anneal_start)
                    lr = scale * max_lr * (1 - 0.9 * progress)
                    momentum = 0.85 + 0.1 * progress
                else:
                    progress = (step - descent_end) / max(1, total - 1 - descent_end)
                    lr = scale * max_lr / 10 * (1 - 0.99 * progress)
                    momentum = 0.95
            set_hyper(lr, momentum)
            if step % args.every == 0:
                copies.append((step, lr, copy.deepcopy(model.state_dict()),
                               copy.deepcopy(optimizer.state_dict())))  # fmt: skip
                copies = copies[-200:]
            optimizer.zero_grad(set_to_none=True)
            loss = LOSS(model(inputs), targets)
            value = float(loss)
            step += 1
            finite = math.isfinite(value)
            if finite:
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                count += 1
                average = BETA * average + (1 - BETA) * value
                smoothed = average / (1 - BETA**count)
                if count >= 50 and smoothed < lowest:
                    lowest, lowest_lr, lowest_step = smoothed, lr, step
            rise = args.rise if phase == "ramp" else args.anneal_rise
            risen = not finite or (count >= 50 and smoothed > rise * lowest)
            if phase == "ramp" and count >= 50 and step - lowest_step > patience:
                risen = True
            if not risen:
                continue
            if phase == "ramp":
                max_lr = lowest_lr / args.divisor
                target = max_lr
                events.append({"step": step, "event": "edge", "lr": lr, "lowest_lr": lowest_lr,
                               "max_lr": max_lr})  # fmt: skip
                phase = "anneal"
            elif backoffs_left > 0:
                backoffs_left -= 1
                scale /= 2
                target = math.inf
                events.append({"step": step, "event": "back-off", "lr": lr})
            else:
                continue
            # the latest copy at an LR <= target, taken before the rise
            back = [c for c in copies if c[1] <= target] or copies[:1]
            at, _, weights, state = back[-1]
            model.load_state_dict(weights)
            optimizer.load_state_dict(state)
            copies = [c for c in copies if c[0] <= at]
            if events[-1]["event"] == "edge":
                anneal_start = step
            events[-1]["restored_from"] = at
            average, count, lowest, lowest_step = 0.0, 0, math.inf, step
            print(events[-1], flush=True)
    seconds = time.perf_counter() - start
    val, test = evaluate(model, task.val), evaluate(model, task.test)
    record = {"setup": dataclasses.asdict(setup), "seed": args.seed, "args": vars(args),
              "samples": counter.samples, "steps": step, "events": events,
              "val": val, "test": test, "seconds": round(seconds)}  # fmt: skip
    with open(args.results, "a") as file:
        file.write(json.dumps(record) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
