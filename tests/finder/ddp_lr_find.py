"""Run by test_distributed.py under torchrun: lr_find on a DDP model, 2 gloo ranks on CPU."""

import gc
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

import superconverge as sc
from superconverge.data import ArrayData, ArrayLoader


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)  # the same initial weights on every rank
    model = nn.parallel.DistributedDataParallel(
        nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    )
    g = torch.Generator().manual_seed(0)
    data = ArrayData(torch.randn(256, 6, generator=g), torch.randint(0, 3, (256,), generator=g))
    loader = ArrayLoader(data, 16, seed=0, rank=rank, world_size=world)
    before = [p.detach().clone() for p in model.parameters()]
    result = sc.lr_find(
        model, nn.functional.cross_entropy, loader, start_lr=1e-4, end_lr=1e4, num_steps=80
    )
    restored = all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    # the tensors themselves: sharded as the ArrayLoader above (every rank read all of them)
    arrays = sc.lr_find(model, nn.functional.cross_entropy, data, batch_size=16, start_lr=1e-4,
                        end_lr=1e4, num_steps=80)  # fmt: skip
    # a plain model, swept by rank 0 alone (a common pattern; it waited for ever in the first
    # all_reduce): this process on all of the data, a world of one
    alone = None
    if rank == 0:
        plain = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
        alone = sc.lr_find(plain, nn.functional.cross_entropy, data, batch_size=16,
                           start_lr=1e-4, end_lr=1e4, num_steps=40)  # fmt: skip
    (out / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "losses": result.losses,
                "stop": result.stop_reason,
                "max_lr": result.max_lr,
                "world": result.settings["world_size"],
                "restored": restored,
                "arrays_as_loader": arrays.losses == result.losses,
                "alone": None if alone is None else [alone.settings["world_size"], len(alone.losses)],
            }
        )
    )
    # tear down in order: a DDP model still holding the process group when the interpreter exits
    # aborts the process now and then ("terminate called without an active exception")
    dist.barrier()
    del model, result, arrays, alone
    gc.collect()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
