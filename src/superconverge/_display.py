"""Short text and small HTML tables for results in a console or a notebook (`__repr__`,
`_repr_html_`): a result prints in a few hundred characters, not thousands of raw numbers.

Plain Python (stdlib only), shared by `RangeTestResult`, `History` and `TunePlan`.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any


def number(value: Any) -> str:
    """A value in a few characters: floats to 3 significant digits, pairs as ``(a, b)``.

    Example:
        >>> number(0.070223), number(None), number(float("nan")), number((0.95, 0.85)), number(3)
        ('0.0702', 'none', 'nan', '(0.95, 0.85)', '3')
    """
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3g}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(number(item) for item in value) + ")"
    return str(value)


def plural(count: int, word: str) -> str:
    """``"1 epoch"``, ``"2 epochs"``.

    Example:
        >>> plural(1, "epoch"), plural(3, "measurement")
        ('1 epoch', '3 measurements')
    """
    return f"{count} {word}{'' if count == 1 else 's'}"


def averaged_weights_line(outcome: dict[str, Any]) -> str:
    """Which weights a fit with `WeightAverage` ended with, from its outcome (as
    ``plan.results["weight_average"]``).

    Example:
        >>> averaged_weights_line({"kept": "average", "steps": 2573, "val_loss_average": 0.4446,
        ...                        "val_loss_last": 0.5377, "gain": 0.093, "noise": 0.028})
        'the mean of the last 2573 steps (validation loss 0.4446; the last weights 0.5377)'
        >>> averaged_weights_line({"kept": "last", "steps": 1379, "val_loss_average": 0.04385,
        ...                        "val_loss_last": 0.04553, "gain": 0.0017, "noise": 0.0101})
        'the last (validation loss 0.04553; the mean of the last 1379 steps 0.04385, a gain within its noise)'
    """
    steps = outcome.get("steps", 0)
    if "val_loss_average" not in outcome:  # keep="always"
        return f"the mean of the last {steps} steps"
    average, last = outcome["val_loss_average"], outcome["val_loss_last"]
    if outcome.get("kept") == "average":
        return (
            f"the mean of the last {steps} steps (validation loss {average:.4g}; the last "
            f"weights {last:.4g})"
        )
    why = "a gain within its noise" if outcome.get("gain", 0.0) > 0 else "no gain"
    return (
        f"the last (validation loss {last:.4g}; the mean of the last {steps} steps "
        f"{average:.4g}, {why})"
    )


def clip(text: str, limit: int) -> str:
    """`text` on one line, cut to at most `limit` characters (with an ellipsis).

    Example:
        >>> clip("a long\\nreason why", 10)
        'a long re…'
    """
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pairs(values: Iterable[tuple[str, Any]]) -> str:
    """``name value`` pairs joined by commas, the values by `number`."""
    return ", ".join(f"{name} {number(value)}" for name, value in values)


def html_table(
    title: str,
    rows: Sequence[Sequence[Any]],
    header: Sequence[str] | None = None,
    *,
    max_rows: int = 12,
) -> str:
    """A small HTML table (escaped) with a bold `title` above it; beyond `max_rows` rows, the
    first few, a ``…`` row and the last ones."""
    shown: list[Sequence[Any] | None] = list(rows)
    if len(shown) > max_rows:
        head = max_rows // 3
        shown = [*rows[:head], None, *rows[len(rows) - (max_rows - head - 1) :]]
    width = max([len(header or ())] + [len(row) for row in rows] or [1])
    lines = [f"<div><b>{html.escape(title)}</b>", "<table>"]
    if header:
        cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        lines.append(f"<tr>{cells}</tr>")
    for row in shown:
        if row is None:
            lines.append(f'<tr><td colspan="{width}">…</td></tr>')
            continue
        cells = "".join(
            f"<td>{html.escape(value if isinstance(value, str) else number(value))}</td>"
            for value in row
        )
        lines.append(f"<tr>{cells}</tr>")
    lines.append("</table></div>")
    return "\n".join(lines)


def decision(value: Any) -> str:
    """A stage's decision in a few characters: a dict as ``name value`` pairs, else `number`.

    Example:
        >>> decision({"optimizer": "sgd", "max_lr": 0.11703972447383781}), decision(0.0001)
        ('optimizer sgd, max_lr 0.117', '0.0001')
    """
    if isinstance(value, dict):
        return pairs(value.items())
    return number(value)


def short_plan(plan: Any) -> str:
    """`TunePlan`'s repr: the chosen values, the final validation loss, the test accuracy and
    the verdict."""
    parts = [
        f"batch_size={plan.batch_size}",
        f"max_lr={number(plan.max_lr)}",
        f"min_lr={number(plan.min_lr)}",
        f"weight_decay={number(plan.weight_decay)}",
        f"momentum={number(plan.momentum)}",
        f"epochs={plan.epochs}",
        f"policy={plan.policy!r}",
        f"optimizer={plan.optimizer!r}",
    ]
    results = plan.results or {}
    if results.get("status") not in (None, "completed"):
        parts.append(f"status={results['status']!r}")
    if results.get("final_val_loss") is not None:
        parts.append(f"val_loss {number(results['final_val_loss'])}")
    test = results.get("test") or {}
    shown = next((name for name in ("accuracy", "binary_accuracy") if name in test), None)
    if shown is not None:
        parts.append(f"test {shown} {number(test[shown])}")
    elif "loss" in test:
        parts.append(f"test loss {number(test['loss'])}")
    verdict = results.get("verdict") or {}
    if "kind" in verdict:
        parts.append(f"verdict={clip(verdict['kind'], 20)!r}")
    return f"TunePlan({', '.join(parts)})"


def plan_html(plan: Any) -> str:
    """`TunePlan`'s notebook table: the chosen values, each stage's decision and why, results."""
    chosen = [
        ("batch_size", plan.batch_size),
        ("max_lr", plan.max_lr),
        ("min_lr", plan.min_lr),
        ("weight_decay", plan.weight_decay),
        ("momentum", plan.momentum),
        ("epochs", plan.epochs),
        ("policy", plan.policy),
        ("optimizer", number(plan.optimizer)),
    ]
    parts = [html_table("TunePlan", chosen, max_rows=len(chosen))]
    if plan.evidence:
        stages = [
            (
                str(step.get("step", "")),
                decision(step.get("decision")),
                clip(str(step.get("why", "")), 200),
                f"{step.get('seconds', math.nan):.1f} s",
            )
            for step in plan.evidence
        ]
        parts.append(html_table("evidence", stages, ("stage", "decision", "why", "time")))
    results = plan.results or {}
    if results:
        rows: list[tuple[str, str]] = [("status", str(results.get("status")))]
        rows.append(("final val_loss", number(results.get("final_val_loss"))))
        rows += [
            (f"val {k}", number(v)) for k, v in (results.get("final_val_metrics") or {}).items()
        ]
        rows += [(f"test {k}", number(v)) for k, v in (results.get("test") or {}).items()]
        verdict = results.get("verdict") or {}
        if verdict:
            rows.append(("verdict", f"{verdict.get('kind')}: {verdict.get('explanation', '')}"))
            rows.append(("next", str(verdict.get("next_step", ""))))
        parts.append(html_table("results", rows, max_rows=len(rows)))
    return "\n".join(parts)


# user:password@ in a URL (an Optuna storage such as postgresql://user:password@host/db)
_URL_PASSWORD = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):[^@\s/]*@")


def without_passwords(text: str) -> str:
    """`text` with the password of every ``scheme://user:password@`` URL in it as ``***``: a
    command line recorded in a file that people share (plan.json, the report, the folder's
    lock) names the storage, not its password.

    Example:
        >>> without_passwords("tune --study postgresql://ann:s3cr%40t@db:5432/runs --epochs 3")
        'tune --study postgresql://ann:***@db:5432/runs --epochs 3'
        >>> without_passwords("tune --study sqlite:///runs/x/study.db")
        'tune --study sqlite:///runs/x/study.db'
    """
    return _URL_PASSWORD.sub(r"\g<scheme>:***@", text)


def as_given(value: object) -> object:
    """A setting as the user gave it: a checkpoint's JSON list (momentum) as the tuple it was."""
    return tuple(value) if isinstance(value, list) else value
