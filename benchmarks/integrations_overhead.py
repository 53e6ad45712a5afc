"""Per-step overhead of superconverge's Lightning and Hugging Face integrations over the same
run with the framework's own ``OneCycleLR`` (issue 15: at most 2%).

Contenders, same model, data and initial weights in each family:

- lightning: ``OneCycle(max_lr=...)`` (no range test) against a module whose
  ``configure_optimizers`` returns ``OneCycleLR`` (interval "step"); the digits MLP.
- huggingface: ``OneCycleTrainer(max_lr=...)`` and a plain ``Trainer`` with
  ``OneCycleCallback(max_lr=...)`` (the Trainer's default linear scheduler runs underneath)
  against a ``Trainer`` whose ``create_scheduler`` returns torch's ``OneCycleLR`` (the same
  optimizer as the Trainer builds for the others: fused AdamW); a tiny BERT on SST-2.

Why this way: on a shared 2-core machine the wall time of a pair of short runs varied by tens
of percent. Here each process uses one torch thread, and the per-step cost is the **CPU time of
the process** (``time.process_time``), which other processes' load disturbs less than the wall
clock; wall time is reported beside it. A round runs every contender of a family once, in a
random order. The clock times each whole optimizer step from step `skip` to the last (no setup,
no first steps' lazy initialisation, no teardown); a run's time per step is the median of its
steps (robust to a step that was preempted or collected garbage), and its first quartile (the
fast steps, least disturbed by other processes) and mean are reported too. Each cell is the
median over rounds of the per-round ratio ours / theirs, minus 1, with a 95% bootstrap interval
of that median in brackets and the quartiles of the ratios in parentheses.

Second table: the same runs also time (CPU) all the code that differs between the contenders:
every callback dispatch (ours among them) and the framework's stepping of its scheduler. These
intervals are short, so the load disturbs them far less than whole steps; their difference per
step, over the OneCycleLR run's step, is the overhead attributed to our code.

    SUPERCONVERGE_DATA=../shared/data nice python benchmarks/integrations_overhead.py --rounds 60 \
        --json benchmarks/integrations_overhead.json
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine, table

MAX_LR = 0.1  # digits MLP, SGD
HF_MAX_LR = 1e-3  # tiny BERT, AdamW
BOOTSTRAP = 2000  # resamples of the rounds for the interval of the median ratio


class Clock:
    """CPU (process) and wall time of each whole step from `skip` to `last - 1`, and the CPU
    time spent meanwhile in the code that differs between the contenders (`time_calls`)."""

    active: Clock | None = None  # the clock of the run in progress, while it is timing

    def __init__(self, skip: int) -> None:
        self.skip = skip
        self.marks: list[tuple[float, float]] = []  # at the start of steps skip .. last
        self.scheduling = 0.0

    def at_step_start(self, step: int, last: int) -> None:
        if self.skip <= step <= last:
            self.marks.append((time.process_time(), time.perf_counter()))
        Clock.active = self if self.skip <= step < last else None

    @staticmethod
    def time_calls(owner: Any, *names: str) -> None:
        """Add the CPU time of every call of ``owner.<name>`` (a class's method, a module's
        function or an instance's method) to the active clock's `scheduling`."""
        for name in names:
            function = getattr(owner, name)

            def timed(*args: Any, _function: Any = function, **kwargs: Any) -> Any:
                clock = Clock.active
                if clock is None:
                    return _function(*args, **kwargs)
                start = time.process_time()
                try:
                    return _function(*args, **kwargs)
                finally:
                    clock.scheduling += time.process_time() - start

            setattr(owner, name, timed)

    def result(self) -> Steps:
        if len(self.marks) < 2:
            raise RuntimeError("the clock saw no whole step: make the run longer than --skip + 1")
        cpu = [b[0] - a[0] for a, b in zip(self.marks, self.marks[1:], strict=False)]
        wall = [b[1] - a[1] for a, b in zip(self.marks, self.marks[1:], strict=False)]
        return Steps(
            cpu=statistics.median(cpu),
            fast_cpu=statistics.quantiles(cpu, n=4, method="inclusive")[0],
            mean_cpu=statistics.fmean(cpu),
            wall=statistics.median(wall),
            scheduling=self.scheduling / len(cpu),
        )


@dataclass(frozen=True)
class Steps:
    """One run's seconds per step: the median step's CPU time, the first quartile's (the fast
    steps: the least disturbed by other processes), the mean, the median step's wall time, and
    the mean CPU time in the code that differs between the contenders: every callback hook
    (ours among them) and the stepping of the framework's schedulers."""

    cpu: float
    fast_cpu: float
    mean_cpu: float
    wall: float
    scheduling: float


def lightning_family(epochs: int, skip: int) -> dict[str, Callable[[], Steps]]:
    import lightning.pytorch as pl
    from lightning.pytorch.loops.training_epoch_loop import _TrainingEpochLoop
    from lightning.pytorch.trainer import call as lightning_call
    from tests.lightning.digits_module import DigitsModule, digits_loader

    from superconverge.lightning import OneCycle

    class LightningClock(pl.Callback):
        def __init__(self) -> None:
            self.clock = Clock(skip)

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.clock.at_step_start(
                trainer.global_step, int(trainer.estimated_stepping_batches) - 1
            )

    class TorchOneCycle(DigitsModule):
        def configure_optimizers(self):
            optimizer = super().configure_optimizers()  # the same SGD (momentum, weight decay)
            total = self.trainer.estimated_stepping_batches
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, MAX_LR, total_steps=total)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
            }

    data = digits_loader(batch_size=32, size=1536)  # 48 steps per epoch
    # what differs: ours adds a callback (all its hooks are dispatched, two do work), theirs
    # has a scheduler config that Lightning steps (OneCycleLR.step and its bookkeeping)
    Clock.time_calls(lightning_call, "_call_callback_hooks")
    Clock.time_calls(_TrainingEpochLoop, "update_lr_schedulers")

    def run(module: Any, callbacks: list[Any]) -> Steps:
        clock = LightningClock()
        pl.Trainer(
            max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            callbacks=[*callbacks, clock],
        ).fit(module, data)  # fmt: skip
        return clock.clock.result()

    return {
        "OneCycleLR": lambda: run(TorchOneCycle(), []),
        "OneCycle callback": lambda: run(DigitsModule(), [OneCycle(max_lr=MAX_LR)]),
        # what any one more callback costs a step (Lightning dispatches each hook to each)
        "OneCycleLR + an empty callback": lambda: run(TorchOneCycle(), [pl.Callback()]),
    }


def huggingface_family(steps: int, skip: int) -> dict[str, Callable[[], Steps]]:
    from tests.huggingface.sst2 import datasets, tiny_bert
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_callback import CallbackHandler

    from superconverge.huggingface import OneCycleCallback, OneCycleTrainer

    train, _, vocab = datasets(train_size=steps * 16, val_size=16, vocab_size=2000)
    # what differs: the callback events (ours has three hooks that work) and the scheduler's
    # step (OneCycleLR, HyperparamScheduler, or the Trainer's linear one under the callback)
    Clock.time_calls(CallbackHandler, "call_event")

    class HuggingFaceClock(TrainerCallback):
        def __init__(self) -> None:
            self.clock = Clock(skip)

        def on_train_begin(self, args, state, control, **kwargs):
            Clock.time_calls(kwargs["lr_scheduler"], "step")

        def on_step_begin(self, args, state, control, **kwargs):
            self.clock.at_step_start(state.global_step, state.max_steps - 1)

    def quiet(trainer: Any) -> Any:
        trainer.remove_callback(PrinterCallback)  # prints the final metrics of every run
        return trainer

    def arguments() -> TrainingArguments:
        return TrainingArguments(
            output_dir="/tmp/sc-bench-hf", num_train_epochs=1, per_device_train_batch_size=16,
            report_to=[], logging_steps=10_000, save_strategy="no", use_cpu=True,
            disable_tqdm=True, seed=0,
        )  # fmt: skip

    class TorchOneCycleTrainer(Trainer):
        """The Trainer's own optimizer (its default: fused AdamW, two weight-decay groups) with
        torch's OneCycleLR: an optimizer built by hand would differ in more than the schedule."""

        def create_scheduler(self, num_training_steps, optimizer=None):
            if self.lr_scheduler is None:
                self.lr_scheduler = torch.optim.lr_scheduler.OneCycleLR(
                    optimizer or self.optimizer, HF_MAX_LR, total_steps=num_training_steps
                )
                self._created_lr_scheduler = True
            return self.lr_scheduler

    def theirs() -> Steps:
        clock = HuggingFaceClock()
        quiet(TorchOneCycleTrainer(
            model=tiny_bert(vocab), args=arguments(), train_dataset=train, callbacks=[clock],
        )).train()  # fmt: skip
        return clock.clock.result()

    def trainer() -> Steps:
        clock = HuggingFaceClock()
        quiet(OneCycleTrainer(
            model=tiny_bert(vocab), args=arguments(), train_dataset=train, max_lr=HF_MAX_LR,
            callbacks=[clock],
        )).train()  # fmt: skip
        return clock.clock.result()

    def callback() -> Steps:
        clock, ours = HuggingFaceClock(), OneCycleCallback(max_lr=HF_MAX_LR)
        quiet(Trainer(
            model=tiny_bert(vocab), args=arguments(), train_dataset=train,
            callbacks=[ours, clock],
        )).train()  # fmt: skip
        return clock.clock.result()

    return {"OneCycleLR": theirs, "OneCycleTrainer": trainer, "OneCycleCallback": callback}


def summary(ratios: list[float], seed: int = 0, digits: int = 1) -> str:
    """``median [95% bootstrap interval of the median] (quartiles)`` of per-round ratios, as
    percentages over 1."""
    draw = random.Random(seed)
    medians = sorted(
        statistics.median(draw.choices(ratios, k=len(ratios))) for _ in range(BOOTSTRAP)
    )
    low, high = medians[int(0.025 * BOOTSTRAP)], medians[int(0.975 * BOOTSTRAP) - 1]
    q1, q2, q3 = (
        statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
    )
    p = [percent(value, digits) for value in (q2, low, high, q1, q3)]
    return f"**{p[0]}** [{p[1]}, {p[2]}] ({p[3]} to {p[4]})"


def percent(ratio: float, digits: int = 1) -> str:
    return f"{(ratio - 1) * 100:+.{digits}f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=2, help="Lightning epochs of 48 steps")
    parser.add_argument("--hf-steps", type=int, default=24, help="Hugging Face steps per run")
    parser.add_argument("--skip", type=int, default=3, help="first steps left out of the clock")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0, help="of the random order in each round")
    parser.add_argument("--only", choices=["lightning", "huggingface"], default=None)
    parser.add_argument("--json", type=Path, default=None, help="write every run's times here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    order = random.Random(args.seed)
    print(machine(), flush=True)
    families = {
        "lightning": lambda: lightning_family(args.epochs, args.skip),
        "huggingface": lambda: huggingface_family(args.hf_steps, args.skip),
    }
    rows, attributed, raw = [], [], {}
    for family_name, build in families.items():
        if args.only not in (None, family_name):
            continue
        runs = build()
        times: dict[str, list[Steps]] = {name: [] for name in runs}
        for index in range(args.rounds):
            names = list(runs)
            order.shuffle(names)
            for name in names:
                gc.collect()
                times[name].append(runs[name]())
            print(
                f"{family_name} round {index}: "
                + ", ".join(f"{n} {times[n][-1].cpu * 1e3:.3f} ms CPU" for n in names),
                flush=True,
            )
        raw[family_name] = {name: [asdict(t) for t in values] for name, values in times.items()}
        base = times["OneCycleLR"]
        for name, measured in times.items():
            if name == "OneCycleLR":
                continue
            paired = list(zip(measured, base, strict=True))
            label = f"{family_name}: {name}"
            rows.append(
                (
                    label,
                    f"{statistics.median(t.cpu for t in base) * 1e3:.3f}",
                    f"{statistics.median(t.cpu for t in measured) * 1e3:.3f}",
                    summary([ours.cpu / theirs.cpu for ours, theirs in paired]),
                    summary([ours.fast_cpu / theirs.fast_cpu for ours, theirs in paired]),
                    summary([ours.mean_cpu / theirs.mean_cpu for ours, theirs in paired]),
                    summary([ours.wall / theirs.wall for ours, theirs in paired]),
                    args.rounds,
                )
            )
            attributed.append(
                (
                    label,
                    f"{statistics.median(t.scheduling for t in base) * 1e6:.1f}",
                    f"{statistics.median(t.scheduling for t in measured) * 1e6:.1f}",
                    summary(
                        [
                            1 + (ours.scheduling - theirs.scheduling) / theirs.cpu
                            for ours, theirs in paired
                        ],
                        digits=2,
                    ),
                )
            )
    print()
    print(
        table(
            (
                "stack: ours",
                "OneCycleLR: CPU ms/step",
                "ours: CPU ms/step",
                "CPU, median step",
                "CPU, fast-quartile step",
                "CPU, mean step",
                "wall, median step",
                "rounds",
            ),
            rows,
        )
    )
    print()
    print(
        table(
            (
                "stack: ours",
                "OneCycleLR run: CPU µs/step in the differing code",
                "ours: CPU µs/step in the differing code",
                "(ours - theirs) / their step",
            ),
            attributed,
        )
    )
    print(f"torch threads in the runs: {torch.get_num_threads()}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"machine": machine(), "args": vars(args) | {"json": str(args.json)}, "runs": raw},
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
