import base64
import json
import re

import pytest

from superconverge.cli.main import main


def test_a_folder_without_a_run_is_one_line_naming_the_missing_files(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "is not a tune or fit run folder" in error and "plan.json" in error


def test_a_fit_that_did_not_finish_is_named_with_how_to_continue_it(tmp_path, capsys):
    # a user's check: an interrupted fit --plan folder was "not a tune or fit run folder:
    # plan.json missing" (an interrupted tune's says how to go on)
    from tests.cli.plans import digits_plan

    plan, out = digits_plan(tmp_path), tmp_path / "out"
    assert main(["fit", "--plan", str(plan), "--out", str(out)]) == 0
    (out / "plan.json").unlink()  # as a fit stopped after its first epoch leaves its folder
    capsys.readouterr()
    assert main(["report", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"superconverge report: error: FOLDER {out} holds a fit that did not finish (1 epoch "
        f"saved; continue it with superconverge fit --plan PLAN --out {out} --resume, with the "
        f"plan and flags it was started with, then render its report with superconverge report "
        f"{out})"  # fit --plan writes no report: "written when it ends" was an auditor's trap
    )


def _old_style_run_folder(folder):
    """A run folder as the first recipe wrote it: no compute or environment in plan.json, no
    samples in the evidence, one range test per weight decay, short runs as records."""
    lrs = [10 ** (-5 + i / 10) for i in range(40)]
    losses = [2.3 - 0.02 * i for i in range(40)]
    curve = {"lrs": lrs, "losses": losses, "smoothed_losses": losses, "stop_reason": "end",
             "suggestions": {"steepest": 0.01, "valley": 0.001, "minimum": 0.003},
             "max_lr": 0.003, "min_lr": 0.0003, "rule": "minimum", "reason": "minimum/10"}  # fmt: skip
    verdict = {"kind": "good", "explanation": "fine", "next_step": "keep these settings"}
    evidence = [
        {"step": "batch_size", "decision": 32, "why": "timed", "seconds": 1.0, "details": {}},
        {"step": "lr_bounds", "decision": 0.006, "why": "short runs", "seconds": 2.0,
         "details": {"short_runs": {"0.003": {"val_loss": 0.5}, "0.006": {"val_loss": 0.4},
                                    "0.01": {"val_loss": "NaN"}}}},
        {"step": "weight_decay", "decision": 0.0001, "why": "lowest", "seconds": 3.0,
         "details": {"runs": {"0.001": {"val_loss": 0.45}, "0.0001": {"val_loss": 0.4},
                              "0": {"val_loss": 0.42}}}},
    ]  # fmt: skip
    plan = {"epochs": 2, "batch_size": 32, "max_lr": 0.006, "min_lr": 0.0006,
            "weight_decay": 0.0001, "momentum": [0.95, 0.85], "policy": "smith", "seed": 0,
            "data": "digits", "model": "mlp", "model_options": {}, "evidence": evidence,
            "results": {"status": "completed", "verdict": verdict, "final_val_loss": 0.3}}  # fmt: skip
    history = {"step_losses": [1.0, 0.8, 0.6, 0.5], "step_lrs": [[0.001], [0.006], [0.003], [0.0001]],
               "step_momenta": [[0.95], [0.85], [0.9], [0.95]], "status": "completed",
               "epochs": [{"epoch": 1, "train_loss": 0.8, "val_loss": 0.5},
                          {"epoch": 2, "train_loss": 0.5, "val_loss": 0.3}]}  # fmt: skip
    tests = {f"weight decay {wd} (bounds)": curve for wd in ("0.001", "0.0001", "0")}
    for name, data in (("plan.json", plan), ("history.json", history), ("range_tests.json", tests)):
        (folder / name).write_text(json.dumps(data))


def test_a_run_folder_from_before_the_pictures_is_rendered(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    _old_style_run_folder(tmp_path)
    assert main(["report", str(tmp_path)]) == 0, capsys.readouterr().err
    page = (tmp_path / "report.html").read_text()
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3  # losses, range tests, short runs (no schedule was saved)
    assert all(base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" for data in images)
    assert "<h2>Environment</h2>" in page and "predates the environment record" in page
    markdown = (tmp_path / "report.md").read_text()
    assert "| lr_bounds | 0.006 | short runs | 2.0 | 0 |" in markdown
    assert "![Short runs" in markdown


def test_static_leaves_the_interactive_plots_out(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    _old_style_run_folder(tmp_path)
    assert main(["report", str(tmp_path), "--static"]) == 0, capsys.readouterr().err
    page = (tmp_path / "report.html").read_text()
    assert "<script" not in page and page.count("<img ") == 3
    assert (tmp_path / "report.html").stat().st_size < 1_000_000


def test_a_folder_being_written_by_a_run_is_not_rendered_into(tmp_path, capsys):
    # report re-rendered report.html and the plots beside a run still writing the folder (a
    # tune --resume writing its own report): the one writer that took no lock
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("matplotlib")
    _old_style_run_folder(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from superconverge._files import FolderLock; "
         f"lock = FolderLock({str(tmp_path)!r}).acquire(); print('held', flush=True); "
         "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")},
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["report", str(tmp_path), "--static"]) == 1
        assert f"{tmp_path} is being written by pid {holder.pid} " in capsys.readouterr().err
        assert not (tmp_path / "report.html").exists()
        # a running fit has no plan.json yet: it was called "not a tune or fit run folder"
        (tmp_path / "plan.json").rename(tmp_path / "plan.json.kept")
        assert main(["report", str(tmp_path), "--static"]) == 1
        err = capsys.readouterr().err
        assert f"{tmp_path} is being written by pid {holder.pid} " in err
        assert err.endswith(f"; run superconverge report {tmp_path} once it has ended, if no "
                            "report is there\n") and "missing" not in err  # fmt: skip
        (tmp_path / "plan.json.kept").rename(tmp_path / "plan.json")
    finally:
        holder.communicate("")
    assert main(["report", str(tmp_path), "--static"]) == 0
