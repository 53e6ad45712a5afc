"""The recipe's constants in one place: `RecipeSettings` (plain Python, no torch).

Every divisor, margin, floor and fraction that `tune` uses is a field here, with its unit and the
measurement behind it. `tune(..., settings=RecipeSettings(...))` and the decisions take it as an
argument; tests build their own instead of patching module globals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from superconverge._checks import check_unit_fraction

if TYPE_CHECKING:  # the search's constants live beside the search (torch); this module has none
    from superconverge.training.edge import EdgeSettings


@dataclass(frozen=True)
class RecipeSettings:
    """The constants of Smith's disciplined recipe (arXiv:1803.09820) as `tune` runs it.

    Example:
        >>> RecipeSettings().lr_divisors
        (10.0, 5.0, 3.0)
        >>> RecipeSettings(retry_loss_factor=0.0).retry_loss_factor  # every final run is redone
        0.0
    """

    # --- batch size ---
    # batch sizes tried (samples), smallest first; the probes double from one to the next
    batch_candidates: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024)
    # fraction: a doubling of the batch must buy more than 10% samples/s to be worth it (CPU)
    throughput_gain: float = 0.10
    # updates per epoch: 1cycle needs room for its phases, so the batch may not eat the epoch
    min_steps_per_epoch: int = 10
    # updates of the final run: ... nor the run. On small data a throughput-chosen batch left too
    # few updates (digits, 10 epochs: batch 128 = 110 updates, 97.5% test accuracy; batch 32 =
    # 410 updates, 98.6%). 300 was not enough either: MNIST, 3 epochs, one seed each: batch 256
    # (633 updates) 98.75%, batch 128 (1,266) 98.97%; on a GPU batch 512 (318 updates) 97.8%
    # (docs/benchmarks.md)
    min_total_steps: int = 1000
    # samples: ... but the update floor alone never pushes the batch below this
    min_auto_batch: int = 16
    # samples: the largest automatic batch of a stream (an epoch of `steps_per_epoch` batches
    # whatever their size, so a larger batch only multiplies the samples an epoch reads: batch
    # 1024 on a stream of 1,200 samples read each ~34 times an epoch); fastai's default size
    max_stream_batch: int = 64
    # fraction of the GPU's memory: use at most 80% of it at the chosen batch (CUDA)
    gpu_memory_margin: float = 0.8

    # --- how the LR is searched ---
    # "in_run": the final run's rise is the LR range test (`fit_one_cycle(max_lr="search")`,
    # `superconverge.training.edge`): no range test or short run before it, and the budget's
    # samples lengthen the final run by whole epochs (with extend_final_run). On the full CIFAR-10
    # the short-run search cost about a run and left the recipe 7 points under Prodigy at equal
    # compute; the in-run search lost 5% of one run's steps and was ahead of every no-search
    # default on the median (docs/benchmarks.md, "The LR search inside the final run").
    # "short_runs": range tests, then short runs at LR divisors, the optimizers of
    # optimizer_families compared, weight-decay runs (the recipe before). A call that asks for
    # what only short runs do (several weight_decays, compare_momentum=True, workers > 1, a
    # study) runs "short_runs"
    lr_search: str = "in_run"
    # the optimizer of an in-run search when tune's optimizer is "auto" (one run trains one
    # optimizer): the short-run comparison chose AdamW on all 9 full-data seeds of issue 16's bar
    # (MNIST, SST-2, CIFAR-10; benchmarks/contenders_budget.jsonl)
    in_run_optimizer: str = "adamw"
    # the in-run search's constants (`superconverge.training.EdgeSettings`: max_lr = the rise's
    # lowest-loss LR / `divisor`, twice that on a plateau, the rise's start and pace, the
    # copies); None: its defaults (docs/benchmarks.md, "The divisor" and "The edge's kind"); the
    # plan records all of them, so that `fit --plan` searches as `tune` did. Short runs have none
    search: EdgeSettings | None = None

    # --- the search's budget (tune's `budget` sets the allowance; these shape its use) ---
    # the optimizers compared by short runs when tune's optimizer is "auto": the paper's SGD and
    # AdamW (fastai's default optimizer), each with its own range test, LR grid and decays
    optimizer_families: tuple[str, ...] = ("sgd", "adamw")
    # fraction of the final run: no short run is longer than this, whatever the budget allows
    max_short_fraction: float = 0.25
    # updates: no short run is shorter than this (a 1cycle of fewer updates decides nothing)
    min_short_steps: int = 40
    # repeat the best short run from another seed: the difference is the noise of a short run,
    # and no difference below it decides (issue 16: decays 1-3% apart ranked differently per seed)
    measure_noise: bool = True
    # fraction: the least margin a measured noise gives (one repeat can differ by next to nothing)
    noise_floor: float = 0.005

    # --- weight decay ---
    # candidates for SGD's (and Adam's) L2 penalty: the paper's grid (arXiv:1803.09820 §4.3). The
    # first is the anchor: the LR search runs at it, and another candidate must beat it by more
    # than the noise of a short run to replace it (1e-4: the paper's value for CIFAR-10 at large
    # LRs; its 1e-3/1e-5 winners in issue 16 ranked differently on another seed)
    weight_decays: tuple[float, ...] = (1e-4, 1e-3, 1e-5, 0.0)
    # candidates for decoupled decay (AdamW, NAdamW): each step shrinks weights by lr x decay, so
    # at Adam's LRs the paper's grid decays by next to nothing; measured (docs/benchmarks.md,
    # "AdamW's weight decay"): on digits and SST-2 the winners lay in 0.01-0.3 (0.1 most often:
    # the anchor), 1e-4 never won
    decoupled_weight_decays: tuple[float, ...] = (0.1, 0.03, 0.01, 0.0)

    # --- LR bounds ---
    # divisors of the range test's lowest-loss LR giving the max_lr candidates of the short runs:
    # the range test's minimum/10 is safe but can be timid at large batches (docs/benchmarks.md),
    # so max_lr is settled among minimum/10, /5 and /3, all well below the divergence point
    lr_divisors: tuple[float, ...] = (10.0, 5.0, 3.0)
    # divisor of the divergence LR: no candidate above half the LR where the range test diverged
    divergence_divisor: float = 2.0
    # min_lr = max_lr / this: one cycle spans a factor of 10 to 20 (arXiv:1803.09820 §4.1)
    min_lr_divisor: float = 10.0
    # fraction: a higher max_lr must beat the lower one's validation loss by more than this to be
    # chosen: the short runs are noisy, and the highest candidate sits nearest the edge of stability
    # (used when the noise is not measured; a measured noise replaces it)
    lr_safety_margin: float = 0.02
    # count: when the lowest max_lr candidate wins (or nothing finite), the grid is extended
    # downwards while a lower LR keeps giving a lower validation loss (the range test may have
    # pointed too high: raw pixels, one seed in three); when the highest wins by the margin above,
    # upwards while a higher LR keeps winning by it (MNIST at batch 512 on a GPU: 0.0556 won by
    # 17%, minimum/3 is still timid); at most this many extra short runs either way
    lr_extensions: int = 3
    # divisor per downward step of the LR grid
    lr_extension_divisor: float = 3.0
    # factor per upward step of the LR grid, never past the range test's lowest-loss LR: past it
    # the loss was rising (a GPU CIFAR-10 run climbed to 1.3x it, won the short runs and lost 5
    # points in the final run), nor past the divergence ceiling
    lr_raise_factor: float = 2.0
    # LR (absolute): a range test whose loss is still falling (or flat) at its end (LR 10) is swept
    # again up to this LR: BatchNorm networks can keep improving there (the super-convergence
    # regime), badly scaled ones only start to
    wide_sweep_end_lr: float = 1000.0
    # steps of that second sweep: 125 keeps the first sweep's density of points over two more decades
    wide_sweep_steps: int = 125
    # steps of a second sweep over the same LRs when the first one's loss never went down: a
    # noisy regression (digits' labels, standardised, batch 16) learned nothing visible in 100
    # steps before blowing up, and found its LR (0.0206; 0.03 by hand) in 300
    long_sweep_steps: int = 300

    # --- weight decay ---
    # fraction: two weight decays whose validation losses differ by less than 2% are "close", and
    # get a run at the midpoint of their exponents (arXiv:1803.09820 §4.3)
    close_losses: float = 0.02

    # when the weight-decay runs run: "if_overfitting" (only when the short run at the chosen
    # settings may overfit: its training loss at its end below its validation loss by more than
    # the noise of a short run; otherwise the anchor stays and their samples are not spent) or
    # "always" (as before this setting: whenever the final-run extension does not take their
    # share; with extend_final_run=False, always). In all 30 recipe runs of issue 16's benchmarks
    # where the stage compared candidates it kept its anchor (benchmarks/contenders_budget.jsonl;
    # docs/benchmarks.md, "Weight-decay runs only where the short run may overfit"). Candidates
    # passed to tune (`weight_decays`) always run
    weight_decay_runs: str = "if_overfitting"

    # --- momentum ---
    # constant momenta compared with the cyclical one (the paper's comparison, arXiv:1803.09820 §4.2)
    constant_momenta: tuple[float, ...] = (0.99, 0.97, 0.95, 0.9)

    # --- final run ---
    # factor: a final run whose validation loss ends this many times above its short run's (same
    # settings, fewer epochs) fell apart near the edge of stability: it is run once more, lower
    retry_loss_factor: float = 1.5
    # divisor of max_lr (and min_lr) for that one retry
    retry_lr_divisor: float = 3.0
    # count: divergences of the final run answered by restoring the weights of the epoch's start
    # and continuing at half the LR (the AlgoPerf-winning submission halves its LR on a stall),
    # instead of losing the run
    backoff_retries: int = 2
    # when the short run at the chosen settings shows no overfitting, the weight-decay runs are
    # not run and their share of the budget lengthens the final run by whole epochs (the anchor
    # decay stays): on CIFAR-10 the search's second run's worth of samples bought 11 points less
    # than the same samples spent training (docs/benchmarks.md, issue 16), and the weight-decay
    # stage chose its anchor in all 18 recipe runs of the contenders' benchmark (in 5 no other
    # candidate ran). Only whole epochs, at most what the weight-decay runs would have spent.
    # False: the final run is exactly `epochs` long and the weight-decay runs always run
    extend_final_run: bool = True
    # fraction of the allowance held back for that extension while the LR search runs (the short
    # runs are sized, and the LR grid extended, within the rest); released to the weight-decay
    # runs when the short run overfits or the held-back samples buy no whole epoch. 0 (none):
    # 0.5 was measured and rejected — short runs half as long left SST-2's optimizers at chance and
    # the recipe at 52% test accuracy against 78% (docs/benchmarks.md, "Handing the search's
    # samples to the final run")
    extension_reserve_fraction: float = 0.0
    # the final run's weights averaged over its last `weight_average` of steps (`WeightAverage`;
    # 1.0: every step after the in-run search's edge), kept where the average's validation loss
    # is lower than the last weights' beyond the noise of the comparison; None: off. On SST-2
    # (a run that overfits late) the average gained about a point of test accuracy over 10
    # seeds; on MNIST, CIFAR-10 and digits the last weights stayed (docs/benchmarks.md, "Weight
    # averaging in the descent")
    weight_average: float | None = 1.0

    def __post_init__(self) -> None:
        counts = {
            "min_steps_per_epoch": self.min_steps_per_epoch,
            "min_total_steps": self.min_total_steps,
            "min_auto_batch": self.min_auto_batch,
            "max_stream_batch": self.max_stream_batch,
            "wide_sweep_steps": self.wide_sweep_steps,
            "long_sweep_steps": self.long_sweep_steps,
            "min_short_steps": self.min_short_steps,
        }
        for name, count in counts.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {count!r}")
        if isinstance(self.lr_extensions, bool) or not isinstance(self.lr_extensions, int):
            raise ValueError(f"lr_extensions must be an integer >= 0, got {self.lr_extensions!r}")
        if isinstance(self.backoff_retries, bool) or not isinstance(self.backoff_retries, int):
            raise ValueError(
                f"backoff_retries must be an integer >= 0, got {self.backoff_retries!r}"
            )
        if self.backoff_retries < 0:
            raise ValueError(
                f"backoff_retries must be an integer >= 0, got {self.backoff_retries!r}"
            )
        if not isinstance(self.extend_final_run, bool):
            raise TypeError(
                f"extend_final_run must be True or False, got {self.extend_final_run!r}"
            )
        if self.lr_search not in ("in_run", "short_runs"):
            raise ValueError(f"lr_search must be 'in_run' or 'short_runs', got {self.lr_search!r}")
        if not isinstance(self.in_run_optimizer, str) or not self.in_run_optimizer:
            raise ValueError(
                f"in_run_optimizer must be an optimizer name, got {self.in_run_optimizer!r}"
            )
        if self.weight_decay_runs not in ("if_overfitting", "always"):
            raise ValueError(
                "weight_decay_runs must be 'if_overfitting' or 'always', got "
                f"{self.weight_decay_runs!r}"
            )
        if not self.optimizer_families or any(
            not isinstance(name, str) or not name for name in self.optimizer_families
        ):
            raise ValueError(
                f"optimizer_families must be optimizer names, got {self.optimizer_families!r}"
            )
        if self.weight_average is not None:
            check_unit_fraction("weight_average", self.weight_average, "None or in (0, 1]")
        if not 0.0 <= self.extension_reserve_fraction < 1.0:
            raise ValueError(
                "extension_reserve_fraction must be in [0, 1), got "
                f"{self.extension_reserve_fraction!r}"
            )
        if not 0.0 < self.max_short_fraction <= 1.0:
            raise ValueError(
                f"max_short_fraction must be in (0, 1], got {self.max_short_fraction!r}"
            )
        if self.lr_extensions < 0:
            raise ValueError(f"lr_extensions must be an integer >= 0, got {self.lr_extensions!r}")
        if not self.batch_candidates or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in self.batch_candidates
        ):
            raise ValueError(
                f"batch_candidates must be integers >= 1, got {self.batch_candidates!r}"
            )
        for name in ("weight_decays", "decoupled_weight_decays"):
            values = getattr(self, name)
            if not values or any(
                isinstance(w, bool)
                or not isinstance(w, (int, float))
                or not math.isfinite(w)
                or w < 0
                for w in values
            ):
                raise ValueError(f"{name} must be finite numbers >= 0, got {values!r}")
        if not self.lr_divisors or any(not _positive(d) for d in self.lr_divisors):
            raise ValueError(f"lr_divisors must be finite numbers > 0, got {self.lr_divisors!r}")
        if not self.constant_momenta or any(not 0.0 <= m < 1.0 for m in self.constant_momenta):
            raise ValueError(f"constant_momenta must be in [0, 1), got {self.constant_momenta!r}")
        fractions = {
            "throughput_gain": self.throughput_gain,
            "lr_safety_margin": self.lr_safety_margin,
            "close_losses": self.close_losses,
            "noise_floor": self.noise_floor,
        }
        for name, fraction in fractions.items():
            if not 0.0 <= fraction < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {fraction!r}")
        if not 0.0 < self.gpu_memory_margin <= 1.0:
            raise ValueError(f"gpu_memory_margin must be in (0, 1], got {self.gpu_memory_margin!r}")
        factors = {
            "divergence_divisor": self.divergence_divisor,
            "min_lr_divisor": self.min_lr_divisor,
            "lr_extension_divisor": self.lr_extension_divisor,
            "lr_raise_factor": self.lr_raise_factor,
            "retry_lr_divisor": self.retry_lr_divisor,
        }
        for name, factor in factors.items():
            if not _positive(factor) or factor <= 1.0:
                raise ValueError(f"{name} must be a finite number > 1, got {factor!r}")
        if not _positive(self.wide_sweep_end_lr):
            raise ValueError(
                f"wide_sweep_end_lr must be a finite number > 0, got {self.wide_sweep_end_lr!r}"
            )
        if not math.isfinite(self.retry_loss_factor) or self.retry_loss_factor < 0:
            raise ValueError(
                f"retry_loss_factor must be a finite number >= 0, got {self.retry_loss_factor!r}"
            )


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


DEFAULT_SETTINGS = RecipeSettings()
