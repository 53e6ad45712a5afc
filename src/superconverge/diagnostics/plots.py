"""Plots. Each function takes data and returns a matplotlib `Figure`; none calls ``show()``.

matplotlib is imported inside the functions, so the rest of the library works without it.
"""

from __future__ import annotations

import math
import textwrap
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
    "one_cycle_search": "1cycle whose rise searched max_lr (Smith's descent)",
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
    marked = [(0, "start", "left", lrs[0]), (peak_step, "peak", "center", lrs[peak_step]),
              (count - 1, "end", "right", lrs[-1])]  # fmt: skip
    cycle_peak = plan.max_lr
    if cycle_peak is not None and lrs[peak_step] > cycle_peak * (1 + 1e-6):
        # a searched plan: its rise went past the edge, the cycle descends from max_lr (a user
        # read the edge's "peak 0.101" as the cycle's peak of 0.00953)
        marked[1] = (peak_step, "rise's edge", "center", lrs[peak_step])
        top = cycle_peak * (1 + 1e-6)
        descent = next((k for k in range(peak_step, count) if lrs[k] <= top), None)
        if descent is not None:  # its first step is one into the ramp: max_lr is shown
            marked.insert(2, (descent, "max_lr", "left", cycle_peak))
    elif peak_step == 0:  # a plan that starts at its peak: one label there
        del marked[1]
    ax_lr.scatter([k for k, *_ in marked], [lrs[k] for k, *_ in marked], color=LR_COLOR, zorder=3)
    for k, text, align, shown in marked:
        _label(ax_lr, k, lrs[k], text, align, shown)
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
    fig.suptitle(title or f"{name}: max lr {peak:.3g}, {count} steps")
    return fig


def _label(ax: Any, x: float, y: float, text: str, align: str, shown: float) -> None:
    ax.annotate(
        f"{text} {shown:.3g}",
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
        low = min(values)
        # the top: the highest smoothed loss before the minimum (the plateau), not the first,
        # which a low first batch put under the whole plateau (a user's check)
        start = max(values[: values.index(low) + 1])
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


ACCURACY_KEYS = ("val_accuracy", "val_binary_accuracy")  # a classifier's, a binary task's


def accuracy_key(history: Any) -> str | None:
    """The validation accuracy `history` recorded (a classifier's, else a binary or
    multi-label task's `binary_accuracy`), or None."""
    return next((k for k in ACCURACY_KEYS if any(k in row for row in history.epochs)), None)


def history_smoothing(steps: int) -> float:
    """The moving average's β for a history's per-step training loss: 0.98 (the range test's,
    a memory of ~50 steps) on long runs, less where 50 steps are a large share of the run (a
    memory of at most 5% of its steps). With 0.98 an 82-step fit's curve ended at 0.51 where
    its last steps' loss was 0.17 (a user's check), reading as under-fitting.

    Example:
        >>> history_smoothing(2000), history_smoothing(82)
        (0.98, 0.75)
    """
    window = min(50.0, max(1.0, round(steps / 20)))
    return 1.0 - 1.0 / window


def plot_history(history: Any, verdict: dict[str, Any] | None = None) -> Figure:
    """Training (per step, smoothed) and validation (per epoch) loss on a log axis; below it,
    sharing the epoch axis, the validation accuracy (when recorded), the LR and the momentum
    (when cycled). A `verdict` (`Verdict.to_dict()`) becomes the title, next to the curve it
    reads, and the lowest validation loss is marked: where the verdict's story turns."""
    import textwrap

    key = accuracy_key(history)
    momenta = [m[-1] for m in history.step_momenta if m and m[-1] is not None]
    rows = [("loss", 3.2)] + [("accuracy", 1.5)] * (key is not None)
    rows += [("lr", 1.3)] * bool(history.step_lrs) + [("momentum", 1.3)] * bool(momenta)
    fig = _figure(figsize=(8.0, 1.2 + sum(h for _, h in rows)), layout="constrained")
    axes = fig.subplots(
        len(rows),
        1,
        sharex=True,
        squeeze=False,
        gridspec_kw={"height_ratios": [h for _, h in rows]},
    )[:, 0]
    panel = dict(zip((name for name, _ in rows), axes, strict=True))
    ax = panel["loss"]
    steps = len(history.step_losses)
    # the fit's own steps per epoch where its History records them: a run that stopped inside
    # an epoch (2 steps of 81 were drawn as half an epoch, an auditor's check) is placed right
    recorded = getattr(history, "steps_per_epoch", None)
    per_epoch = (
        float(recorded)
        if isinstance(recorded, int) and recorded > 0
        else steps / max(1, len(history.epochs))
        if history.epochs
        else float(max(steps, 1))
    )
    if steps:
        smoothed, average, beta = [], 0.0, history_smoothing(steps)
        for count, value in enumerate(history.step_losses, start=1):
            if not math.isfinite(value):
                break
            average = beta * average + (1 - beta) * value
            smoothed.append(average / (1 - beta**count))
        x = [i / per_epoch for i in range(len(smoothed))]
        ax.plot(x, smoothed, color=LR_COLOR, linewidth=1.5, label="train loss (smoothed, per step)")
    epochs_x = [row["epoch"] for row in history.epochs]
    val = [(row["epoch"], row["val_loss"]) for row in history.epochs if "val_loss" in row]
    val = [(e, v) for e, v in val if math.isfinite(v)]
    if val:
        ax.plot(*zip(*val, strict=True), "o-", color=MOMENTUM_COLOR, label="validation loss")
        best = min(val, key=lambda point: point[1])
        ax.annotate(
            f"lowest validation loss {best[1]:.4g} (epoch {best[0]:g})",
            best,
            textcoords="offset points",
            xytext=(-8, 14),
            ha="right",
            fontsize=9,
            arrowprops={"arrowstyle": "->", "color": "#555555"},
        )
    if ax.lines:
        ax.legend(loc="upper right", fontsize=8)
    ax.set_ylabel("loss (log scale)" if _log_y(ax) else "loss")
    if key is not None:
        accuracy = [row.get(key, math.nan) for row in history.epochs]
        panel["accuracy"].plot(epochs_x, accuracy, "o-", color="#008837")
        panel["accuracy"].set_ylabel(key.replace("_", " "))  # "val accuracy"
    steps_x = [i / per_epoch for i in range(len(history.step_lrs))]
    if history.step_lrs:
        panel["lr"].plot(steps_x, [lrs[-1] for lrs in history.step_lrs], color=LR_COLOR)
        panel["lr"].set_ylabel("learning rate")
    if momenta:
        moms = [math.nan if not m or m[-1] is None else m[-1] for m in history.step_momenta]
        panel["momentum"].plot(steps_x[: len(moms)], moms, color=MOMENTUM_COLOR)
        panel["momentum"].set_ylabel("momentum")
    for each in axes:
        each.grid(True, which="both", alpha=0.3)
        each.spines[["top", "right"]].set_visible(False)
    axes[-1].set_xlabel("epoch")
    title = f"training: {history.status}"
    if key is not None and key in history.epochs[-1]:
        title += f", final {key.replace('val_', 'validation ').replace('_', ' ')}"
        title += f" {history.epochs[-1][key]:.4f}"
    if verdict:
        said = f"Verdict: {verdict.get('kind', '?')}: {verdict.get('explanation', '')}"
        title = "\n".join(textwrap.wrap(said, 95)[:3])
    fig.suptitle(title, fontsize=11)
    return fig


CURVE_COLORS = ("#1f5fa8", "#c2571a", "#008837", "#7b3294", "#b2182b", "#4d4d4d")


def plot_range_tests(
    results: dict[str, Any],
    max_lr: float | None = None,
    min_lr: float | None = None,
    chosen_by: str = "",
) -> Figure:
    """Several LR range tests on one log axis (e.g. one per optimizer compared): the smoothed
    loss of each, every rule's suggestion marked on its curve (one marker shape per rule), and
    the chosen `max_lr` (a solid line) with the range down to `min_lr` shaded. The chosen value
    is what the short runs decided, not necessarily any rule's suggestion; `chosen_by` names it
    in the legend (e.g. the optimizer)."""
    from matplotlib.lines import Line2D

    fig = _figure(figsize=(8.0, 4.8), layout="constrained")
    ax = fig.subplots()
    lows, starts, marks = [], [], []
    for index, (label, result) in enumerate(results.items()):
        color = CURVE_COLORS[index % len(CURVE_COLORS)]
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
        for name, value in result.suggestions.items():
            if value is not None:
                _, y = min(points, key=lambda p: abs(math.log(p[0]) - math.log(value)))
                marks.append((value, y, color, SUGGESTION_STYLES.get(name, ("black", "o"))[1]))
    if max_lr is not None:
        if min_lr is not None:
            ax.axvspan(min_lr, max_lr, color="#ffd92f", alpha=0.3, label="chosen 1cycle range")
        chosen = f"chosen max_lr {max_lr:.3g} {chosen_by}".rstrip()
        ax.axvline(max_lr, color="#b8860b", linewidth=2, label=chosen)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (smoothed)")
    if lows:
        low, high = min(lows), max(starts)
        ax.set_ylim(low - 0.05 * (high - low) - 1e-12, high + 0.5 * (high - low) + 1e-12)
    top = ax.get_ylim()[1]  # a suggestion where the loss blew up sits on the top edge
    for x, y, color, marker in marks:
        ax.scatter([x], [min(y, top)], color=color, marker=marker, s=55, zorder=4, clip_on=False)
    ax.grid(True, which="both", alpha=0.25)
    shown = {n for r in results.values() for n, v in r.suggestions.items() if v is not None}
    key: dict[str, Any] = {"color": "#555555", "linestyle": ""}
    rules = [
        Line2D([], [], marker=marker, label=name.replace("minimum", "minimum/10"), **key)
        for name, (_, marker) in SUGGESTION_STYLES.items()
        if name in shown
    ]
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + rules, fontsize=8, loc="upper left", framealpha=0.9)
    ax.set_title(range_tests_title(max_lr), fontsize=10)
    return fig


def range_tests_title(max_lr: float | None) -> str:
    """The title of the range tests' figure (static and interactive)."""
    title = "LR range tests: every rule's suggestion on its curve"
    if max_lr is not None:
        title += f"; chosen max_lr {max_lr:.3g} (by short runs)"
    return title


def plot_short_runs(
    lr_runs: dict[str, dict[float, float]],
    chosen: tuple[str, float] | None = None,
    decay_runs: dict[float, float] | None = None,
    weight_decay: float | None = None,
    *,
    skipped: tuple[float, ...] = (),
    band: tuple[float, float, str] | None = None,
    repeat: tuple[float, float] | None = None,
) -> Figure:
    """The evidence that decided: each short run's final validation loss (log axis) against
    its max_lr, one line per optimizer (left), and against its weight decay (right); the chosen
    point starred. A run that did not finish (NaN loss) is an x on the top edge.

    Args:
        lr_runs: optimizer name -> {max_lr: validation loss}; chosen: (optimizer, max_lr).
        decay_runs: weight decay -> validation loss; weight_decay: the chosen one; skipped:
            the candidates not run (the budget).
        band: (low, high, label): losses within the noise; repeat: (max_lr, validation loss)
            of the run repeated from another seed (which measured the noise).

    Returns:
        A `Figure` with one or two axes.
    """
    panels = 2 if decay_runs else 1
    fig = _figure(figsize=(4.5 * panels + 0.5, 5.0), layout="constrained")
    axes = fig.subplots(1, panels, sharey=True, squeeze=False)[0]
    star = {"marker": "*", "s": 260, "color": "#b8860b", "edgecolor": "black", "zorder": 5}
    failed: list[tuple[Any, float, str]] = []
    ax = axes[0]
    for index, (name, runs) in enumerate(lr_runs.items()):
        color = CURVE_COLORS[index % len(CURVE_COLORS)]
        good = sorted((lr, loss) for lr, loss in runs.items() if math.isfinite(loss))
        if good:
            ax.plot(*zip(*good, strict=True), "o-", color=color, label=name)
        failed += [(ax, lr, color) for lr, loss in runs.items() if not math.isfinite(loss)]
        if (
            chosen is not None
            and chosen[0] == name
            and math.isfinite(runs.get(chosen[1], math.nan))
        ):
            label = f"chosen: {name}, max_lr {chosen[1]:.3g}"
            ax.scatter([chosen[1]], [runs[chosen[1]]], label=label, **star)
    if repeat is not None and math.isfinite(repeat[1]):
        ax.scatter(
            [repeat[0]],
            [repeat[1]],
            marker="o",
            s=60,
            facecolor="none",
            edgecolor="black",
            zorder=4,
            label="the same run, another seed",
        )
    ax.set_xscale("log")
    ax.set_xlabel("max_lr of the short 1cycle run")
    ax.set_ylabel("validation loss")
    ax.set_title("max_lr, per optimizer", fontsize=10)
    if decay_runs:
        right, order = axes[1], sorted(decay_runs)
        finite = [
            (i, decay_runs[wd]) for i, wd in enumerate(order) if math.isfinite(decay_runs[wd])
        ]
        if finite:
            right.plot(*zip(*finite, strict=True), "o-", color="#7b3294", label="weight decay")
        failed += [
            (right, i, "#7b3294") for i, wd in enumerate(order) if not math.isfinite(decay_runs[wd])
        ]
        if weight_decay in decay_runs and math.isfinite(decay_runs[weight_decay]):
            label = f"chosen: weight decay {weight_decay:g}"
            right.scatter(
                [order.index(weight_decay)], [decay_runs[weight_decay]], label=label, **star
            )
        # short labels, turned: five decays such as 3.16228e-05 ran into each other
        right.set_xticks(range(len(order)), [f"{wd:.2g}" for wd in order], rotation=30)
        right.set_xlim(-0.5, len(order) - 0.5)
        note = f"\nnot run (budget): {', '.join(f'{wd:g}' for wd in skipped)}" if skipped else ""
        right.set_xlabel(f"weight decay (at the chosen max_lr){note}")
        right.set_title("weight decay", fontsize=10)
    for each, x, color in failed:  # on the top edge, inside the x range
        if each is ax:
            low, high = each.get_xlim()
            each.set_xlim(min(low, x / 1.3), max(high, x * 1.3))
        each.scatter(
            [x],
            [0.97],
            marker="x",
            s=60,
            color=color,
            zorder=5,
            transform=each.get_xaxis_transform(),
            label="did not finish (NaN)",
        )
    handles: dict[str, Any] = {}
    for each in axes:
        if band is not None:
            each.axhspan(band[0], band[1], color="#999999", alpha=0.2, label=band[2])
        if _log_y(each) and each is ax:
            ax.set_ylabel("validation loss (log scale)")
        each.grid(True, which="both", alpha=0.25)
        for handle, label in zip(*each.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)  # the noise band once for both panels
    # one legend under both panels, long labels wrapped; the layout leaves room for it
    fig.legend(
        handles.values(),
        [textwrap.fill(label, 50) for label in handles],
        fontsize=8,
        loc="outside lower center",
        ncol=2,
    )
    fig.suptitle("Short runs: the validation losses that decided (lower is better)", fontsize=11)
    return fig


def _log_y(ax: Any) -> bool:
    """A log y axis labelled in plain numbers at 1, 2, 3 and 5 of each decade (a loss rarely
    spans more than one decade, where matplotlib's default leaves one label or none); linear
    (False) when the lines hold no value or one <= 0 (a loss that can be negative)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    values = [float(y) for line in ax.lines for y in line.get_ydata() if math.isfinite(y)]
    if not values or min(values) <= 0:
        return False
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    return True
