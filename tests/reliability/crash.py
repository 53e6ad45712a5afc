"""The crash harness's child: run a small real `tune` or `fit` on digits, and die on cue.

Run by the reliability tests in a subprocess (never imported by them for its side effects):

    python tests/reliability/crash.py [cue options] MODE [MODE ARGS]

Cues (all optional; a cue that never comes lets the run finish):
    --kill-step N      at the N-th optimizer step of the process (counted from 1, every
                       optimizer: range tests, short runs, the final run), send --signal to self
    --signal NAME      KILL (default: SIGKILL, nothing runs after it) or INT (Ctrl-C)
    --kill-write NAME[:K]  send --signal while writing file NAME for the K-th time (default 1):
                       an atomic write is hit with its temporary file complete but not yet
                       renamed; a plain ``Path.write_text/write_bytes`` with half its bytes written
    --enospc NAME[:K]  the K-th write of NAME fails as if the disk were full (ENOSPC)
    --pause-step N --pause-file F   at the N-th step, create F.paused and wait until F exists
                       (two writers at once: the test holds the first one mid-run)
    --events FILE      append one JSON line per optimizer step count at each file write:
                       ``{"write": NAME, "step": N, "atomic": bool}``; tests use it to aim kills

Modes:
    cli ARGS...        ``superconverge ARGS`` in this process (exit status as the CLI's)
    tune OUT [--resume] [--overwrite] [--result FILE]
                       ``superconverge.tune`` on `small_digits` with fixed, fast settings; FILE
                       gets the decisions and the final weights (torch.save)
    fit OUT [--resume] [--epochs N]
                       a `Trainer` with ``out_dir=OUT`` on `small_digits`; OUT/final_weights.pt

Everything is seeded and runs on one CPU thread, so two uninterrupted runs give the same bits.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import pathlib
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the checkout: `tests.reliability.crash` imports
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

TRAIN, VAL, TEST = 400, 100, 100  # samples of digits kept: a tune in seconds, still learning
TUNE_KWARGS: dict[str, Any] = {"epochs": 2, "batch_size": 32, "weight_decays": (1e-3, 0.0)}
TUNE_CLI_ARGS = ["--data", "tests.reliability.crash:small_digits", "--model", "mlp",
                 "--epochs", "2", "--batch-size", "32", "--weight-decays", "1e-3", "0"]  # fmt: skip
FIT_EPOCHS = 3
BATCH = 32


def small_digits() -> Any:
    """scikit-learn's digits cut to 400 / 100 / 100 samples (a `--data module:function`)."""
    from dataclasses import replace

    from superconverge.data import load

    splits = load("digits")
    assert splits.val is not None and splits.test is not None
    return replace(splits, train=splits.train.subset(torch.arange(TRAIN)),
                   val=splits.val.subset(torch.arange(min(VAL, len(splits.val)))),
                   test=splits.test.subset(torch.arange(min(TEST, len(splits.test)))))  # fmt: skip


def make_model() -> torch.nn.Module:
    from superconverge.models import build

    return build("mlp", dropout=0.1)  # dropout: the RNG state must survive a restart too


# ----------------------------------------------------------------------------- cues
class Cues:
    def __init__(self, args: argparse.Namespace) -> None:
        self.kill_step = args.kill_step
        self.signal = signal.SIGINT if args.signal == "INT" else signal.SIGKILL
        self.kill_write = _name_and_count(args.kill_write)
        self.enospc = _name_and_count(args.enospc)
        self.events = Path(args.events) if args.events else None
        self.pause_step = args.pause_step
        self.pause_file = Path(args.pause_file) if args.pause_file else None
        self.steps = 0
        self.writes: dict[str, int] = {}

    def install(self) -> None:
        from torch.optim.optimizer import register_optimizer_step_post_hook

        register_optimizer_step_post_hook(self._after_step)
        real_fsync = os.fsync
        real_write_text, real_write_bytes = pathlib.Path.write_text, pathlib.Path.write_bytes
        cues = self

        def fsync(descriptor: int) -> None:
            link = os.readlink(f"/proc/self/fd/{descriptor}")
            name = Path(link).name
            if name.startswith(".") and name.endswith(".partial"):  # `write_atomically`'s
                cues._write(name[1:].rsplit(".", 3)[0], atomic=True)
            real_fsync(descriptor)

        def write_text(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
            cues._write(self.name, atomic=False, path=self, data=data.encode())
            return real_write_text(self, data, *args, **kwargs)

        def write_bytes(self: Path, data: bytes) -> int:
            cues._write(self.name, atomic=False, path=self, data=bytes(data))
            return real_write_bytes(self, data)

        os.fsync = fsync
        pathlib.Path.write_text = write_text  # type: ignore[method-assign]
        pathlib.Path.write_bytes = write_bytes  # type: ignore[method-assign]

        # the journal is also saved after each final-run epoch (its clock) without a new
        # record: each save says how many records it holds, so tests find the records' writes
        from superconverge.tuning import journal as journal_module

        real_save = journal_module.Journal.save

        def save(journal: Any) -> None:
            if journal.path is not None:
                cues._event({"journal_records": len(journal.records), "step": cues.steps,
                             "count": cues.writes.get("journal.json", 0) + 1})  # fmt: skip
            real_save(journal)

        journal_module.Journal.save = save  # type: ignore[method-assign]

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.steps += 1
        if self.steps == self.pause_step and self.pause_file is not None:
            self.pause_file.with_suffix(".paused").touch()
            while not self.pause_file.exists():
                time.sleep(0.05)
        if self.steps == self.kill_step:
            self._event({"signal": self.signal.name, "step": self.steps})
            os.kill(os.getpid(), self.signal)

    def _write(
        self, name: str, *, atomic: bool, path: Path | None = None, data: bytes = b""
    ) -> None:
        count = self.writes[name] = self.writes.get(name, 0) + 1
        self._event({"write": name, "count": count, "step": self.steps, "atomic": atomic})
        if self.enospc == (name, count):
            raise OSError(errno.ENOSPC, "No space left on device")
        if self.kill_write == (name, count):
            if path is not None:  # a plain write: leave half of it, as a kill mid-write would
                with open(path, "wb") as handle:
                    handle.write(data[: len(data) // 2])
            self._event({"signal": self.signal.name, "write": name, "count": count})
            os.kill(os.getpid(), self.signal)

    def _event(self, event: dict[str, Any]) -> None:
        if self.events is not None:
            with open(self.events, "a") as handle:
                handle.write(json.dumps(event) + "\n")


def _name_and_count(spec: str | None) -> tuple[str, int] | None:
    if spec is None:
        return None
    name, _, count = spec.partition(":")
    return name, int(count or 1)


# ----------------------------------------------------------------------------- modes
def run_cli(argv: list[str]) -> int:
    from superconverge.cli.main import main

    return main(argv)


def run_tune(argv: list[str]) -> int:
    import superconverge as sc

    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--result", type=Path)
    args = parser.parse_args(argv)
    splits = small_digits()
    kwargs = dict(TUNE_KWARGS, out_dir=args.out, test_data=splits.test)
    if args.overwrite:
        kwargs["overwrite"] = True
    if args.resume:
        kwargs["resume"] = True
    plan = sc.tune(make_model, splits.train, splits.val, **kwargs)
    if args.result is not None:
        trainer = plan.trainer  # type: ignore[attr-defined]
        torch.save({"decisions": decisions(plan.to_dict()),
                    "weights": trainer.module.state_dict()}, args.result)  # fmt: skip
    return 0


def decisions(plan: dict[str, Any]) -> dict[str, Any]:
    """What a resumed recipe must reproduce: the chosen values and every evidence record
    (decision, reasoning, short-run results), without the times (time is not a decision)."""
    chosen = {key: plan[key] for key in
              ("epochs", "batch_size", "max_lr", "min_lr", "weight_decay", "momentum", "seed")}  # fmt: skip
    return {"chosen": chosen, "steps": _timeless(plan["evidence"]),
            "results": _timeless(plan.get("results", {})),
            "compute": plan.get("compute")}  # fmt: skip


TIMES = ("seconds", "samples_per_s", "train_seconds")


def _timeless(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def run_fit(argv: list[str]) -> int:
    from superconverge.training import Trainer

    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--epochs", type=int, default=FIT_EPOCHS)
    args = parser.parse_args(argv)
    splits = small_digits()
    torch.manual_seed(0)
    model = make_model()
    options = {"batch_size": BATCH, "out_dir": args.out, "seed": 3, "progress": False}
    if args.resume:
        Trainer.resume(args.out / "checkpoint.pt", model, torch.nn.functional.cross_entropy,
                       splits.train, splits.val, **options)  # fmt: skip
    else:
        trainer = Trainer(model, torch.nn.functional.cross_entropy, splits.train, splits.val,
                          **options)  # fmt: skip
        trainer.fit_one_cycle(args.epochs, 0.1)
    torch.save(model.state_dict(), args.out / "final_weights.pt")
    return 0


MODES = {"cli": run_cli, "tune": run_tune, "fit": run_fit}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kill-step", type=int)
    parser.add_argument("--signal", choices=("KILL", "INT"), default="KILL")
    parser.add_argument("--kill-write")
    parser.add_argument("--enospc")
    parser.add_argument("--events")
    parser.add_argument("--pause-step", type=int)
    parser.add_argument("--pause-file")
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the same bits run to run, and no fight over the shared cores
    Cues(args).install()
    return MODES[args.mode](args.rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
