"""Does the in-run search's final run gain from cooling down early once it overfits? (SST-2)

The recipe's default final run on SST-2 (bag-of-words, AdamW at weight decay 0.1, batch 128,
`fit_one_cycle(6, "search")`: the 3 epochs asked plus the budget's 3) overfits: the validation
loss turns up after epoch 3 while the training loss falls. This probe watches for that (after
the edge: an epoch's validation loss more than `--tol` above the best so far while the training
loss fell, with at least two epochs left) and then either
- `--act cooldown`: anneals from the current LR to max_lr / 1000 over one more epoch and stops;
- `--act decay --wd-mult M`: multiplies the weight decay by M for the rest of the run;
- `--act none`: only reports where it would have acted.
Prints each epoch's losses (and test accuracy with `--test-every`) and one JSON line per run.

    cd benchmarks && SUPERCONVERGE_DATA=../../shared/data python overfit_cooldown.py sst2 0 6 --act cooldown
"""

from __future__ import annotations

import argparse
import json
import math

import torch

import superconverge as sc
from contenders import DEFAULTS, evaluate, load_task
from superconverge.schedules.plans import Plan
from superconverge.schedules.primitives import Chain, Constant, Ramp
from superconverge.training.callbacks import Callback


class OverfitProbe(Callback):
    def __init__(self, args: argparse.Namespace, test) -> None:
        self.args, self.test = args, test
        self.best, self.previous_train = math.inf, math.inf
        self.fired: int | None = None

    def after_epoch(self, fit) -> None:
        record, args = fit.record, self.args
        row = {k: round(v, 4) for k, v in record.items()
               if k in ("epoch", "train_loss", "val_loss", "val_accuracy", "lr")}  # fmt: skip
        if args.test_every:
            row["test"] = round(evaluate(fit.trainer.model, self.test)["accuracy"], 4)
        found = fit.edge is not None and fit.edge.edge is not None
        fires = (found and self.fired is None and fit.epoch + 1 < fit.epochs - 1
                 and record["val_loss"] > self.best * (1 + args.tol)
                 and record["train_loss"] < self.previous_train)  # fmt: skip
        row["fires"] = fires
        print(json.dumps(row), flush=True)
        if fires:
            self.fired = fit.epoch + 1
            if args.act == "decay":
                for group in fit.trainer.optimizer.param_groups:
                    group["weight_decay"] *= args.wd_mult
            elif args.act == "cooldown":
                step, steps = fit.scheduler.step_count, fit.trainer.steps_per_epoch
                lr = fit.trainer.optimizer.param_groups[0]["lr"]
                old = fit.scheduler.plan
                plan = Chain((Constant(lr, step), Ramp(lr, fit.edge.edge["max_lr"] / 1000, steps)))
                momentum = None if old.momentum is None else Constant(0.95)
                fit.scheduler.plan = Plan(plan, momentum, step + steps, old.max_lr, "cooldown")
                fit.scheduler.load_state_dict(fit.scheduler.state_dict())
                fit.epochs = fit.epoch + 2
        self.best = min(self.best, record["val_loss"])
        self.previous_train = record["train_loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", choices=list(DEFAULTS))
    parser.add_argument("seed", type=int)
    parser.add_argument("epochs", type=int)
    parser.add_argument("--act", choices=["none", "cooldown", "decay"], default="none")
    parser.add_argument("--wd-mult", type=float, default=10.0)
    parser.add_argument("--tol", type=float, default=0.02)
    parser.add_argument("--test-every", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = load_task(DEFAULTS[args.data])
    torch.manual_seed(args.seed)
    probe = OverfitProbe(args, task.test)
    trainer = sc.Trainer(task.build_model(), torch.nn.functional.cross_entropy, task.train,
                         task.val, optimizer="adamw", weight_decay=0.1, batch_size=128,
                         seed=args.seed, augment=task.augment, callbacks=[probe],
                         progress=False)  # fmt: skip
    history = trainer.fit_one_cycle(args.epochs, "search")
    test = evaluate(trainer.model, task.test)["accuracy"]
    print(json.dumps({"data": args.data, "seed": args.seed, "act": args.act,
                      "wd_mult": args.wd_mult if args.act == "decay" else None,
                      "fired_after_epoch": probe.fired, "epochs_run": len(history.epochs),
                      "test": round(100 * test, 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
