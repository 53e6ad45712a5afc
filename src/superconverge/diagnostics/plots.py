"""Plots. Each function takes data and returns a matplotlib `Figure`; none calls ``show()``.

matplotlib is imported inside the functions, so the rest of the library works without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from superconverge.schedules import Plan

LR_COLOR = "#1f5fa8"
MOMENTUM_COLOR = "#c2571a"
POLICY_TITLES = {
    "one_cycle": "1cycle (torch OneCycleLR)",
    "smith_one_cycle": "1cycle with annihilation (Smith, arXiv:1803.09820)",
    "fastai_one_cycle": "1cycle (fastai fit_one_cycle)",
    "cyclic": "cyclical LR (Smith, arXiv:1506.01186)",
    "piecewise_constant": "piecewise-constant LR",
    "constant": "constant LR",
}


def _figure(**kwargs: Any) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - matplotlib is a core dependency
        raise ImportError("plots need matplotlib: pip install matplotlib") from error
    return Figure(**kwargs)


def plot_plan(plan: Plan, steps: int | None = None, *, title: str | None = None) -> Figure:
    """The LR (top) and, when cycled, the momentum (bottom) of a plan against the step.

    Args:
        plan: the plan to draw.
        steps: how many steps to draw; default the plan's `total_steps`.
        title: the figure title; default names the policy and its peak LR.

    Returns:
        A `Figure` with one or two axes sharing the step axis.
    """
    lrs, moms = plan.values(steps)
    count = len(lrs)
    rows = 1 if moms is None else 2
    fig = _figure(figsize=(8.0, 2.6 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    x = range(count)

    ax_lr = axes[0]
    ax_lr.plot(x, lrs, color=LR_COLOR, linewidth=2)
    ax_lr.set_ylabel("learning rate")
    peak_step = max(range(count), key=lrs.__getitem__)
    ax_lr.scatter(
        [0, peak_step, count - 1], [lrs[0], lrs[peak_step], lrs[-1]], color=LR_COLOR, zorder=3
    )
    _label(ax_lr, 0, lrs[0], "start", "left")
    _label(ax_lr, peak_step, lrs[peak_step], "peak", "center")
    _label(ax_lr, count - 1, lrs[-1], "end", "right")
    ax_lr.set_ylim(0, max(lrs) * 1.18)

    if moms is not None:
        ax_m = axes[1]
        ax_m.plot(x, moms, color=MOMENTUM_COLOR, linewidth=2)
        ax_m.set_ylabel("momentum")
        span = max(moms) - min(moms)
        pad = 0.15 * span if span > 0 else 0.01
        ax_m.set_ylim(min(moms) - pad, max(moms) + pad)
    for ax in axes:
        ax.grid(True, alpha=0.3)
        pad = 0.02 * max(count - 1, 1)  # keeps the start and end markers inside the frame
        ax.set_xlim(-pad, count - 1 + pad)
        ax.spines[["top", "right"]].set_visible(False)
    axes[-1].set_xlabel("step (optimizer update)")
    peak = plan.max_lr if plan.max_lr is not None else max(lrs)
    name = POLICY_TITLES.get(plan.policy, plan.policy)
    fig.suptitle(title or f"{name}: max lr {peak:g}, {count} steps")
    return fig


def _label(ax: Any, x: float, y: float, text: str, align: str) -> None:
    ax.annotate(
        f"{text} {y:.3g}",
        (x, y),
        textcoords="offset points",
        xytext=(0, 7),
        ha=align,
        fontsize=9,
    )
