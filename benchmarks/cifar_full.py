"""Super-convergence on the full CIFAR-10: the Keras experiment and the data-size sweep.

Runs, one after the other and each resumable (finished runs are kept in their results.json):
1. ``cifar10-full`` (the seeds' Keras experiment: 40,000 / 10,000 / 10,000 images, batch 32),
   every contender but the recipe;
2. ``cifar10-data-size`` (Smith & Topin's Table 1: one cycle against piecewise-constant as the
   training set shrinks), every size and seed;
3. the recipe contender of (1), last because it is the least important and the slowest to size.

CPU protocol (one thread, as on the shared 2-core machine):

    PYTHONPATH=src python benchmarks/cifar_full.py --threads 1 \
        --data-dir ../shared/data/cifar10-full --out runs/cifar-full

GPU protocol (the published width, 64-epoch baseline, ResNet-56 sweep): benchmarks/cifar_full_gpu.sh.
``--epochs`` and ``--contenders`` change the Keras experiment; ``--sizes``, ``--seeds``, ``--cycle-steps`` and ``--batch-size`` cut the sweep to a time budget
(the baseline always runs the protocol's ``piecewise_factor`` times the cycle's steps).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from _common import machine
from superconverge.experiments import cifar_data_size, cifar_full


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/cifar-full"))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--protocol", choices=("cpu", "cuda", "quick"), default="cpu")
    parser.add_argument("--skip", nargs="*", default=[], choices=("keras", "sweep", "recipe"))
    parser.add_argument("--epochs", type=int, help="the Keras experiment's E")
    parser.add_argument("--contenders", nargs="+", help="the Keras experiment's contenders")
    parser.add_argument("--sizes", type=int, nargs="+", help="the sweep's training-set sizes")
    parser.add_argument("--seeds", type=int, help="the sweep's number of seeds")
    parser.add_argument("--cycle-steps", type=int, help="the sweep's one-cycle steps")
    parser.add_argument("--batch-size", type=int, help="the sweep's batch size")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    keras, sweep = {
        "cpu": (cifar_full.FULL, cifar_data_size.FULL),
        "cuda": (cifar_full.FULL_CUDA, cifar_data_size.FULL_CUDA),
        "quick": (cifar_full.QUICK, cifar_data_size.QUICK),
    }[args.protocol]
    overrides = {"sizes": tuple(args.sizes) if args.sizes else None, "seeds": args.seeds,
                 "cycle_steps": args.cycle_steps, "batch_size": args.batch_size}  # fmt: skip
    sweep = dataclasses.replace(sweep, **{k: v for k, v in overrides.items() if v is not None})
    if args.epochs:
        keras = dataclasses.replace(keras, epochs=args.epochs)
    if args.contenders:
        unknown = sorted(set(args.contenders) - set(keras.contenders))
        if unknown:
            parser.error(f"--contenders must be among {list(keras.contenders)}, got {unknown}")
        keras = dataclasses.replace(keras, contenders=tuple(args.contenders))
    device = "cuda" if args.protocol == "cuda" else "auto"
    print(machine(), flush=True)
    core = tuple(name for name in keras.contenders if name.startswith(("one cycle", "piecewise")))
    rest = tuple(n for n in keras.contenders if n not in core and n != "recipe (tune)")
    steps: list[tuple[str, object]] = []
    if "keras" not in args.skip:
        steps.append(("keras", dataclasses.replace(keras, contenders=core)))
    if "sweep" not in args.skip:
        steps.append(("sweep", sweep))
    if "keras" not in args.skip:  # same settings but the contenders: resumes the results
        steps.append(("keras", dataclasses.replace(keras, contenders=core + rest)))
    if "recipe" not in args.skip:
        steps.append(("recipe", keras))
    for name, settings in steps:
        start = time.perf_counter()
        print(f"{time.strftime('%H:%M:%S')} {name}: {settings}", flush=True)
        if name == "sweep":
            cifar_data_size.run(args.out / "data-size", settings, args.data_dir, device)
            print((args.out / "data-size" / "results.md").read_text(), flush=True)
        else:
            cifar_full.run(args.out / "keras", settings, args.data_dir, device)  # type: ignore[arg-type]
            print((args.out / "keras" / "results.md").read_text(), flush=True)
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
