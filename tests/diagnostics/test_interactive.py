"""The report's interactive plots (plotly): what each figure shows, that the page needs no
network, the PNG fallback without plotly, and (with Chromium) that every plot renders."""

import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from superconverge.diagnostics import interactive
from superconverge.diagnostics.report import write_report
from superconverge.finder.result import RangeTestResult
from superconverge.schedules import one_cycle
from superconverge.training.history import History
from superconverge.tuning.plan import TunePlan

PLOT_IDS = ("plot-losses", "plot-lr-find", "plot-short-runs", "plot-schedule")


def _curve(shift: float, suggestions: dict) -> RangeTestResult:
    lrs = tuple(10 ** (-5 + i / 10) for i in range(50))
    losses = tuple(2.0 - 0.02 * i + (0.0 if i < 40 else 0.3 * (i - 40) ** 2) + shift
                   for i in range(50))  # fmt: skip
    return RangeTestResult(lrs=lrs, losses=losses, smoothed_losses=losses, stop_reason="end",
                           suggestions=suggestions, max_lr=1e-1, min_lr=1e-2, rule="valley",
                           reason="test")  # fmt: skip


def _run(val_loss: float = 0.4):
    """A small tune run with every picture: two range tests, short runs (one that did not
    finish) with the noise band, weight decays, a loss curve and a 1cycle schedule."""
    range_tests = {
        "sgd": _curve(0.0, {"valley": 1e-2, "steepest": 3e-3, "minimum": 0.05, "divergence": 2.0}),
        "adamw": _curve(0.1, {"valley": 1e-3, "minimum": None}),
    }
    bounds = {"optimizers": {"sgd": {"short_runs": {"0.05": 0.6, "0.1": 0.5, "0.3": "NaN"}},
                             "adamw": {"short_runs": {"0.001": 0.48, "0.01": 0.7}}},
              "noise": {"max_lr": 0.1, "val_losses": [0.5, 0.53], "relative": 0.06},
              "margin": 0.1}  # fmt: skip
    decay = {"runs": {"0.0001": {"val_loss": 0.5}, "0": {"val_loss": 0.55}}, "skipped": [0.001]}
    verdict = {"kind": "good", "explanation": "fine <really>", "next_step": "keep these settings"}
    plan = TunePlan(epochs=3, batch_size=16, max_lr=0.1, min_lr=0.01, weight_decay=1e-4,
                    momentum=(0.95, 0.85), results={"status": "completed", "verdict": verdict},
                    evidence=[{"step": "lr_bounds", "decision": 0.1, "why": "short runs",
                               "seconds": 1.0, "details": bounds},
                              {"step": "weight_decay", "decision": 1e-4, "why": "lowest",
                               "seconds": 1.0, "details": decay}])  # fmt: skip
    schedule = one_cycle(30, max_lr=0.1)
    lrs, moms = schedule.values()
    history = History(step_losses=[2.0 * 0.95**i for i in range(30)],
                      step_lrs=[[lr] for lr in lrs], step_momenta=[[m] for m in moms],
                      status="completed", plan=schedule.to_dict(),
                      epochs=[{"epoch": e, "train_loss": 1.0 / e, "val_loss": val_loss + 0.1 / e,
                               "val_accuracy": 0.8 + 0.05 * e} for e in (1, 2, 3)])  # fmt: skip
    return plan, history, range_tests


def _traces(figure, **match):
    return [t for t in figure.data if all(getattr(t, k) == v for k, v in match.items())]


def test_the_range_tests_show_every_rule_and_the_chosen_max_lr():
    pytest.importorskip("plotly")
    _, _, range_tests = _run()
    figure = interactive.range_tests_figure(range_tests, 0.1, 0.01, "(sgd)")
    assert figure.layout.xaxis.type == "log"
    (valley,) = _traces(figure, name="valley")
    assert list(valley.x) == [1e-2, 1e-3]  # one per curve, on each curve's colour
    assert len(set(valley.marker.color)) == 2 and "%{x:.3~g}" in valley.hovertemplate
    (divergence,) = _traces(figure, name="divergence")
    assert divergence.y[0] == pytest.approx(figure.layout.yaxis.range[1])  # blew up: top edge
    assert not _traces(figure, name="minimum/10")[0].x[1:]  # adamw's None is not drawn
    (chosen,) = [t for t in figure.data if t.name.startswith("chosen max_lr")]
    assert list(chosen.x) == [0.1, 0.1] and chosen.name == "chosen max_lr 0.1 (sgd)"
    (shaded,) = figure.layout.shapes
    assert (shaded.x0, shaded.x1, shaded.name) == (0.01, 0.1, "chosen 1cycle range")
    raw = _traces(figure, name="sgd (raw)")[0]
    assert raw.visible == "legendonly" and len(raw.y) == 50


def test_the_short_runs_show_each_candidate_the_chosen_ones_and_the_noise_band():
    pytest.importorskip("plotly")
    from superconverge.diagnostics.report import _short_run_evidence

    plan, _, _ = _run()
    figure = interactive.short_runs_figure(**_short_run_evidence(plan))
    (sgd,) = _traces(figure, name="sgd")
    assert list(sgd.x) == [0.05, 0.1] and list(sgd.y) == [0.6, 0.5]  # the NaN run is not a point
    (failed,) = [t for t in figure.data if t.marker.symbol == "x"]
    assert list(failed.x) == [0.3] and failed.y[0] > 0.7  # above every finite loss
    assert "did not finish" in failed.hovertemplate
    stars = {t.name: (t.x[0], t.y[0]) for t in figure.data if t.marker.symbol == "star"}
    assert stars == {"chosen: sgd, max_lr 0.1": (0.1, 0.5),
                     "chosen: weight decay 0.0001": ("0.0001", 0.5)}  # fmt: skip
    assert list(_traces(figure, name="weight decay")[0].x) == ["0", "0.0001"]
    assert "not run (budget): 0.001" in figure.layout.xaxis2.title.text
    bands = figure.layout.shapes
    assert len(bands) == 2 and (bands[0].y0, bands[0].y1) == pytest.approx((0.45, 0.55))
    assert bands[0].name.startswith("noise: ±10.0% of the chosen run")
    assert figure.layout.yaxis.type == figure.layout.yaxis2.type == "log"


@pytest.mark.parametrize(("val_loss", "scale"), [(0.4, "log"), (-2.0, "linear")])
def test_the_history_has_the_loss_on_a_log_axis_with_lr_and_momentum_below(val_loss, scale):
    pytest.importorskip("plotly")
    _, history, _ = _run(val_loss)
    figure = interactive.history_figure(history, {"kind": "good", "explanation": "a <b> c"})
    assert figure.layout.yaxis.type == scale
    names = [t.name for t in figure.data]
    assert names == ["train loss (smoothed, per step)", "validation loss", "validation accuracy",
                     "lr", "momentum"]  # fmt: skip
    assert [t.yaxis for t in figure.data] == ["y", "y", "y2", "y3", "y4"]
    assert figure.data[0].y[0] == pytest.approx(2.0) and len(figure.data[3].y) == 30
    assert max(figure.data[3].y) == pytest.approx(0.1) and min(figure.data[4].y) == 0.85
    assert "a &lt;b&gt; c" in figure.layout.title.text  # plotly reads tags in labels
    (note,) = figure.layout.annotations
    lowest = val_loss + 0.1 / 3
    assert note.y == pytest.approx(math.log10(lowest) if scale == "log" else lowest)


def test_a_binary_tasks_accuracy_has_its_panel_in_both_figures():
    # --loss bce_with_logits records val_binary_accuracy: it had no panel (only val_accuracy had)
    pytest.importorskip("plotly")
    pytest.importorskip("matplotlib")
    from superconverge.diagnostics.plots import plot_history

    _, history, _ = _run()
    for row in history.epochs:
        row["val_binary_accuracy"] = row.pop("val_accuracy")
    figure = interactive.history_figure(history)
    (panel,) = _traces(figure, name="validation binary accuracy")
    assert panel.yaxis == "y2" and list(panel.y) == pytest.approx([0.85, 0.9, 0.95])
    assert "final validation binary accuracy 0.9500" in figure.layout.title.text
    drawn = plot_history(history)
    assert [a.get_ylabel() for a in drawn.axes][1] == "val binary accuracy"


def test_a_long_run_is_thinned_to_a_few_thousand_points_per_line():
    pytest.importorskip("plotly")
    history = History(step_losses=[1.0] * 10_001, step_lrs=[[0.1]] * 10_001, status="completed",
                      epochs=[{"epoch": 1, "val_loss": 0.5}])  # fmt: skip
    figure = interactive.history_figure(history)
    assert len(figure.data[0].x) <= interactive.MAX_POINTS + 1
    assert figure.data[0].x[-1] == pytest.approx(10_000 / 10_001)  # the last step is kept


def test_the_report_embeds_every_plot_and_plotly_js_once(tmp_path):
    pytest.importorskip("plotly")
    written = write_report(tmp_path, *_run(), "a title")
    page = written["report.html"].read_text()
    for plot_id in PLOT_IDS:
        assert page.count(f'id="{plot_id}"') == 1
        assert re.search(rf'Plotly\.newPlot\(\s*"{plot_id}"', page), plot_id
    assert page.count(interactive.plotly_js()[:300]) == 1  # inlined once, not per figure
    assert not re.search(r"<script[^>]*\ssrc=", page)  # offline: nothing fetched
    assert not re.search(r"<link[^>]*\shref=", page)
    assert page.count('class="static"') == 4  # the PNGs stay, for print and no JavaScript
    assert page.count("<noscript>") == 1
    size = written["report.html"].stat().st_size
    assert 4_800_000 < size < 5_400_000  # plotly.js once (4.8 MB) and the PNGs


def test_without_plotly_the_report_is_the_pngs_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(interactive, "available", lambda: False)
    written = write_report(tmp_path, *_run())
    page = written["report.html"].read_text()
    assert "<script" not in page and "plotly" not in page.lower()
    assert len(re.findall(r'<img alt="[^"]*" src="data:image/png;base64,', page)) == 4
    assert written["report.html"].stat().st_size < 1_000_000
    with pytest.raises(ImportError, match=r"pip install 'superconverge\[interactive\]'"):
        write_report(tmp_path, *_run(), interactive=True)


def test_interactive_false_leaves_plotly_out_and_a_wrong_type_is_named(tmp_path):
    page = write_report(tmp_path, *_run(), interactive=False)["report.html"].read_text()
    assert "<script" not in page
    with pytest.raises(TypeError, match=r"interactive must be True, False or None.*got 'yes'"):
        write_report(tmp_path, *_run(), interactive="yes")


# every plotly div drawn (an svg.main-svg inside), and a hover shows values; under a policy
# that forbids every request, so a plot that needed the network would fail here
PROBE = """<script>window.addEventListener('load', () => setTimeout(() => {
  const plots = [...document.querySelectorAll('.plotly-graph-div')];
  const drawn = plots.filter(p => p.querySelector('svg.main-svg'));
  const hovered = plots.filter(p => {
    Plotly.Fx.hover(p, [{curveNumber: 0, pointNumber: 1}]);
    return /[0-9]/.test(p.querySelector('.hoverlayer').textContent);
  });
  document.title = 'plots:' + plots.length + ':drawn:' + drawn.length + ':hover:' + hovered.length;
}, 500));</script></body>"""
CSP = ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
       "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:\">")  # fmt: skip


def test_every_plot_renders_offline_in_headless_chromium(tmp_path):
    pytest.importorskip("plotly")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    written = write_report(tmp_path, *_run(), "interactive report")
    page = written["report.html"].read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace('<meta charset="utf-8">', '<meta charset="utf-8">' + CSP, 1)
                     .replace("</body>", PROBE))  # fmt: skip
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]  # fmt: skip
    dom = subprocess.run([chromium, *flags, "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "<title>plots:4:drawn:4:hover:4</title>" in dom.stdout, dom.stderr[-2000:]
    shot = tmp_path / "interactive.png"
    subprocess.run([chromium, *flags, "--window-size=1100,3600", f"--screenshot={shot}",
                    written["report.html"].as_uri()], capture_output=True, timeout=120)  # fmt: skip
    assert shot.stat().st_size > 50_000
    Path("/tmp/superconverge-interactive-screenshot.png").write_bytes(shot.read_bytes())
