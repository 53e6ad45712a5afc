"""The run report: ``report.html`` (self-contained, images embedded) and ``report.md``.

Presentation only: it renders the plan, history and range tests it is given (the run folder's
``plan.json`` and friends are saved and loaded by `superconverge.tuning.plan`), and writes
every file through `superconverge._files.write_atomically`. With plotly installed (the
``[interactive]`` extra) the HTML shows interactive plots (`superconverge.diagnostics.interactive`,
plotly.js inlined once) and keeps the PNGs for printing and for browsers without JavaScript.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from superconverge._display import averaged_weights_line
from superconverge._files import FolderLock, write_atomically, write_text_atomically

REPORT_FILES = (
    "report.html",
    "report.md",
    "lr_find.png",
    "short_runs.png",
    "schedule.png",
    "losses.png",
)


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _bytes_writer(data: bytes) -> Callable[[IO[bytes]], int]:
    return lambda handle: handle.write(data)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_value(v) for v in value) + ")"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(v)}" for k, v in value.items())
    return str(value)


def _loss(run: Any) -> float:
    """A short run's validation loss: a record (``{"val_loss": ...}``) or the number itself."""
    value = run.get("val_loss", math.nan) if isinstance(run, dict) else run
    return math.nan if value is None else float(value)


def _by_value(runs: dict[str, Any]) -> dict[float, float]:
    return {float(key): _loss(run) for key, run in runs.items()}


def _closest(values: Any, target: float) -> float | None:
    """The value within 0.1% of `target` (the evidence keys are rounded to 4 digits)."""
    near = [v for v in values if v > 0 and abs(v / target - 1.0) < 1e-3]
    return near[0] if near else None


def _short_run_evidence(plan: Any) -> dict[str, Any] | None:
    """The arguments of `plot_short_runs` read from the plan's evidence; None when it holds no
    short run. Folders written before the optimizers were compared hold only ``short_runs``."""
    records = {record.get("step"): record.get("details") or {} for record in plan.evidence}
    bounds, decay = records.get("lr_bounds", {}), records.get("weight_decay", {})
    name = plan.optimizer or "your optimizer"
    if bounds.get("optimizers"):
        lr_runs = {n: _by_value(o.get("short_runs", {})) for n, o in bounds["optimizers"].items()}
    else:
        lr_runs = {name: _by_value(bounds.get("short_runs", {}))}
    lr_runs = {n: runs for n, runs in lr_runs.items() if runs}
    decay_runs = _by_value(decay.get("runs", {}))
    if not lr_runs and not decay_runs:
        return None
    chosen_lr = _closest(lr_runs.get(name, {}), plan.max_lr) if plan.max_lr else None
    chosen = None if chosen_lr is None else (name, chosen_lr)
    band, repeat = None, None
    noise = bounds.get("noise") or {}
    margin = bounds.get("margin")
    if noise.get("relative") is not None and margin and chosen_lr is not None:
        at = lr_runs[name][chosen_lr]
        label = f"noise: ±{margin:.1%} of the chosen run (measured {noise['relative']:.1%})"
        band = (at * (1.0 - margin), at * (1.0 + margin), label)
        repeat = (float(noise["max_lr"]), float(noise["val_losses"][-1]))
    return {
        "lr_runs": lr_runs,
        "chosen": chosen,
        "decay_runs": decay_runs,
        "weight_decay": plan.weight_decay,
        "skipped": tuple(float(wd) for wd in decay.get("skipped", ())),
        "band": band,
        "repeat": repeat,
    }


def _images(plan: Any, history: Any, range_tests: dict[str, Any]) -> dict[str, tuple[str, bytes]]:
    """file name -> (caption, PNG); the verdict's curve first, then the decisions."""
    from superconverge.diagnostics.plots import (
        plot_history,
        plot_plan,
        plot_range_tests,
        plot_short_runs,
    )
    from superconverge.schedules import Plan

    verdict = plan.results.get("verdict") or None
    name = plan.optimizer or "your optimizer"
    images = {
        "losses.png": (
            "The final run: loss on a log scale (the curve the verdict reads), the LR and the "
            "momentum below it",
            _png(plot_history(history, verdict)),
        ),
    }
    if range_tests:  # a `fit --plan` folder has none: no empty axes
        images["lr_find.png"] = (
            "LR range tests, one per optimizer compared: every rule's suggestion on its curve, "
            "the chosen max_lr (solid line) and 1cycle range (shaded)",
            _png(plot_range_tests(range_tests, plan.max_lr, plan.min_lr, f"({name})")),
        )
    short_runs = _short_run_evidence(plan)
    if short_runs is not None:
        images["short_runs.png"] = (
            "Short runs: the validation losses that chose max_lr, the optimizer and the weight "
            "decay (chosen values starred)",
            _png(plot_short_runs(**short_runs)),
        )
    if history.plan:
        schedule = Plan.from_dict(history.plan)
        images["schedule.png"] = ("The 1cycle schedule of the final run", _png(plot_plan(schedule)))
    return images


def _interactive(plan: Any, history: Any, range_tests: dict[str, Any]) -> dict[str, str]:
    """PNG file name -> the same picture as an interactive plotly ``<div>`` (and its script)."""
    from superconverge.diagnostics import interactive
    from superconverge.schedules import Plan

    name = plan.optimizer or "your optimizer"
    verdict = plan.results.get("verdict") or None
    figures = {"losses.png": interactive.history_figure(history, verdict)}
    if range_tests:
        figures["lr_find.png"] = interactive.range_tests_figure(
            range_tests, plan.max_lr, plan.min_lr, f"({name})"
        )
    short_runs = _short_run_evidence(plan)
    if short_runs is not None:
        figures["short_runs.png"] = interactive.short_runs_figure(**short_runs)
    if history.plan:
        figures["schedule.png"] = interactive.plan_figure(Plan.from_dict(history.plan))
    return {
        png: interactive.to_html(figure, "plot-" + png.removesuffix(".png").replace("_", "-"))
        for png, figure in figures.items()
    }


def _plotly_wanted(interactive: bool | None) -> bool:
    from superconverge.diagnostics import interactive as module

    if interactive is None:
        return module.available()
    if not isinstance(interactive, bool):
        raise TypeError(
            f"interactive must be True, False or None (when plotly is installed), "
            f"got {interactive!r}"
        )
    if interactive and not module.available():
        raise ImportError("interactive=True needs plotly: pip install 'superconverge[interactive]'")
    return interactive


# on screen the interactive plot replaces its PNG; in print, or without JavaScript, the PNG shows
_INTERACTIVE_HEAD = """.static {{ display: none; }} .interactive {{ border: 1px solid #ddd; }}
@media print {{ .interactive {{ display: none; }} .static {{ display: inline; }} }}
</style><noscript><style>.interactive {{ display: none; }} .static {{ display: inline; }}</style>
</noscript><script>{plotly_js}</script><style>"""


def _plotly_js() -> str:
    from superconverge.diagnostics.interactive import plotly_js

    return plotly_js()


def render_report(folder: str | Path, *, interactive: bool | None = None) -> dict[str, Path]:
    """Render ``report.html``, ``report.md`` and the plots of a run folder from its
    ``plan.json``, ``history.json`` and ``range_tests.json`` (which it does not change): what
    ``superconverge report DIR`` does, for a folder written by ``tune(..., out_dir=DIR)`` (which
    writes no report), ``superconverge tune`` or ``fit --plan``. Returns the paths written.

    Example:
        >>> plan = sc.tune(make_model, train, val, epochs=5, out_dir="runs/x")  # doctest: +SKIP
        >>> sc.render_report("runs/x")["report.html"]  # doctest: +SKIP
        PosixPath('runs/x/report.html')

    Raises:
        FileNotFoundError: the folder lacks plan.json or history.json (named in the message).
        ValueError: a file does not read as its kind (the file and the field named).
        FolderBusyError: another process is writing the folder (a run, a ``tune --resume``).
        ImportError: `interactive` is True and plotly is not installed.
    """
    from superconverge.tuning.plan import load_run

    plan, history, range_tests = load_run(folder)
    title = f"{plan.data}, {plan.model}" if plan.data else ""
    with FolderLock(folder):  # one writer per folder: not beside a run still writing there
        return write_report(folder, plan, history, range_tests, title, interactive=interactive)


def write_report(
    folder: str | Path,
    plan: Any,
    history: Any,
    range_tests: dict[str, Any],
    title: str = "",
    *,
    interactive: bool | None = None,
) -> dict[str, Path]:
    """Render the plots and both reports into `folder`; returns the paths written.

    Also renders a folder written by an older version (no ``compute`` or ``environment``, no
    ``samples`` in the evidence, one range test per weight decay).

    Args:
        interactive: interactive plots (plotly) in ``report.html``: None (the default) when
            plotly is installed, True to require it, False for the PNGs alone (a file of a few
            hundred kB instead of about 5 MB).

    Raises:
        ImportError: `interactive` is True and plotly is not installed.
    """
    folder = Path(folder)
    live = _interactive(plan, history, range_tests) if _plotly_wanted(interactive) else {}
    folder.mkdir(parents=True, exist_ok=True)
    images = _images(plan, history, range_tests)
    written = {}
    for name, (_, data) in images.items():
        written[name] = write_atomically(folder / name, _bytes_writer(data))

    verdict = plan.results.get("verdict", {})
    test = plan.results.get("test", {})
    chosen = [
        ("batch size", plan.batch_size),
        ("max_lr", plan.max_lr),
        ("min_lr", plan.min_lr),
        ("weight decay", plan.weight_decay),
        ("momentum", plan.momentum),
        ("epochs", plan.epochs),
        ("policy", plan.policy),
        ("optimizer", plan.optimizer or "(a callable)"),
    ]
    results = [
        ("status", plan.results.get("status")),
        ("final validation loss", plan.results.get("final_val_loss")),
        ("final validation accuracy", plan.results.get("final_val_accuracy")),
    ]
    metrics = plan.results.get("final_val_metrics") or {}
    results += [(f"final validation {k}", v) for k, v in metrics.items() if k != "accuracy"]
    results += [(f"test {k}", v) for k, v in test.items()]
    averaged = plan.results.get("weight_average")
    if averaged:  # which weights the scores are of, as the CLI's `weights:` line says
        results.append(("weights kept", averaged_weights_line(averaged)))
    total = sum(step.get("seconds", 0.0) for step in plan.evidence)
    compute = getattr(plan, "compute", None) or {}
    compute_names: list[str] = []
    if compute:
        results += [
            ("search samples (training samples processed)", f"{compute['search_samples']:,}"),
            ("final run samples", f"{compute['final_run_samples']:,}"),
            (
                "search samples handed to the final run",
                f"{compute.get('handed_to_final_run_samples', 0):,}",
            ),
            (
                "recipe / one run of the epochs asked for",
                f"{compute['x_final_run']:.2f}x (budget {compute['budget']:g})"
                + (
                    f"; overspent: the least search that decides is about "
                    f"{compute['floor_samples']:,} samples at this batch"
                    if compute.get("floor_samples")
                    else ""
                ),
            ),
        ]
        compute_names = [name for name, _ in results[-4:]]
    recorded = getattr(plan, "environment", None) or {}
    # a folder of `superconverge fit --plan`: the choices and their evidence are the tune run's
    made_by = recorded.get("plan_made_by")
    origin = (
        f"This run re-trained a saved plan (`{recorded.get('command', 'fit --plan')}`): the "
        f"chosen values, how they were chosen and the search's compute below come from the tune "
        f"run that made the plan (`{made_by}`), not from this run; the results are this run's."
        if made_by
        else ""
    )
    if made_by and compute:
        results = [
            (f"tune run's {name}" if name in compute_names else name, value)
            for name, value in results
        ]
    environment = list(recorded.items())
    if not environment:
        environment = [("recorded", "no: this run folder predates the environment record")]
    heading = title or "superconverge tune report"
    steps = [
        (
            str(s.get("step", "?")),
            _value(s.get("decision")),
            str(s.get("why", "")),
            f"{s.get('seconds', 0.0):.1f}",
            f"{s.get('samples', 0):,}",
        )
        for s in plan.evidence
    ]
    captions = {name: caption for name, (caption, _) in images.items()}

    def md_figure(name: str) -> list[str]:
        return [f"![{captions[name]}]({name})", ""] if name in images else []

    md = [
        f"# {heading}",
        "",
        f"**Verdict: {verdict.get('kind', '?')}** — {verdict.get('explanation', '')}",
        "",
        f"Next step: {verdict.get('next_step', '')}",
        "",
        *md_figure("losses.png"),
        "## Chosen values",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    md += [f"| {name} | {_value(value)} |" for name, value in chosen]
    md += ["", "## How they were chosen", ""]
    md += [origin, ""] if origin else []
    md += [*md_figure("lr_find.png"), *md_figure("short_runs.png")]
    md += [f"Evidence (the stages' seconds: {total:.1f} s in all):", ""]
    md += ["| step | decision | why | seconds | samples |", "|---|---|---|---|---|"]
    md += ["| " + " | ".join(row) + " |" for row in steps]
    md += ["", "## Results", "", "| result | value |", "|---|---|"]
    md += [f"| {name} | {_value(value)} |" for name, value in results if value is not None]
    md += ["", *md_figure("schedule.png"), "## Environment", "", "| | |", "|---|---|"]
    md += [f"| {name} | {_value(value)} |" for name, value in environment]
    md += [""]
    written["report.md"] = write_text_atomically(folder / "report.md", "\n".join(md))

    def table(rows: list[tuple[str, Any]]) -> str:
        body = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_value(v))}</td></tr>"
            for k, v in rows
            if v is not None
        )
        return f"<table>{body}</table>"

    def figure(name: str) -> str:
        if name not in images:
            return ""
        caption, data = images[name]
        static = ' class="static"' if name in live else ""
        plot = f'<div class="interactive">{live[name]}</div>' if name in live else ""
        return (
            f'<figure>{plot}<img alt="{html.escape(caption)}" src="data:image/png;base64,'
            f'{base64.b64encode(data).decode()}"{static}><figcaption>{html.escape(caption)}'
            "</figcaption>"
            "</figure>"
        )

    evidence_rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in steps
    )
    kind = html.escape(str(verdict.get("kind", "?")))
    plotly_head = _INTERACTIVE_HEAD.format(plotly_js=_plotly_js()) if live else ""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(heading)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 960px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: left; vertical-align: top; }}
th {{ background: #f4f4f4; }}
td:nth-child(4), td:nth-child(5) {{ text-align: right; white-space: nowrap; }}
.verdict {{ padding: 0.8em 1em; border-left: 6px solid #1f5fa8; background: #eef4fb; }}
.verdict.overfitting, .verdict.diverged, .verdict.unstable {{ border-color: #b2182b; background: #fbeeee; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; border: 1px solid #ddd; }}
figcaption {{ color: #555; font-size: 0.9em; }}
.environment td {{ font-family: ui-monospace, monospace; }}
{plotly_head}</style></head><body>
<h1>{html.escape(heading)}</h1>
<div class="verdict {kind}"><strong>Verdict: {kind}</strong> — {html.escape(str(verdict.get("explanation", "")))}<br>
Next step: {html.escape(str(verdict.get("next_step", "")))}</div>
{figure("losses.png")}
<h2>Chosen values</h2>{table(chosen)}
<h2>How they were chosen</h2>
{f"<p><em>{html.escape(origin)}</em></p>" if origin else ""}
{figure("lr_find.png")}{figure("short_runs.png")}
<h3>Evidence (the stages' seconds: {total:.1f} s in all)</h3>
<table><tr><th>step</th><th>decision</th><th>why</th><th>seconds</th><th>samples</th></tr>{evidence_rows}</table>
<h2>Results</h2>{table(results)}
{figure("schedule.png")}
<h2>Environment</h2><div class="environment">{table(environment)}</div>
</body></html>
"""
    written["report.html"] = write_text_atomically(folder / "report.html", page)
    return written
