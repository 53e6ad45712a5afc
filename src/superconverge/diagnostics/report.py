"""The run report: ``report.html`` (self-contained, images embedded) and ``report.md``.

Presentation only: it renders the plan, history and range tests it is given (the run folder's
``plan.json`` and friends are saved and loaded by `superconverge.tuning.plan`), and writes
every file through `superconverge._files.write_atomically`.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from superconverge._files import write_atomically, write_text_atomically

REPORT_FILES = ("report.html", "report.md", "lr_find.png", "schedule.png", "losses.png")


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


def write_report(
    folder: str | Path, plan: Any, history: Any, range_tests: dict[str, Any], title: str = ""
) -> dict[str, Path]:
    """Render the plots and both reports into `folder`; returns the paths written."""
    from superconverge.diagnostics.plots import plot_plan, plot_range_tests
    from superconverge.schedules import Plan

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = {
        "lr_find.png": (
            "LR range tests, one per weight decay",
            _png(plot_range_tests(range_tests)),
        ),
        "losses.png": ("Training and validation loss, LR, accuracy", _png(history.plot())),
    }
    if history.plan:
        schedule = Plan.from_dict(history.plan)
        images["schedule.png"] = ("The 1cycle schedule of the final run", _png(plot_plan(schedule)))
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
    total = sum(step.get("seconds", 0.0) for step in plan.evidence)
    compute = getattr(plan, "compute", None) or {}
    if compute:
        results += [
            ("search samples (training samples processed)", f"{compute['search_samples']:,}"),
            ("final run samples", f"{compute['final_run_samples']:,}"),
            ("recipe / final run", f"{compute['x_final_run']:.2f}x (budget {compute['budget']:g})"),
        ]
    environment = getattr(plan, "environment", None) or {}
    results += [(f"environment: {k}", v) for k, v in environment.items()]
    heading = title or "superconverge tune report"

    md = [
        f"# {heading}",
        "",
        f"**Verdict: {verdict.get('kind', '?')}** — {verdict.get('explanation', '')}",
        "",
        f"Next step: {verdict.get('next_step', '')}",
        "",
        "## Chosen values",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    md += [f"| {name} | {_value(value)} |" for name, value in chosen]
    md += ["", "## Results", "", "| result | value |", "|---|---|"]
    md += [f"| {name} | {_value(value)} |" for name, value in results if value is not None]
    md += ["", f"## Evidence (total {total:.1f} s)", ""]
    md += ["| step | decision | why | seconds | samples |", "|---|---|---|---|---|"]
    md += [
        f"| {s['step']} | {_value(s['decision'])} | {s['why']} | {s['seconds']:.1f} | "
        f"{s.get('samples', 0):,} |"
        for s in plan.evidence
    ]
    md += [""]
    for name, (caption, _) in images.items():
        md += [f"![{caption}]({name})", ""]
    written["report.md"] = write_text_atomically(folder / "report.md", "\n".join(md))

    def table(rows: list[tuple[str, Any]]) -> str:
        body = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_value(v))}</td></tr>"
            for k, v in rows
            if v is not None
        )
        return f"<table>{body}</table>"

    evidence_rows = "".join(
        f"<tr><td>{html.escape(s['step'])}</td><td>{html.escape(_value(s['decision']))}</td>"
        f"<td>{html.escape(str(s['why']))}</td><td>{s['seconds']:.1f}</td>"
        f"<td>{s.get('samples', 0):,}</td></tr>"
        for s in plan.evidence
    )
    figures = "".join(
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,'
        f'{base64.b64encode(data).decode()}"><figcaption>{html.escape(caption)}</figcaption></figure>'
        for caption, data in images.values()
    )
    kind = html.escape(str(verdict.get("kind", "?")))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(heading)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 960px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: left; vertical-align: top; }}
th {{ background: #f4f4f4; }}
.verdict {{ padding: 0.8em 1em; border-left: 6px solid #1f5fa8; background: #eef4fb; }}
.verdict.overfitting, .verdict.diverged, .verdict.unstable {{ border-color: #b2182b; background: #fbeeee; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; border: 1px solid #ddd; }}
figcaption {{ color: #555; font-size: 0.9em; }}
</style></head><body>
<h1>{html.escape(heading)}</h1>
<div class="verdict {kind}"><strong>Verdict: {kind}</strong> — {html.escape(str(verdict.get("explanation", "")))}<br>
Next step: {html.escape(str(verdict.get("next_step", "")))}</div>
<h2>Chosen values</h2>{table(chosen)}
<h2>Results</h2>{table(results)}
<h2>Evidence (total {total:.1f} s)</h2>
<table><tr><th>step</th><th>decision</th><th>why</th><th>seconds</th><th>samples</th></tr>{evidence_rows}</table>
<h2>Plots</h2>{figures}
</body></html>
"""
    written["report.html"] = write_text_atomically(folder / "report.html", page)
    return written
