"""Run by test_distributed.py under torchrun: Trainer.fit_one_cycle with 2 gloo ranks on CPU."""

import gc
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from superconverge.data import ArrayData, ArrayLoader, load
from superconverge.models import build
from superconverge.training import Trainer


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    splits = load("digits")
    torch.manual_seed(0)
    model = build("mlp")
    trainer = Trainer(
        model,
        torch.nn.functional.cross_entropy,
        splits.train,
        splits.val,
        batch_size=16,
        out_dir=out / "run",
        progress=False,
    )
    history = trainer.fit_one_cycle(2, 0.05)
    # every rank predicts every test sample, in order, from tensors and from a Dataset
    with torch.no_grad():
        expected = model.eval()(splits.test.inputs)
    dataset = torch.utils.data.TensorDataset(splits.test.inputs, splits.test.targets)
    predicted = [trainer.predict(splits.test), trainer.predict(dataset)]
    # one sample for two ranks: rank 1 reads none (it failed and left rank 0 in all_gather)
    one = trainer.predict(ArrayData(splits.test.inputs[:1], splits.test.targets[:1]))
    # a loader of the user's own, sharded by them: read as it is (it was gathered, padded)
    own = trainer.predict(ArrayLoader(splits.test, 64, shuffle=False, rank=rank, world_size=2))
    first = ArrayData(splits.test.inputs[:1], splits.test.targets[:1])
    one_sample = trainer.evaluate(first)
    with torch.no_grad():
        one_expected = float(torch.nn.functional.cross_entropy(model(first.inputs), first.targets))
    torch.save(model.state_dict(), out / f"weights{rank}.pt")
    (out / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "steps": history.steps,
                "status": history.status,
                "epochs": history.epochs,
                "world": trainer.world_size,
                "per_rank_batches": len(trainer.train_loader),
                "predicted_rows": [len(p) for p in predicted],
                "predicted_equal": [torch.allclose(p, expected, atol=1e-6) for p in predicted],
                "one_row": torch.allclose(one, expected[:1], atol=1e-6),
                "own_rows": len(own),
                "one_sample": one_sample,
                "one_sample_expected": one_expected,
            }
        )
    )
    # tear down in order: a DDP model still holding the process group when the interpreter exits
    # aborts the process now and then ("terminate called without an active exception")
    dist.barrier()
    del trainer, model, history
    gc.collect()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
