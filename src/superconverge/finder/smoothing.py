"""The one loss smoother and divergence rule, shared by the range test and the training loop.

Plain Python, no torch: the PyTorch and Keras range tests and `Trainer`'s loop feed it one loss
per optimizer step.
"""

from __future__ import annotations

import math

SMOOTHING = 0.98  # fastai's and Smith's beta for the range test's moving average of the loss


# a loss at or below 0 has no scale of its own: its rise is measured on its fall, once the fall
# is more than this fraction of the loss's size (before that, a smoothed curve's noise would be
# a "divergence" of a curve that has not fallen yet)
ARMING_FALL = 0.02


def rose_past(loss: float, best: float, first: float, factor: float) -> bool:
    """Whether `loss` diverged from the lowest loss `best` seen after a first loss `first`:
    above `factor` x `best` for a positive loss. A minimum at or below 0 (a loss that can be
    negative: a Gaussian NLL, an offset) gives a ratio no meaning; there the loss diverged when
    it rose above its minimum by more than `factor` - 1 times its whole fall from `first` (the
    ratio's 3x rise at the default 4, on the fall's scale), once that fall is more than 2% of
    the loss's size; a curve that has not fallen that far diverges only at a non-finite loss.

    Example:
        >>> rose_past(4.5, 1.0, 2.0, 4.0), rose_past(3.5, -1.0, 0.5, 4.0)
        (True, False)
        >>> rose_past(3.6, -1.0, 0.5, 4.0), rose_past(9.0, -1.0, -1.0, 4.0)  # no fall: no scale
        (True, False)
    """
    if best > 0:
        return loss > factor * best
    fall = first - best
    armed = fall > ARMING_FALL * max(abs(first), abs(best))
    return armed and loss - best > (factor - 1) * fall


# inside the warm-up, a smoothed loss this many times the first loss (or 1, if larger) diverged
WARMUP_BLOWUP = 1000.0
# the reason `LossSmoother.divergence` gives for a NaN/inf loss
NON_FINITE = "the loss became non-finite"


class LossSmoother:
    """Bias-corrected moving average of the loss, ``avg_k / (1 - beta ** (k + 1))``, and the rule
    that says a run diverged.

    A run has diverged when its loss is not finite, or (after `warmup_steps`) when the smoothed
    loss exceeds `diverge_factor` x the lowest of (its minimum since the warm-up, the first
    loss). The first loss is measured before any update, so a run that blows up in its first
    steps and then stays flat at a huge loss is caught too. `floor_fraction`: the minimum is
    read as at least this fraction of the first loss (the training loop's 1%: a trained model's
    noise near 0 is no divergence; the range test: 0). `first`: the first loss when it is known
    already (a fit continued after a back-off or a resume).

    Example:
        >>> smoother = LossSmoother(smoothing=0.5, diverge_factor=4.0)
        >>> [smoother.add(loss) for loss in (1.0, 3.0)]
        [1.0, 2.3333333333333335]
        >>> smoother.divergence() is None
        True
        >>> round(smoother.add(30.0), 1), smoother.divergence()[:32]
        (18.1, 'the smoothed loss 18.1 passed 4x')
    """

    def __init__(
        self,
        smoothing: float = SMOOTHING,
        diverge_factor: float = 4.0,
        warmup_steps: int = 0,
        *,
        floor_fraction: float = 0.0,
        first: float | None = None,
    ) -> None:
        if not 0.0 <= floor_fraction < 1.0:
            raise ValueError(f"floor_fraction must be in [0, 1), got {floor_fraction!r}")
        if first is not None and not math.isfinite(first):
            raise ValueError(f"first must be a finite loss or None, got {first!r}")
        self.smoothing, self.diverge_factor = float(smoothing), float(diverge_factor)
        self.warmup_steps = warmup_steps
        self.count = 0
        self.current = math.nan
        self.best = math.inf  # the lowest smoothed loss after the warm-up
        # the first loss: the model before any update (given: a fit continued after a back-off
        # or a resume keeps its own first loss, not that of a trained model's next batch)
        self.first = math.nan if first is None else float(first)
        # the minimum is taken as at least this fraction of the first loss: a trained model's
        # loss near 0 rising 4x (0.002 to 0.008) is a batch's noise, not a divergence
        self.floor_fraction = float(floor_fraction)
        self.average = 0.0  # the moving average before its bias correction

    def add(self, value: float) -> float:
        """Record one step's loss; return the smoothed loss (NaN once a loss is not finite)."""
        if not math.isfinite(value):
            self.current = math.nan
            return math.nan
        if self.count == 0 and math.isnan(self.first):
            self.first = value
        self.count += 1
        self.average = self.smoothing * self.average + (1 - self.smoothing) * value
        self.current = self.average / (1 - self.smoothing**self.count)
        if self.count > self.warmup_steps:
            self.best = min(self.best, self.current)
        return self.current

    def divergence(self) -> str | None:
        """Why the run diverged at the latest loss, or None while it is fine."""
        if math.isnan(self.current):
            return NON_FINITE
        if self.count <= self.warmup_steps:
            # the warm-up judges no ratio of a loss still settling, but a blow-up of orders of
            # magnitude is no settling (a 7-step fit at 1e21 was reported "completed")
            scale = max(abs(self.first), 1.0) if math.isfinite(self.first) else math.inf
            if self.current > WARMUP_BLOWUP * scale:
                return (
                    f"the smoothed loss {self.current:.3g} passed {WARMUP_BLOWUP:g}x the first "
                    f"loss {self.first:.3g} (or 1) within its first {self.warmup_steps} steps"
                )
            return None
        floor = self.floor_fraction * self.first if self.first > 0 else 0.0
        if self.best > 0 and self.current > self.diverge_factor * max(self.best, floor):
            return (
                f"the smoothed loss {self.current:.3g} passed {self.diverge_factor:g}x "
                f"its minimum {max(self.best, floor):.3g}"
            )
        if self.best <= 0 and rose_past(self.current, self.best, self.first, self.diverge_factor):
            return (
                f"the smoothed loss {self.current:.3g} rose above its minimum {self.best:.3g} by "
                f"more than {self.diverge_factor - 1:g}x its fall from the first loss "
                f"{self.first:.3g}"
            )
        if self.first > 0 and self.current > self.diverge_factor * self.first:
            return (
                f"the smoothed loss {self.current:.3g} passed {self.diverge_factor:g}x "
                f"the first loss {self.first:.3g}"
            )
        return None
