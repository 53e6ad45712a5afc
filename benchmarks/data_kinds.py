"""The recipe on what PyTorch users train: a regression, a text Dataset with AdamW, PNG files.

- ``diabetes``: scikit-learn's ``load_diabetes`` (442 patients, 10 features, a continuous
  target), an MLP and MSE; `tune` picks everything and reports MSE/MAE (no accuracy), against
  scikit-learn's least-squares linear regression on the same split.
- ``sst2``: SST-2 sentences as a map-style ``Dataset`` of token ids (a pad collate function),
  an EmbeddingBag classifier; ``tune(optimizer="adamw")`` against AdamW with its defaults
  (lr 1e-3, weight decay 0.01, constant LR, batch 64) and ``tune(optimizer="sgd")`` (given as
  a loader factory), the same epochs.
- ``cifar-png``: CIFAR-10 written once as PNG files in class folders (``_png_folder.py``), read by
  a plain ``Dataset`` (PIL, tensor transforms) through a DataLoader with 2 workers; `tune` end to
  end on the CPU-sized CIFAR ResNet; peak memory of the process and its workers.

    SUPERCONVERGE_DATA=../shared/data python benchmarks/data_kinds.py diabetes
    SUPERCONVERGE_DATA=../shared/data python benchmarks/data_kinds.py sst2 --epochs 2
    python benchmarks/_png_folder.py /tmp/cifar-png
    python benchmarks/data_kinds.py cifar-png --png /tmp/cifar-png --epochs 2
    python benchmarks/data_kinds.py cifar-png --handwritten --batch-size 32 --max-lr 0.0039
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import resource
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from _common import machine
from _sst2 import BagOfWords, load_sst2_dataset, pad_collate
from superconverge.data import ArrayData
from superconverge.training import Trainer
from superconverge.tuning import tune


def _summary(plan, seconds: float) -> dict:
    steps = {e["step"]: e["decision"] for e in plan.evidence}
    return {
        "batch_size": plan.batch_size,
        "max_lr": plan.max_lr,
        "weight_decay": plan.weight_decay,
        "momentum": steps.get("momentum"),
        "results": plan.results,
        "compute": plan.compute,  # training samples: the search's and the final run's
        "seconds": seconds,
    }


def diabetes(args: argparse.Namespace) -> dict:
    import numpy as np
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression

    x, y = load_diabetes(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    parts = {"train": slice(0, 300), "val": slice(300, 370), "test": slice(370, None)}
    mean, std = x[parts["train"]].mean(0), x[parts["train"]].std(0)
    y_mean, y_std = y[parts["train"]].mean(), y[parts["train"]].std()

    def split(part: str) -> ArrayData:
        inputs = torch.tensor((x[parts[part]] - mean) / std, dtype=torch.float32)
        targets = torch.tensor((y[parts[part]] - y_mean) / y_std, dtype=torch.float32)[:, None]
        return ArrayData(inputs, targets)

    def model() -> nn.Module:
        return nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1))

    start = time.perf_counter()
    plan = tune(
        model,
        split("train"),
        split("val"),
        epochs=args.epochs or 40,
        test_data=split("test"),
        loss_fn=nn.functional.mse_loss,
        seed=args.seed,
    )
    result = _summary(plan, time.perf_counter() - start)
    linear = LinearRegression().fit(
        (x[parts["train"]] - mean) / std, (y[parts["train"]] - y_mean) / y_std
    )
    residual = linear.predict((x[parts["test"]] - mean) / std) - (y[parts["test"]] - y_mean) / y_std
    result["least_squares_test"] = {
        "mse": float((residual**2).mean()),
        "mae": float(abs(residual).mean()),
    }
    result["target_std"] = float(y_std)  # MSE above is in units of the target's variance
    return result


def sst2(args: argparse.Namespace) -> dict:
    train, val, test, vocab = load_sst2_dataset()
    epochs = args.epochs or 2

    def model() -> nn.Module:
        return BagOfWords(vocab, hidden=False)

    def make_loader(batch_size: int) -> DataLoader:  # the user's own pipeline, for the sgd run
        return DataLoader(
            train,
            batch_size=batch_size,
            shuffle=True,
            collate_fn=pad_collate,
            generator=torch.Generator().manual_seed(args.seed),
        )

    out = {}
    contenders = (("tune adamw", train, "adamw"), ("tune sgd", make_loader, "sgd"))
    for name, data, optimizer in contenders:
        if args.only and name != args.only:
            continue
        start = time.perf_counter()
        torch.manual_seed(args.seed)
        plan = tune(
            model,
            data,
            val,
            epochs=epochs,
            test_data=test,
            optimizer=optimizer,
            collate_fn=pad_collate,
            seed=args.seed,
        )
        out[name] = _summary(plan, time.perf_counter() - start)
        print(name, json.dumps(out[name], default=str)[:400], flush=True)
    if args.only and args.only != "adamw defaults":
        return out
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    trainer = Trainer(
        model(),
        nn.functional.cross_entropy,
        train,
        val,
        optimizer="adamw",
        weight_decay=0.01,
        batch_size=64,
        collate_fn=pad_collate,
        seed=args.seed,
        progress=False,
    )
    from superconverge import constant

    history = trainer.fit(epochs, constant(1e-3, momentum=None))
    out["adamw defaults"] = {
        "compute": {"total_samples": epochs * len(train)},
        "results": {
            "final_val_loss": history.epochs[-1]["val_loss"],
            "test": trainer.evaluate(test),
        },
        "seconds": time.perf_counter() - start,
    }
    return out


def cifar_png(args: argparse.Namespace) -> dict:
    from _png_folder import PngFolder
    from superconverge.models import build

    train = PngFolder(f"{args.png}/train", augment=True)
    if args.train_size:  # a seeded subset of the files: does memory grow with the data set?
        keep = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
        train.keep(np.sort(keep[: args.train_size].numpy()))
    test = PngFolder(f"{args.png}/test")
    val = torch.utils.data.Subset(test, range(0, len(test), 4))  # every 4th test image

    def model() -> nn.Module:
        return build("cifar-resnet", width=args.width, bn_momentum=0.05)

    if args.handwritten:
        return _cifar_png_handwritten(args, model, train, val, test)
    # stage lines with their times, to line up with the memory timeline
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    memory = _TreeMemory()
    time.sleep(1)  # one sample before the workers start
    start = time.perf_counter()
    plan = tune(
        model,
        train,
        val,
        epochs=args.epochs or 2,
        test_data=test,
        num_workers=2,
        seed=args.seed,
        budget=args.budget,
        batch_size=args.batch_size or "auto",
    )
    result = _summary(plan, time.perf_counter() - start)
    result["width"], result["budget"] = args.width, args.budget
    result["train_size"], result["seed"] = len(train), args.seed
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result["peak_rss_mib"] = {"main": own, "largest_finished_worker": workers}
    result["peak_tree_mib"] = memory.stop()
    result["decoded_uint8_mib"] = len(train) * 3 * 32 * 32 / 2**20
    result["decoded_float32_mib"] = len(train) * 3 * 32 * 32 * 4 / 2**20
    return result


def _cifar_png_handwritten(args, model, train, val, test) -> dict:
    """The same data, model and compute as `tune` on its default, in a loop a user would write:
    AdamW under `OneCycleLR` at the plan's batch, max_lr and weight decay (given as flags), the
    training DataLoader's 2 workers persistent, each evaluation's 2 workers started for it. The
    memory this costs is PyTorch's and the DataLoader's, not the library's: `tune`'s own share
    is its peak less this one."""
    torch.manual_seed(args.seed)
    net = model()
    memory = _TreeMemory()
    time.sleep(1)
    start = time.perf_counter()
    loader = DataLoader(
        train, batch_size=args.batch_size, shuffle=True, num_workers=2, persistent_workers=True
    )
    epochs = args.epochs or 2
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.max_lr, weight_decay=args.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.max_lr, epochs=epochs, steps_per_epoch=len(loader)
    )
    loss_fn = nn.CrossEntropyLoss()

    def evaluate(data) -> dict[str, float]:
        net.eval()
        total = correct = seen = 0.0
        with torch.no_grad():
            for x, y in DataLoader(data, batch_size=256, num_workers=2):
                out = net(x)
                total += loss_fn(out, y).item() * len(y)
                correct += (out.argmax(1) == y).sum().item()
                seen += len(y)
        net.train()
        return {"loss": total / seen, "accuracy": correct / seen}

    val_results = []
    for _ in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(net(x), y).backward()
            optimizer.step()
            schedule.step()
        val_results.append(evaluate(val))
    del loader  # its workers stop, as `tune`'s do before its test evaluation
    result = {
        "handwritten": True,
        "batch_size": args.batch_size,
        "max_lr": args.max_lr,
        "weight_decay": args.weight_decay,
        "val": val_results,
        "test": evaluate(test),
        "compute": {"total_samples": epochs * len(train)},
        "seconds": time.perf_counter() - start,
        "width": args.width,
        "train_size": len(train),
        "seed": args.seed,
    }
    result["peak_tree_mib"] = memory.stop()
    result["decoded_float32_mib"] = len(train) * 3 * 32 * 32 * 4 / 2**20
    return result


class _TreeMemory:
    """The peak, over samples every half second, of this process's and its children's (the
    DataLoader workers') memory together: RSS summed (counts pages shared after fork once per
    process: an upper bound) and PSS summed (shared pages split between their users: the
    tree's real footprint). Linux only (/proc)."""

    def __init__(self) -> None:
        import os
        import threading

        self.pid = os.getpid()
        self.peak = {"rss_sum": 0.0, "pss_sum": 0.0, "processes": 0}
        # this process alone (its own peaks); "anonymous": memory it allocated (heap, tensors),
        # not the pages of torch's libraries mapped from disk
        self.main = {"pss": 0.0, "rss": 0.0, "anonymous": 0.0}
        self.most_processes = 0
        self.timeline: list[tuple[float, float, float, int]] = []  # (unix time, main, tree, n)
        self.start: dict[str, float] | None = None  # the first sample: before any worker starts
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _pids(self) -> list[int]:
        from pathlib import Path

        pids, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                with contextlib.suppress(OSError):  # the child ended meanwhile
                    todo += [int(c) for c in task.read_text().split()]
        return pids

    def _watch(self) -> None:
        from pathlib import Path

        while not self.done.wait(0.5):
            rss = pss = main_pss = 0.0
            pids = self._pids()
            self.most_processes = max(self.most_processes, len(pids))
            for pid in pids:
                try:
                    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
                except OSError:
                    continue
                for line in text.splitlines():
                    for key in ("Rss", "Pss", "Anonymous"):
                        if line.startswith(key + ":"):
                            mib = int(line.split()[1]) / 1024
                            if key == "Rss":
                                rss += mib
                            elif key == "Pss":
                                pss += mib
                            if pid == self.pid:
                                self.main[key.lower()] = max(self.main[key.lower()], mib)
                                main_pss = mib if key == "Pss" else main_pss
            if self.start is None:
                self.start = {"rss_sum": rss, "pss_sum": pss}
            self.timeline.append(
                (round(time.time(), 1), round(main_pss, 1), round(pss, 1), len(pids))
            )
            if pss > self.peak["pss_sum"]:
                self.peak = {"rss_sum": rss, "pss_sum": pss, "processes": len(pids)}
            self.peak["rss_sum"] = max(self.peak["rss_sum"], rss)

    def stop(self) -> dict[str, float]:
        self.done.set()
        self.thread.join()
        return {
            **self.peak,
            "at_start": self.start,
            "main_alone": self.main,
            "most_processes": self.most_processes,
            "timeline (unix time, main PSS, tree PSS, processes)": self.timeline,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("task", choices=["diabetes", "sst2", "cifar-png"])
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", default="/tmp/cifar-png")
    parser.add_argument("--width", type=float, default=0.25, help="cifar-png: the ResNet's width")
    parser.add_argument("--budget", type=float, default=1.0, help="cifar-png: tune's budget")
    parser.add_argument(
        "--batch-size", type=int, help="cifar-png: fix tune's batch size (default: its choice)"
    )
    parser.add_argument(
        "--train-size", type=int, help="cifar-png: a seeded subset of this many training images"
    )
    parser.add_argument(
        "--only",
        choices=["tune adamw", "tune sgd", "adamw defaults"],
        help="sst2: run this contender alone",
    )
    parser.add_argument(
        "--handwritten",
        action="store_true",
        help="cifar-png: a hand-written AdamW + OneCycleLR loop instead of tune (the baseline)",
    )
    parser.add_argument("--max-lr", type=float, help="cifar-png --handwritten: its max_lr")
    parser.add_argument(
        "--weight-decay", type=float, default=0.1, help="cifar-png --handwritten: AdamW's"
    )
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.handwritten and (args.batch_size is None or args.max_lr is None):
        parser.error("--handwritten needs --batch-size and --max-lr (the plan's, to compare)")
    torch.set_num_threads(1)
    result = {"diabetes": diabetes, "sst2": sst2, "cifar-png": cifar_png}[args.task](args)
    print(machine())
    print(json.dumps(result, indent=1, default=str))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1, default=str)


if __name__ == "__main__":
    main()
