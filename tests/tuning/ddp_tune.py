"""Run by test_trials.py under torchrun: `tune` from Python on 2 gloo ranks on CPU; each rank
writes the plan it got back, so the test can compare what the ranks report."""

import gc
import json
import sys
from pathlib import Path

import torch.distributed as dist
from torch import nn

import superconverge as sc
from superconverge.data import load
from superconverge.tuning import RecipeSettings


def main(out: Path, lr_search: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    splits = load("digits")

    def model_fn() -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    # every rank makes the same call, as a user's script would (only rank 0 writes the folder)
    settings = RecipeSettings(lr_search=lr_search)
    plan = sc.tune(model_fn, splits.train, splits.val, epochs=2, seed=0, out_dir=out / "run",
                   settings=settings)  # fmt: skip
    found = None if plan.history is None else plan.history.lr_search
    record = {"compute": plan.compute, "max_lr": plan.max_lr, "status": plan.results["status"],
              "lr_search": found}  # fmt: skip
    (out / f"rank{rank}.json").write_text(json.dumps(record))
    dist.barrier()
    del plan
    gc.collect()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "in_run")
