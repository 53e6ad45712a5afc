"""The in-run search's copies on the full CIFAR-10: `tune` at its defaults but with the copies
of the weights taken every `--copy-decades` of LR (default 0.1; the prototype in
`inrun_search.py` copied every 10 steps, about 0.06 decade there), or (`--plateau keep`) with
no copy restored when the edge is a plateau (the smoothed loss made no new low for the
patience's decades: the descent starts from the edge's weights), or (`--divisor`,
`--plateau-factor`) with max_lr the lowest smoothed loss's LR / that divisor (times the factor
on a plateau edge), one seed per call, the contenders' data, model, initial weights and sample
counting. Records made before 2026-12-04 have no "plateau_factor": they divided every edge by
their "divisor" (`--plateau-factor 1` repeats them).

    SUPERCONVERGE_DATA=../../shared/data python edge_copies.py --seed 0 --copy-decades 0.05
    SUPERCONVERGE_DATA=../../shared/data python edge_copies.py --seed 0 --plateau keep
    SUPERCONVERGE_DATA=../../shared/data python edge_copies.py --seed 0 --divisor 10 --data sst2
    SUPERCONVERGE_DATA=../../shared/data python edge_copies.py --data mnist --optimizer nadamw
    SUPERCONVERGE_DATA=../../shared/data python edge_copies.py --data sst2 --beta2 0.9955

`--optimizer` / `--beta2` / `--momentum`: the in-run search's optimizer (tune's `optimizer`;
AdamW by default), its second-moment decay (torch's 0.999 by default; AlgoPerf's NAdamW baseline
uses 0.9955) and tune's cyclical momentum (beta1: 0.95 to 0.85 by default; equal values hold it).
`--val-rise`: the validation loss measured at each copy of the rise, and max_lr from the lower of
its lowest point's LR and the training loss's (`read_validation_in_rise`). `--descent-beta2`:
Adam's beta2 from the edge on (`set_beta2_at_the_edge`). `--start-lr`: the rise's first LR.
`--average F`: `RecipeSettings.weight_average` (the final run's weights averaged over its last F
of steps; tune's default, 1.0, when not given; `none`: off); the record holds the same run's
test accuracy at its last weights and at the weights kept (`test_both_weights`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

import torch

import superconverge.training.edge as edge
from _common import machine
from contenders import DEFAULTS, CountingFactory, SampleCounter, evaluate, load_task, run_recipe
from superconverge.training import WeightAverage
from superconverge.tuning import RecipeSettings


def optimizer_spec(name: str, beta2: float) -> Any:
    """tune's `optimizer`: the name at torch's defaults, or a callable with this beta2 (the
    scheduler cycles beta1 and sets the LR and the weight decay; beta2 stays as built)."""
    if beta2 == 0.999:
        return name
    if name == "adamw":
        return lambda groups: torch.optim.AdamW(groups, betas=(0.9, beta2))
    return lambda groups: torch.optim.NAdam(groups, betas=(0.9, beta2), decoupled_weight_decay=True)


def validation_loss(module: torch.nn.Module, data: Any, batch: int = 512) -> float:
    """The mean cross-entropy of `module` (in eval mode) over the ArrayData `data`."""
    was = module.training
    module.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(data), batch):
            inputs, targets = (
                data.inputs[start : start + batch],
                data.targets[start : start + batch],
            )
            loss = torch.nn.functional.cross_entropy(module(inputs), targets, reduction="sum")
            total += loss.item()
    module.train(was)
    return total / len(data)


def read_validation_in_rise(val: Any) -> None:
    """The validation-aware rise (a measured variant): the validation loss at each copy of the
    rise (every `copy_decades` of LR); at the edge, max_lr is the lower of the lowest smoothed
    training loss's LR and the lowest validation loss's LR, / the divisor."""
    curve: list[tuple[float, float]] = []  # (lr, validation loss) at each copy
    take, found = edge.EdgeSearch._take_copy, edge.EdgeSearch._found  # noqa: SLF001

    def take_and_validate(self, fit, step, lr):
        take(self, fit, step, lr)
        curve.append((lr, validation_loss(fit.trainer.module, val)))

    def found_lower(self, fit, step, lr, why):
        if curve:
            val_lr = min(curve, key=lambda point: point[1])[0]
            if val_lr < self.lowest_lr:
                why += f"; val lowest at lr {val_lr:.3g}"
                self.lowest_lr = val_lr
        found(self, fit, step, lr, why)

    edge.EdgeSearch._take_copy = take_and_validate  # type: ignore[method-assign]  # noqa: SLF001
    edge.EdgeSearch._found = found_lower  # type: ignore[method-assign]  # noqa: SLF001


def set_beta2_at_the_edge(beta2: float) -> None:
    """A measured variant: Adam's beta2 becomes `beta2` once the edge is found (after the copy
    is restored: its optimizer state carries the rise's)."""
    found = edge.EdgeSearch._found  # noqa: SLF001

    def found_then_beta2(self, fit, step, lr, why):
        found(self, fit, step, lr, why)
        for group in fit.trainer.optimizer.param_groups:
            group["betas"] = (group["betas"][0], beta2)

    edge.EdgeSearch._found = found_then_beta2  # type: ignore[method-assign]  # noqa: SLF001


def test_both_weights(test: Any) -> dict[str, Any]:
    """The final run's test accuracy at its last weights and at the weights `WeightAverage`
    kept (the same run: a paired measure of the averaging), filled in when the fit ends."""
    seen: dict[str, Any] = {}
    use = WeightAverage._use  # noqa: SLF001 - measured around the library's own rule

    def use_and_test(self, fit, mean, count):
        seen["test_last"] = evaluate(fit.trainer.module, test)["accuracy"]
        use(self, fit, mean, count)
        seen["test_kept"] = evaluate(fit.trainer.module, test)["accuracy"]
        seen.update({k: v for k, v in self.outcome.items() if k != "val_metrics"})

    WeightAverage._use = use_and_test  # type: ignore[method-assign]  # noqa: SLF001
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--copy-decades", type=float, default=0.1)
    parser.add_argument("--plateau", choices=["restore", "keep"], default="restore")
    parser.add_argument("--divisor", type=float, default=edge.EdgeSettings().divisor)
    parser.add_argument(
        "--plateau-factor",
        type=float,
        default=edge.EdgeSettings().plateau_factor,
        help="a plateau edge's max_lr is divided by this too (1: one divisor for every edge, "
        "the rule before 2026-12-04)",
    )
    parser.add_argument(
        "--start-lr", type=float, default=edge.EdgeSettings().start_lr, help="the rise's first LR"
    )
    parser.add_argument(
        "--min-total-steps",
        type=int,
        default=RecipeSettings().min_total_steps,
        help="the batch rule's least updates of the final run (the recipe's)",
    )
    parser.add_argument("--optimizer", default="adamw", choices=["adamw", "nadamw"])
    parser.add_argument("--beta2", type=float, default=0.999)
    parser.add_argument(
        "--momentum",
        type=float,
        nargs=2,
        default=(0.95, 0.85),
        metavar=("HIGH", "LOW"),
        help="tune's cyclical momentum (beta1)",
    )
    parser.add_argument(
        "--val-rise",
        action="store_true",
        help="max_lr from the lower of the lowest smoothed training loss's LR "
        "and the lowest validation loss's LR (measured at each copy)",
    )
    parser.add_argument(
        "--descent-beta2",
        type=float,
        default=None,
        help="Adam's beta2 from the edge on (the rise keeps --beta2)",
    )
    parser.add_argument(
        "--average",
        type=lambda text: None if text == "none" else float(text),
        default=RecipeSettings().weight_average,
        metavar="FRACTION",
        help="RecipeSettings.weight_average: the final run's weights averaged over its last "
        "FRACTION of steps, kept where that lowers the validation loss; 'none': off",
    )
    parser.add_argument("--data", default="cifar10", choices=list(DEFAULTS))
    parser.add_argument("--results", default="edge_copies.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine())
    # the defaults every EdgeSettings() gets (what tune's search builds)
    names = [f.name for f in dataclasses.fields(edge.EdgeSettings)]
    defaults = dict(zip(names, edge.EdgeSettings.__init__.__defaults__, strict=True))
    defaults.update(copy_decades=args.copy_decades, divisor=args.divisor, start_lr=args.start_lr,
                    plateau_factor=args.plateau_factor)  # fmt: skip
    edge.EdgeSettings.__init__.__defaults__ = tuple(defaults[name] for name in names)
    if args.plateau == "keep":
        found = edge.EdgeSearch._found  # noqa: SLF001 - a measured variant of the library's rule

        def keep_on_plateau(self, fit, step, lr, why, flat):  # no copy: the edge's weights
            if "made no new low" in why:
                self._copies = []
            found(self, fit, step, lr, why, flat)

        edge.EdgeSearch._found = keep_on_plateau  # type: ignore[method-assign]  # noqa: SLF001
    setup = DEFAULTS[args.data]
    if args.data == "cifar10":
        setup = dataclasses.replace(setup, epochs=1, train_size=0, val_size=5000, width=0.125)
    elif args.data in ("mnist", "sst2"):
        setup = dataclasses.replace(setup, train_size=0, val_size=0)
    task = load_task(setup)
    if args.val_rise:
        read_validation_in_rise(task.val)
    if args.descent_beta2 is not None:
        set_beta2_at_the_edge(args.descent_beta2)
    averaging = test_both_weights(task.test)
    counter = SampleCounter()
    settings = RecipeSettings(min_total_steps=args.min_total_steps, weight_average=args.average)
    optimizer = optimizer_spec(args.optimizer, args.beta2)
    factory = CountingFactory(task.build_model, args.seed, counter)
    result = run_recipe(
        task, factory, "recipe", settings, optimizer=optimizer, momentum=tuple(args.momentum)
    )
    record = {"data": args.data, "seed": args.seed, "copy_decades": args.copy_decades,
              "plateau": args.plateau, "divisor": args.divisor,
              "plateau_factor": args.plateau_factor,
              "min_total_steps": args.min_total_steps, "optimizer": args.optimizer,
              "beta2": args.beta2, "momentum": list(args.momentum),
              "val_rise": args.val_rise, "descent_beta2": args.descent_beta2,
              "start_lr": args.start_lr, "average": args.average,
              "average_outcome": averaging or None, "setting": result["setting"],
              "test": result["test"], "val": result["val"], "samples": counter.samples,
              "why": result.get("recipe_why", {}).get("final_run", "")}  # fmt: skip
    with open(args.results, "a") as handle:
        handle.write(json.dumps(record) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
