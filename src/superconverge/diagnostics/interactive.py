"""Interactive versions of the report's plots (plotly): zoom, pan, and the values on hover.

The same pictures as `superconverge.diagnostics.plots`, drawn from the same data, for the HTML
report. plotly is optional (the ``[interactive]`` extra) and imported inside the functions;
`available()` says whether it is importable, and the report falls back to its PNGs when not.
The report inlines `plotly_js()` once and each figure's `to_html()` after it, so the page opens
offline and carries plotly.js (about 4.8 MB) once, however many figures it holds.
"""

from __future__ import annotations

import html
import importlib.util
import math
import textwrap
from typing import Any

from superconverge.diagnostics.plots import (
    CURVE_COLORS,
    LR_COLOR,
    MOMENTUM_COLOR,
    POLICY_TITLES,
    SUGGESTION_STYLES,
    accuracy_key,
    history_smoothing,
    range_tests_title,
)

# matplotlib marker -> plotly symbol, for SUGGESTION_STYLES
SYMBOLS = {"v": "triangle-down", "o": "circle", "s": "square", "x": "x"}
CHOSEN_COLOR, RANGE_COLOR, BAND_COLOR = "#b8860b", "#ffd92f", "#999999"
MAX_POINTS = 3000  # per line: a long run's per-step curves are thinned to this many points
# no plotly logo, no link to Chart Studio (a network service); the camera button saves a PNG
CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "showSendToCloud": False,
    "modeBarButtonsToRemove": ["sendDataToCloud"],
}
STAR = {"symbol": "star", "size": 17, "color": CHOSEN_COLOR, "line": {"color": "black", "width": 1}}


def available() -> bool:
    """Whether plotly is importable (``pip install 'superconverge[interactive]'``)."""
    return importlib.util.find_spec("plotly") is not None


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as error:
        raise ImportError(
            "interactive plots need plotly: pip install 'superconverge[interactive]'"
        ) from error
    return go


def plotly_js() -> str:
    """plotly.js itself, to inline in a ``<script>`` once per page (about 4.8 MB)."""
    _plotly()
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def to_html(figure: Any, div_id: str) -> str:
    """The figure as a ``<div>`` and the script that draws it; needs `plotly_js()` before it."""
    import plotly.io

    height = figure.layout.height or 450
    return str(
        plotly.io.to_html(
            figure,
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            config=CONFIG,
            default_width="100%",
            default_height=f"{height}px",
        )
    )


def _text(value: Any) -> str:
    """Plain text for a plotly label: plotly reads a few HTML tags in labels, so escape them."""
    return html.escape(str(value), quote=False)


def _round(values: Any) -> list[float | None]:
    """6 significant digits (the JSON stays small); None (a gap) for a value that is not finite."""
    return [float(f"{v:.6g}") if math.isfinite(v) else None for v in values]


def _thin(count: int) -> list[int]:
    """Indices of at most MAX_POINTS + 1 evenly spaced points of `count`, first and last kept.

    Example:
        >>> _thin(3), len(_thin(6002)), _thin(6002)[-3:]  # every 3rd of 6002, and the last
        ([0, 1, 2], 2002, [5997, 6000, 6001])
    """
    indices = list(range(0, count, max(1, math.ceil(count / MAX_POINTS))))
    return [*indices, count - 1] if indices and indices[-1] != count - 1 else indices


def _log_y(values: Any) -> bool:
    """A log axis when every finite value is > 0 (a loss that can be negative stays linear)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return bool(finite) and min(finite) > 0


def _layout(figure: Any, title: str, height: int) -> None:
    figure.update_layout(
        title={"text": title, "font": {"size": 14}, "x": 0.01},
        template="plotly_white",
        height=height,
        margin={"l": 60, "r": 20, "t": 70, "b": 50},
        legend={"font": {"size": 11}},
        hoverlabel={"namelength": -1},
    )


def _hover(x: str, y: str) -> str:
    return f"%{{fullData.name}}<br>{x} %{{x:.3~g}}<br>{y} %{{y:.4~g}}<extra></extra>"


def range_tests_figure(
    results: dict[str, Any],
    max_lr: float | None = None,
    min_lr: float | None = None,
    chosen_by: str = "",
) -> Any:
    """`plots.plot_range_tests`, interactive: each range test's smoothed loss (the raw loss one
    click away in the legend), every rule's suggestion on its curve, the chosen `max_lr` and
    the 1cycle range down to `min_lr`."""
    go = _plotly()
    fig = go.Figure()
    lows, starts = [], []
    marks: dict[str, list[tuple[float, float, str, str]]] = {}
    for index, (label, result) in enumerate(results.items()):
        color = CURVE_COLORS[index % len(CURVE_COLORS)]
        points = [(lr, s) for lr, s in zip(result.lrs, result.smoothed_losses, strict=True)
                  if math.isfinite(s)]  # fmt: skip
        if not points:
            continue
        name = _text(label)
        fig.add_scatter(x=_round(p[0] for p in points), y=_round(p[1] for p in points),
                        name=name, line={"color": color, "width": 2}, legendgroup=name,
                        hovertemplate=_hover("lr", "smoothed loss"))  # fmt: skip
        fig.add_scatter(x=_round(result.lrs), y=_round(result.losses), name=f"{name} (raw)",
                        line={"color": color, "width": 1}, opacity=0.5, visible="legendonly",
                        legendgroup=name, hovertemplate=_hover("lr", "loss"))  # fmt: skip
        lows.append(min(s for _, s in points))
        starts.append(points[0][1])
        for rule, value in result.suggestions.items():
            if value is not None:
                _, y = min(points, key=lambda p: abs(math.log(p[0]) - math.log(value)))
                marks.setdefault(rule, []).append((value, y, color, name))
    span = None
    if lows:
        low, high = min(lows), max(starts)
        span = [low - 0.05 * (high - low) - 1e-12, high + 0.5 * (high - low) + 1e-12]
    top = span[1] if span else math.inf  # a suggestion where the loss blew up: the top edge
    for rule, marked in marks.items():
        shown = "minimum/10" if rule == "minimum" else rule
        fig.add_scatter(
            x=[m[0] for m in marked], y=_round(min(m[1], top) for m in marked), mode="markers",
            cliponaxis=False, name=_text(shown), customdata=[[m[3], m[1]] for m in marked],
            marker={"symbol": SYMBOLS.get(SUGGESTION_STYLES.get(rule, ("", "o"))[1], "circle"),
                    "size": 11, "color": [m[2] for m in marked],
                    "line": {"color": "black", "width": 0.5}},
            hovertemplate=f"{_text(shown)} (%{{customdata[0]}})<br>suggests lr %{{x:.3~g}}"
            "<br>smoothed loss there %{customdata[1]:.4~g}<extra></extra>",
        )  # fmt: skip
    if max_lr is not None:
        if min_lr is not None:
            fig.add_vrect(x0=min_lr, x1=max_lr, fillcolor=RANGE_COLOR, opacity=0.3, line_width=0,
                          layer="below", showlegend=True, name="chosen 1cycle range")  # fmt: skip
        y = span or [min(lows, default=0.0), max(starts, default=1.0)]
        fig.add_scatter(x=[max_lr, max_lr], y=y, mode="lines",
                        line={"color": CHOSEN_COLOR, "width": 2.5},
                        name=_text(f"chosen max_lr {max_lr:.3g} {chosen_by}".rstrip()),
                        hovertemplate=f"chosen max_lr {max_lr:.3g}<extra></extra>")  # fmt: skip
    fig.update_xaxes(type="log", title_text="learning rate", exponentformat="power")
    fig.update_yaxes(title_text="training loss (smoothed)", range=span)
    _layout(fig, range_tests_title(max_lr), 480)
    return fig


def short_runs_figure(
    lr_runs: dict[str, dict[float, float]],
    chosen: tuple[str, float] | None = None,
    decay_runs: dict[float, float] | None = None,
    weight_decay: float | None = None,
    *,
    skipped: tuple[float, ...] = (),
    band: tuple[float, float, str] | None = None,
    repeat: tuple[float, float] | None = None,
) -> Any:
    """`plots.plot_short_runs`, interactive: each short run's validation loss against its max_lr
    (one line per optimizer) and against its weight decay, the chosen ones starred, the noise
    band shaded; a run that did not finish (NaN) is an x above the others."""
    _plotly()
    from plotly.subplots import make_subplots

    panels = 2 if decay_runs else 1
    titles = ["max_lr, per optimizer", "weight decay"][:panels]
    fig = make_subplots(rows=1, cols=panels, shared_yaxes=True, subplot_titles=titles,
                        horizontal_spacing=0.06)  # fmt: skip
    values = [v for runs in lr_runs.values() for v in runs.values()]
    values += list((decay_runs or {}).values())
    finite = [v for v in values if math.isfinite(v)]
    top = max(finite) * 1.15 if finite else 1.0  # where a run that did not finish is drawn
    failed = {"mode": "markers", "marker": {"symbol": "x", "size": 11}, "showlegend": False,
              "hovertemplate": "%{customdata}: did not finish (NaN)<extra></extra>"}  # fmt: skip
    for index, (name, runs) in enumerate(lr_runs.items()):
        color = CURVE_COLORS[index % len(CURVE_COLORS)]
        good = sorted((lr, loss) for lr, loss in runs.items() if math.isfinite(loss))
        fig.add_scatter(x=[p[0] for p in good], y=[p[1] for p in good], mode="lines+markers",
                        name=_text(name), line={"color": color}, row=1, col=1,
                        hovertemplate=_hover("max_lr", "validation loss"))  # fmt: skip
        bad = [lr for lr, loss in runs.items() if not math.isfinite(loss)]
        if bad:
            fig.add_scatter(x=bad, y=[top] * len(bad), customdata=[f"{name}, max_lr {lr:.3g}"
                            for lr in bad], marker_color=color, row=1, col=1, **failed)  # fmt: skip
        if (
            chosen is not None
            and chosen[0] == name
            and math.isfinite(runs.get(chosen[1], math.nan))
        ):
            fig.add_scatter(x=[chosen[1]], y=[runs[chosen[1]]], mode="markers", marker=STAR,
                            name=_text(f"chosen: {name}, max_lr {chosen[1]:.3g}"), row=1,
                            col=1, hovertemplate=_hover("max_lr", "validation loss"))  # fmt: skip
    if repeat is not None and math.isfinite(repeat[1]):
        fig.add_scatter(x=[repeat[0]], y=[repeat[1]], mode="markers", row=1, col=1,
                        name="the same run, another seed", hovertemplate=_hover("max_lr", "loss"),
                        marker={"symbol": "circle-open", "size": 12, "color": "black"})  # fmt: skip
    fig.update_xaxes(type="log", title_text="max_lr of the short 1cycle run", row=1, col=1,
                     exponentformat="power")  # fmt: skip
    if decay_runs:
        order = sorted(decay_runs)
        labels = [f"{wd:g}" for wd in order]
        ran = [(f"{wd:g}", decay_runs[wd]) for wd in order if math.isfinite(decay_runs[wd])]
        fig.add_scatter(x=[r[0] for r in ran], y=[r[1] for r in ran], mode="lines+markers",
                        name="weight decay", line={"color": "#7b3294"}, row=1, col=2,
                        hovertemplate="weight decay %{x}<br>validation loss %{y:.4~g}"
                        "<extra></extra>")  # fmt: skip
        unfinished = [f"{wd:g}" for wd in order if not math.isfinite(decay_runs[wd])]
        if unfinished:
            fig.add_scatter(x=unfinished, y=[top] * len(unfinished), marker_color="#7b3294",
                            customdata=[f"weight decay {wd}" for wd in unfinished], row=1, col=2,
                            **failed)  # fmt: skip
        if weight_decay in decay_runs and math.isfinite(decay_runs[weight_decay]):
            fig.add_scatter(x=[f"{weight_decay:g}"], y=[decay_runs[weight_decay]], marker=STAR,
                            mode="markers", name=f"chosen: weight decay {weight_decay:g}",
                            hovertemplate="weight decay %{x}<br>validation loss %{y:.4~g}"
                            "<extra></extra>", row=1, col=2)  # fmt: skip
        note = f"<br>not run (budget): {', '.join(f'{wd:g}' for wd in skipped)}" if skipped else ""
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=labels,
                         title_text=f"weight decay (at the chosen max_lr){note}", row=1,
                         col=2)  # fmt: skip
    if band is not None:
        for col in range(1, panels + 1):
            fig.add_hrect(y0=band[0], y1=band[1], fillcolor=BAND_COLOR, opacity=0.2, line_width=0,
                          layer="below", row=1, col=col, showlegend=col == 1,
                          name=_text(band[2]))  # fmt: skip
    log = _log_y(values)
    fig.update_yaxes(type="log" if log else "linear")  # every panel: they share the axis
    fig.update_yaxes(title_text="validation loss (log scale)" if log else "validation loss",
                     row=1, col=1)  # fmt: skip
    _layout(fig, "Short runs: the validation losses that decided (lower is better)", 480)
    fig.update_layout(legend={"orientation": "h", "y": -0.25}, margin={"b": 110})
    return fig


def history_figure(history: Any, verdict: dict[str, Any] | None = None) -> Any:
    """`plots.plot_history`, interactive: the training loss (smoothed, per step) and the
    validation loss (per epoch) on a log axis, the lowest validation loss marked; below them,
    sharing the epoch axis, the validation accuracy (when recorded), the LR and the momentum."""
    _plotly()
    from plotly.subplots import make_subplots

    from superconverge.finder.smoothing import LossSmoother

    key = accuracy_key(history)
    momenta = [m[-1] for m in history.step_momenta if m and m[-1] is not None]
    rows = [("loss", 3.2)] + [("accuracy", 1.5)] * (key is not None)
    rows += [("lr", 1.3)] * bool(history.step_lrs) + [("momentum", 1.3)] * bool(momenta)
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        row_heights=[h for _, h in rows])  # fmt: skip
    row = {name: index + 1 for index, (name, _) in enumerate(rows)}
    steps = len(history.step_losses)
    per_epoch = steps / max(1, len(history.epochs)) if history.epochs else float(max(steps, 1))
    smoother, smoothed = LossSmoother(history_smoothing(steps)), []
    for value in history.step_losses:
        if not math.isfinite(value):
            break  # as the PNG: the curve ends where the loss stopped being finite
        smoothed.append(smoother.add(value))
    kept = _thin(len(smoothed))
    fig.add_scatter(x=_round(i / per_epoch for i in kept), y=_round(smoothed[i] for i in kept),
                    name="train loss (smoothed, per step)", line={"color": LR_COLOR, "width": 1.5},
                    hovertemplate=_hover("epoch", "train loss"), row=1, col=1)  # fmt: skip
    val = [(r["epoch"], r["val_loss"]) for r in history.epochs if "val_loss" in r]
    val = [(e, v) for e, v in val if math.isfinite(v)]
    log = _log_y(smoothed + [v for _, v in val])
    if val:
        fig.add_scatter(x=[e for e, _ in val], y=[v for _, v in val], mode="lines+markers",
                        name="validation loss", line={"color": MOMENTUM_COLOR},
                        hovertemplate=_hover("epoch", "validation loss"), row=1, col=1)  # fmt: skip
        best = min(val, key=lambda point: point[1])
        # an annotation on a log axis is placed by the log of its value (plotly's rule)
        said = f"lowest validation loss {best[1]:.4g} (epoch {best[0]:g})"
        fig.add_annotation(x=best[0], y=math.log10(best[1]) if log else best[1], text=said,
                           showarrow=True, arrowhead=2, ax=-40, ay=-30, font={"size": 11},
                           row=1, col=1)  # fmt: skip
    fig.update_yaxes(type="log" if log else "linear", row=1, col=1,
                     title_text="loss (log scale)" if log else "loss")  # fmt: skip
    if key is not None:
        name = key.replace("_", " ")  # "val accuracy", "val binary accuracy"
        accuracy = [(r["epoch"], r.get(key, math.nan)) for r in history.epochs]
        fig.add_scatter(x=[e for e, _ in accuracy], y=_round(a for _, a in accuracy),
                        mode="lines+markers", name=name.replace("val", "validation"),
                        showlegend=False, line={"color": "#008837"}, row=row["accuracy"], col=1,
                        hovertemplate=_hover("epoch", name[4:]))  # fmt: skip
        fig.update_yaxes(title_text=name, row=row["accuracy"], col=1)
    kept = _thin(len(history.step_lrs))
    if history.step_lrs:
        fig.add_scatter(x=_round(i / per_epoch for i in kept), showlegend=False, name="lr",
                        y=_round(history.step_lrs[i][-1] for i in kept), line={"color": LR_COLOR},
                        hovertemplate=_hover("epoch", "lr"), row=row["lr"], col=1)  # fmt: skip
        fig.update_yaxes(title_text="learning rate", exponentformat="power", row=row["lr"], col=1)
    if momenta:
        kept = _thin(len(history.step_momenta))
        moms = [m[-1] if m and m[-1] is not None else math.nan for m in history.step_momenta]
        fig.add_scatter(x=_round(i / per_epoch for i in kept), y=_round(moms[i] for i in kept),
                        name="momentum", showlegend=False, line={"color": MOMENTUM_COLOR},
                        hovertemplate=_hover("epoch", "momentum"), row=row["momentum"],
                        col=1)  # fmt: skip
        fig.update_yaxes(title_text="momentum", row=row["momentum"], col=1)
    fig.update_xaxes(title_text="epoch", row=len(rows), col=1)
    title = f"training: {history.status}"
    if key is not None and key in history.epochs[-1]:
        title += f", final {key.replace('val_', 'validation ').replace('_', ' ')}"
        title += f" {history.epochs[-1][key]:.4f}"
    if verdict:
        said = f"Verdict: {verdict.get('kind', '?')}: {verdict.get('explanation', '')}"
        title = "<br>".join(_text(line) for line in textwrap.wrap(said, 110)[:3])
    height = int(110 + 110 * sum(h for _, h in rows))
    _layout(fig, title, height)
    fig.update_layout(hovermode="x", legend={"x": 1, "xanchor": "right", "y": 1},
                      margin={"t": 40 + 20 * title.count("<br>") + 30})  # fmt: skip
    return fig


def plan_figure(plan: Any, steps: int | None = None) -> Any:
    """`plots.plot_plan`, interactive: the LR and, when cycled, the momentum against the step."""
    _plotly()
    from plotly.subplots import make_subplots

    lrs, moms = plan.values(steps)
    rows = 1 if moms is None else 2
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.06)
    kept = _thin(len(lrs))
    fig.add_scatter(x=list(kept), y=_round(lrs[i] for i in kept), name="learning rate",
                    line={"color": LR_COLOR, "width": 2}, row=1, col=1,
                    hovertemplate=_hover("step", "lr"))  # fmt: skip
    fig.update_yaxes(title_text="learning rate", exponentformat="power", row=1, col=1)
    if moms is not None:
        fig.add_scatter(x=list(kept), y=_round(moms[i] for i in kept), name="momentum",
                        line={"color": MOMENTUM_COLOR, "width": 2}, row=2, col=1,
                        hovertemplate=_hover("step", "momentum"))  # fmt: skip
        fig.update_yaxes(title_text="momentum", row=2, col=1)
    fig.update_xaxes(title_text="step (optimizer update)", row=rows, col=1)
    peak = plan.max_lr if plan.max_lr is not None else max(lrs)
    name = POLICY_TITLES.get(plan.policy, plan.policy)
    _layout(fig, _text(f"{name}: max lr {peak:g}, {len(lrs)} steps"), 200 + 200 * rows)
    fig.update_layout(showlegend=False, hovermode="x unified")
    return fig
