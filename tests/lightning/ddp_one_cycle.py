"""Run by test_distributed.py under torchrun: OneCycle with Lightning's DDP strategy, 2 gloo
ranks on CPU, with gradient accumulation; with a second argument "search", OneCycle("search")."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")  # a skip, not an error, where it is missing

from superconverge.lightning import OneCycle  # noqa: E402
from tests.lightning.digits_module import (  # noqa: E402
    DigitsModule,
    RecordOptimizerSteps,
    digits_loader,
)


class Probe(pl.Callback):
    def __init__(self):
        self.state = None

    def on_train_start(self, trainer, pl_module):
        self.state = [t.clone() for t in pl_module.state_dict().values()]


def main(out: Path, search: bool = False) -> None:
    before, callback, after, record = (
        Probe(),
        OneCycle("search") if search else OneCycle(start_lr=1e-4, num_steps=30),
        Probe(),
        RecordOptimizerSteps(),
    )
    module = DigitsModule("adamw" if search else "sgd")
    trainer = pl.Trainer(
        max_epochs=8 if search else 2, accelerator="cpu", devices=2, strategy="ddp", accumulate_grad_batches=2,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=str(out), callbacks=[before, callback, after, record],
    )  # fmt: skip
    trainer.fit(module, digits_loader(batch_size=16))
    if search:
        (out / f"rank{trainer.global_rank}.json").write_text(
            json.dumps(
                {
                    "edge": callback.lr_search,
                    "seen": record.seen,
                    "weights": float(sum(p.double().sum() for p in module.parameters())),
                }
            )
        )
        return
    restored = all(torch.equal(a, b) for a, b in zip(before.state, after.state, strict=True))
    plan = callback.plan
    (out / f"rank{trainer.global_rank}.json").write_text(
        json.dumps(
            {
                "max_lr": callback.result.max_lr,
                "world": callback.result.settings["world_size"],
                "total_steps": plan.total_steps,
                "restored": restored,
                "seen": record.seen,
                "planned": [[plan.lr(k), plan.momentum(k)] for k in range(len(record.seen))],
                "weights": float(sum(p.double().sum() for p in module.parameters())),
            }
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:] == ["search"])
    import torch.distributed as dist

    if dist.is_initialized():  # gloo's threads left to the exit aborted a rank now and then
        dist.destroy_process_group()
