"""The report is presentation: it imports nothing above it and writes each file atomically."""

import subprocess
import sys

import pytest

from superconverge.diagnostics.report import REPORT_FILES, write_report
from superconverge.finder.result import RangeTestResult
from superconverge.training.history import History
from superconverge.tuning.plan import TunePlan


def test_diagnostics_import_no_runner_or_recipe():
    code = (
        "import sys; import superconverge.diagnostics.report, superconverge.diagnostics.plots, "
        "superconverge.diagnostics.verdicts; print(' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    above = {"superconverge.tuning", "superconverge.training", "superconverge.finder", "torch"}
    assert not loaded & above


def _run():
    lrs = tuple(10 ** (-5 + i / 10) for i in range(40))
    losses = tuple(2.0 - 0.01 * i for i in range(40))
    curve = RangeTestResult(lrs=lrs, losses=losses, smoothed_losses=losses, stop_reason="end",
                            suggestions={"minimum": 1e-3}, max_lr=1e-3, min_lr=1e-4,
                            rule="minimum", reason="test")  # fmt: skip
    history = History(step_losses=[1.0, 0.8, 0.6], step_lrs=[[0.1], [0.2], [0.1]],
                      step_momenta=[[0.9], [0.85], [0.9]], status="completed",
                      epochs=[{"epoch": 0, "train_loss": 0.8, "val_loss": 0.7}])  # fmt: skip
    verdict = {"kind": "good", "explanation": "fine", "next_step": "keep these settings"}
    plan = TunePlan(epochs=1, batch_size=16, max_lr=0.2, min_lr=0.02, weight_decay=0.0,
                    momentum=(0.95, 0.85), results={"status": "completed", "verdict": verdict},
                    evidence=[{"step": "batch_size", "decision": 16, "why": "given",
                               "seconds": 1.5, "details": {}}])  # fmt: skip
    return plan, history, {"weight decay 0": curve}


def test_write_report_renders_every_file_and_leaves_no_temporary_ones(tmp_path):
    pytest.importorskip("matplotlib")
    plan, history, curves = _run()
    written = write_report(tmp_path, plan, history, curves, "a title")
    assert set(written) == {"report.html", "report.md", "lr_find.png", "losses.png"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(written)  # no *.partial left
    assert set(written) <= set(REPORT_FILES)
    markdown = (tmp_path / "report.md").read_text()
    assert "# a title" in markdown and "| batch_size | 16 | given | 1.5 |" in markdown


def test_the_short_runs_that_decided_are_read_from_the_evidence():
    from superconverge.diagnostics.report import _short_run_evidence

    bounds = {"optimizers": {"sgd": {"short_runs": {"0.05": 0.6, "0.1": 0.5}},
                             "adamw": {"short_runs": {"0.001": 0.48, "0.01": "NaN"}}},
              "noise": {"max_lr": 0.001, "val_losses": [0.48, 0.52], "relative": 0.0833},
              "margin": 0.1}  # fmt: skip
    decay = {"runs": {"0.0001": {"val_loss": 0.5}, "0": {"val_loss": 0.55}}, "skipped": [0.001]}
    plan = TunePlan(epochs=1, batch_size=16, max_lr=0.1, min_lr=0.01, weight_decay=1e-4,
                    momentum=(0.95, 0.85),
                    evidence=[{"step": "lr_bounds", "details": bounds},
                              {"step": "weight_decay", "details": decay}])  # fmt: skip
    found = _short_run_evidence(plan)
    assert found["lr_runs"]["sgd"] == {0.05: 0.6, 0.1: 0.5}
    assert found["lr_runs"]["adamw"][0.001] == 0.48 and found["lr_runs"]["adamw"][0.01] != 0.0
    assert found["chosen"] == ("sgd", 0.1)  # sgd beat by less than the noise: kept
    assert found["band"][:2] == pytest.approx((0.45, 0.55))  # 0.5 ± 10%
    assert found["repeat"] == (0.001, 0.52)
    assert found["decay_runs"] == {0.0001: 0.5, 0.0: 0.55} and found["skipped"] == (0.001,)


@pytest.mark.parametrize(("val_loss", "scale"), [(0.5, "log"), (-0.5, "linear")])
def test_the_loss_is_on_a_log_axis_unless_it_goes_negative(val_loss, scale):
    pytest.importorskip("matplotlib")
    from superconverge.diagnostics.plots import plot_history, plot_short_runs

    history = History(step_losses=[1.0, 0.9, 0.8], step_lrs=[[0.1]] * 3, status="completed",
                      step_momenta=[[0.9]] * 3,
                      epochs=[{"epoch": 1, "train_loss": 0.8, "val_loss": val_loss}])  # fmt: skip
    assert plot_history(history).axes[0].get_yscale() == scale
    short_runs = plot_short_runs({"sgd": {0.01: 1.0, 0.1: val_loss}}, ("sgd", 0.1))
    assert short_runs.axes[0].get_yscale() == scale


def test_render_report_is_the_report_command_for_a_folder_tune_wrote_from_python(tmp_path):
    # tune(out_dir=...) writes the run's files but no report: a notebook renders it so
    pytest.importorskip("matplotlib")
    import superconverge as sc
    from superconverge.tuning.plan import save_run

    plan, history, curves = _run()
    save_run(tmp_path, plan, history, curves)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    written = sc.render_report(tmp_path, interactive=False)
    assert {"report.html", "report.md", "lr_find.png", "losses.png"} <= set(written)
    assert "| batch_size | 16 | given | 1.5 |" in (tmp_path / "report.md").read_text()
    assert {name: (tmp_path / name).read_bytes() for name in before} == before  # only read
    with pytest.raises(FileNotFoundError, match=r"is not a tune or fit run folder: plan.json, "):
        sc.render_report(tmp_path / "elsewhere")
    (tmp_path / "plan.json").write_text('{"epochs": "3"}')
    with pytest.raises(ValueError, match=r"^plan.json: "):
        sc.render_report(tmp_path)


def test_the_results_say_which_weights_the_scores_are_of(tmp_path):
    # a user's check: the printed summary had a `weights:` line, the report only the final
    # run's "why" cell
    pytest.importorskip("matplotlib")
    plan, history, curves = _run()
    plan.results["weight_average"] = {"kept": "average", "steps": 40, "val_loss_average": 0.41,
                                      "val_loss_last": 0.52, "gain": 0.11, "noise": 0.03}  # fmt: skip
    write_report(tmp_path, plan, history, curves, "a title")
    markdown = (tmp_path / "report.md").read_text()
    assert "| weights kept | the mean of the last 40 steps" in markdown
    assert "weights kept" in (tmp_path / "report.html").read_text()


def test_a_refits_compute_rows_read_as_the_tune_runs(tmp_path):
    # an auditor's check: a fit --plan folder's report read "tune run's of them handed to the
    # final run", the prefix pasted onto a label that needed the row above
    pytest.importorskip("matplotlib")
    plan, history, curves = _run()
    plan.compute = {"search_samples": 100, "final_run_samples": 200, "x_final_run": 1.5,
                    "budget": 1.0, "handed_to_final_run_samples": 50}  # fmt: skip
    plan.environment = {"command": "superconverge fit --plan p.json", "plan_made_by": "tune"}
    write_report(tmp_path, plan, history, curves, "a title")
    markdown = (tmp_path / "report.md").read_text()
    assert "| tune run's search samples handed to the final run | 50 |" in markdown
    assert "tune run's of them" not in markdown
