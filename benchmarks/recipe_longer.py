"""What more training would buy the recipe's settings (issue 16: where the recipe loses).

Takes the settings a recipe run chose (optimizer, batch, max_lr, weight decay; from
`contenders.py`'s results) and trains them for `--factor` times the data set's epochs with no
search: if that beats the no-search contenders at the same compute, the recipe loses by what it
spends searching, not by what it picks. Same data, model, initial weights (seed) and sample
counting as `contenders.py`. `--samples N` trains exactly N samples in one 1cycle run (the
recipe's recorded total, e.g. 1.91 epochs): one pass over the training set repeated, plus a
seeded part of it, shuffled together; with it the run has one validation point.

    SUPERCONVERGE_DATA=../../shared/data python recipe_longer.py --data cifar10 \\
        --optimizer sgd --batch 16 --max-lr 0.0334 --weight-decay 1e-4 --factor 2
    SUPERCONVERGE_DATA=../../shared/data python recipe_longer.py --data cifar10 --train-size 0 \\
        --val-size 5000 --epochs 1 --width 0.125 --optimizer adamw --batch 32 \\
        --max-lr 0.00807 --weight-decay 0.1 --samples 89669
"""

from __future__ import annotations

import argparse
import time

import torch

import superconverge as sc
from _common import machine
from contenders import (
    DEFAULTS,
    CountingFactory,
    SampleCounter,
    add_size_flags,
    load_task,
    setup_from,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=list(DEFAULTS), default="cifar10")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--max-lr", type=float, required=True)
    parser.add_argument("--weight-decay", type=float, required=True)
    parser.add_argument("--factor", type=int, default=2, help="epochs x this (default 2)")
    parser.add_argument("--samples", type=int, help="train exactly this many samples (one run)")
    add_size_flags(parser)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine())
    setup = setup_from(args)
    task = load_task(setup)
    train, epochs = task.train, setup.epochs * args.factor
    if args.samples is not None:
        if args.samples < len(train):
            parser.error(f"--samples must be at least one epoch ({len(train)}), got {args.samples}")
        whole, rest = divmod(args.samples, len(train))
        extra = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))
        train = train.subset(torch.cat([torch.arange(len(train))] * whole + [extra[:rest]]))
        epochs = 1
    counter = SampleCounter()
    factory = CountingFactory(task.build_model, args.seed, counter)
    adam = args.optimizer in ("adamw", "nadamw")
    plan = sc.TunePlan(
        epochs=epochs, batch_size=args.batch, max_lr=args.max_lr,
        min_lr=args.max_lr / 10, weight_decay=args.weight_decay,
        momentum=(0.95, 0.85), seed=args.seed, optimizer=args.optimizer,
    )  # fmt: skip
    start = time.perf_counter()
    plan.run(factory, train, task.val, test_data=task.test, augment=task.augment, backoff=2)
    test = plan.results.get("test", {})
    print(f"{setup}")
    print(f"{args.data} seed {args.seed}: {args.optimizer}, batch {args.batch}, max_lr "
          f"{args.max_lr:g}, wd {args.weight_decay:g}, {plan.epochs} epochs{' (beta1 cycled)' if adam else ''}: "
          f"test accuracy {test.get('accuracy')}, val accuracy "
          f"{plan.results.get('final_val_accuracy')}, {counter.samples:,} training samples "
          f"({counter.samples / task.plain_samples:.2f}x one run), "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
