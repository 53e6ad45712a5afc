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


SUGGESTION_STYLES = {
    "steepest": ("#7b3294", "v"),
    "valley": ("#008837", "o"),
    "minimum": ("#e66101", "s"),
    "divergence": ("#b2182b", "x"),
}


def plot_range_test(result: Any, ax: Any = None) -> Figure:
    """The LR range test: loss against LR (log axis), raw and smoothed, each rule's suggestion,
    the chosen bounds shaded, and validation accuracy on a second axis when it was recorded.

    Args:
        result: a `RangeTestResult`.
        ax: an axes to draw into; default a new figure.

    Returns:
        The `Figure` holding the axes.
    """
    import math

    if ax is None:
        fig = _figure(figsize=(8.0, 4.8), layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    lrs, raw, smoothed = list(result.lrs), list(result.losses), list(result.smoothed_losses)
    finite = [(lr, r) for lr, r in zip(lrs, raw, strict=True) if math.isfinite(r)]
    if finite:
        ax.plot(*zip(*finite, strict=True), color="#9db8d9", linewidth=1, label="loss (raw)")
    good = [(lr, s) for lr, s in zip(lrs, smoothed, strict=True) if math.isfinite(s)]
    if good:
        ax.plot(*zip(*good, strict=True), color=LR_COLOR, linewidth=2, label="loss (smoothed)")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    # keep the blow-up from flattening the interesting part of the curve
    if good:
        values = [s for _, s in good]
        low, start = min(values), values[0]
        ax.set_ylim(
            low - 0.05 * abs(start - low) - 1e-12, max(start, low) + 0.6 * abs(start - low) + 1e-12
        )
    if result.max_lr is not None and result.min_lr is not None:
        ax.axvspan(
            result.min_lr,
            result.max_lr,
            color="#ffd92f",
            alpha=0.3,
            label=f"chosen range {result.min_lr:.2g}–{result.max_lr:.2g}",
        )
        ax.axvline(result.max_lr, color="#b8860b", linewidth=1.5)
    for name, value in result.suggestions.items():
        if value is None:
            continue
        color, marker = SUGGESTION_STYLES.get(name, ("black", "o"))
        index = min(range(len(lrs)), key=lambda i: abs(math.log(lrs[i]) - math.log(value)))
        y = smoothed[index] if math.isfinite(smoothed[index]) else (good[-1][1] if good else 0.0)
        label = f"{name} {value:.2g}" if name != "minimum" else f"minimum/10 {value:.2g}"
        ax.scatter([value], [y], color=color, marker=marker, s=60, zorder=4, label=label)
    accuracies = [
        (lrs[step], acc)
        for step, acc in zip(result.val_steps, result.val_accuracies, strict=True)
        if acc is not None
    ]
    handles, labels = ax.get_legend_handles_labels()
    if accuracies:
        twin = ax.twinx()
        line = twin.plot(
            *zip(*accuracies, strict=True),
            color="#4d4d4d",
            linestyle="--",
            marker=".",
            label="validation accuracy",
        )
        twin.set_ylabel("validation accuracy")
        twin.set_ylim(0, 1.02)
        handles += line
        labels.append("validation accuracy")
    ax.legend(handles, labels, loc="upper left", fontsize=8, framealpha=0.9)
    ax.grid(True, which="both", alpha=0.25)
    title = "LR range test"
    title += f": max_lr {result.max_lr:.3g}" if result.max_lr is not None else ": no max_lr"
    ax.set_title(title)
    return fig


def plot_history(history: Any) -> Figure:
    """Training (per step, smoothed) and validation (per epoch) loss with the LR on a second
    axis; validation accuracy below when recorded."""
    import math

    has_accuracy = any("val_accuracy" in row for row in history.epochs)
    fig = _figure(figsize=(8.0, 6.2 if has_accuracy else 4.0), layout="constrained")
    axes = fig.subplots(2 if has_accuracy else 1, 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    steps = len(history.step_losses)
    per_epoch = steps / max(1, len(history.epochs)) if history.epochs else float(max(steps, 1))
    if steps:
        smoothed, average = [], 0.0
        for count, value in enumerate(history.step_losses, start=1):
            if not math.isfinite(value):
                break
            average = 0.98 * average + 0.02 * value
            smoothed.append(average / (1 - 0.98**count))
        x = [i / per_epoch for i in range(len(smoothed))]
        ax.plot(x, smoothed, color=LR_COLOR, linewidth=1.5, label="train loss (smoothed, per step)")
    epochs_x = [row["epoch"] for row in history.epochs]
    if any("val_loss" in row for row in history.epochs):
        ax.plot(
            epochs_x,
            [row.get("val_loss", math.nan) for row in history.epochs],
            "o-",
            color=MOMENTUM_COLOR,
            label="validation loss",
        )
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    if history.step_lrs:
        twin = ax.twinx()
        steps_x = [i / per_epoch for i in range(len(history.step_lrs))]
        head_lrs = [lrs[-1] for lrs in history.step_lrs]
        twin.plot(steps_x, head_lrs, color="#999999", linewidth=1, label="lr")
        twin.set_ylabel("learning rate")
        handles, labels = ax.get_legend_handles_labels()
        more, more_labels = twin.get_legend_handles_labels()
        ax.legend(handles + more, labels + more_labels, loc="upper right", fontsize=8)
    if has_accuracy:
        axes[1].plot(
            epochs_x,
            [row.get("val_accuracy", math.nan) for row in history.epochs],
            "o-",
            color="#008837",
        )
        axes[1].set_ylabel("validation accuracy")
        axes[1].grid(True, alpha=0.3)
    axes[-1].set_xlabel("epoch")
    title = f"training: {history.status}"
    if history.epochs and "val_accuracy" in history.epochs[-1]:
        title += f", final validation accuracy {history.epochs[-1]['val_accuracy']:.4f}"
    fig.suptitle(title)
    return fig


def plot_range_tests(results: dict[str, Any]) -> Figure:
    """Several LR range tests on one log axis (e.g. one per weight decay), smoothed loss each,
    with each curve's suggested max_lr marked."""
    import math

    fig = _figure(figsize=(8.0, 4.6), layout="constrained")
    ax = fig.subplots()
    colors = ["#1f5fa8", "#c2571a", "#008837", "#7b3294", "#b2182b", "#4d4d4d"]
    lows, starts = [], []
    for index, (label, result) in enumerate(results.items()):
        color = colors[index % len(colors)]
        points = [
            (lr, s)
            for lr, s in zip(result.lrs, result.smoothed_losses, strict=True)
            if math.isfinite(s)
        ]
        if not points:
            continue
        ax.plot(*zip(*points, strict=True), color=color, linewidth=1.8, label=label)
        lows.append(min(s for _, s in points))
        starts.append(points[0][1])
        if result.max_lr is not None:
            ax.axvline(result.max_lr, color=color, linestyle=":", linewidth=1.2)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (smoothed)")
    if lows:
        low, high = min(lows), max(starts)
        ax.set_ylim(low - 0.05 * (high - low) - 1e-12, high + 0.5 * (high - low) + 1e-12)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("LR range tests (dotted: each curve's suggested max_lr)")
    return fig
