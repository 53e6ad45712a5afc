"""The in-run search's copies on the full CIFAR-10: `tune` at its defaults but with the copies
of the weights taken every `--copy-decades` of LR (default 0.1; the prototype in
`inrun_search.py` copied every 10 steps, about 0.06 decade there), or (`--plateau keep`) with
no copy restored when the edge is a plateau (the smoothed loss made no new low for the
patience's decades: the descent starts from the edge's weights), or (`--divisor`) with max_lr
the lowest smoothed loss's LR / that divisor instead of / 4, one seed per call, the contenders'
data, model, initial weights and sample counting.

    SUPERCONVERGE_DATA=../../shared/data python edge_copies.py --seed 0 --copy-decades 0.05
    SUPERCONVERGE_DATA=../../shared/data python edge_copies.py --seed 0 --plateau keep
    SUPERCONVERGE_DATA=../../shared/data python edge_copies.py --seed 0 --divisor 10 --data sst2
    SUPERCONVERGE_DATA=../../shared/data python edge_copies.py --data mnist --optimizer nadamw
    SUPERCONVERGE_DATA=../../shared/data python edge_copies.py --data sst2 --beta2 0.9955

`--optimizer` / `--beta2`: the in-run search's optimizer (tune's `optimizer`; AdamW by default)
and its second-moment decay (torch's 0.999 by default; AlgoPerf's NAdamW baseline uses 0.9955).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

import torch

import superconverge.training.edge as edge
from _common import machine
from contenders import DEFAULTS, CountingFactory, SampleCounter, load_task, run_recipe
from superconverge.tuning import RecipeSettings


def optimizer_spec(name: str, beta2: float) -> Any:
    """tune's `optimizer`: the name at torch's defaults, or a callable with this beta2 (the
    scheduler cycles beta1 and sets the LR and the weight decay; beta2 stays as built)."""
    if beta2 == 0.999:
        return name
    if name == "adamw":
        return lambda groups: torch.optim.AdamW(groups, betas=(0.9, beta2))
    return lambda groups: torch.optim.NAdam(groups, betas=(0.9, beta2), decoupled_weight_decay=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--copy-decades", type=float, default=0.1)
    parser.add_argument("--plateau", choices=["restore", "keep"], default="restore")
    parser.add_argument("--divisor", type=float, default=edge.EdgeSettings().divisor)
    parser.add_argument("--min-total-steps", type=int, default=RecipeSettings().min_total_steps,
                        help="the batch rule's least updates of the final run (the recipe's)")
    parser.add_argument("--optimizer", default="adamw", choices=["adamw", "nadamw"])
    parser.add_argument("--beta2", type=float, default=0.999)
    parser.add_argument("--data", default="cifar10", choices=list(DEFAULTS))
    parser.add_argument("--results", default="edge_copies.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine())
    # the defaults every EdgeSettings() gets (what tune's search builds)
    names = [f.name for f in dataclasses.fields(edge.EdgeSettings)]
    defaults = dict(zip(names, edge.EdgeSettings.__init__.__defaults__, strict=True))
    defaults.update(copy_decades=args.copy_decades, divisor=args.divisor)
    edge.EdgeSettings.__init__.__defaults__ = tuple(defaults[name] for name in names)
    if args.plateau == "keep":
        found = edge.EdgeSearch._found  # noqa: SLF001 - a measured variant of the library's rule

        def keep_on_plateau(self, fit, step, lr, why):  # no copy to restore: the edge's weights
            if "made no new low" in why:
                self._copies = []
            found(self, fit, step, lr, why)

        edge.EdgeSearch._found = keep_on_plateau  # type: ignore[method-assign]  # noqa: SLF001
    setup = DEFAULTS[args.data]
    if args.data == "cifar10":
        setup = dataclasses.replace(setup, epochs=1, train_size=0, val_size=5000, width=0.125)
    elif args.data in ("mnist", "sst2"):
        setup = dataclasses.replace(setup, train_size=0, val_size=0)
    task = load_task(setup)
    counter = SampleCounter()
    settings = RecipeSettings(min_total_steps=args.min_total_steps)
    optimizer = optimizer_spec(args.optimizer, args.beta2)
    factory = CountingFactory(task.build_model, args.seed, counter)
    result = run_recipe(task, factory, "recipe", settings, optimizer=optimizer)
    record = {"data": args.data, "seed": args.seed, "copy_decades": args.copy_decades,
              "plateau": args.plateau, "divisor": args.divisor,
              "min_total_steps": args.min_total_steps, "optimizer": args.optimizer,
              "beta2": args.beta2, "setting": result["setting"],
              "test": result["test"], "val": result["val"], "samples": counter.samples,
              "why": result.get("recipe_why", {}).get("final_run", "")}  # fmt: skip
    with open(args.results, "a") as handle:
        handle.write(json.dumps(record) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
