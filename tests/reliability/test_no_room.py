"""A write that finds no room, for real: the process's file-size limit (``ulimit -f``, set in
the child with `resource.setrlimit`; Python ignores SIGXFSZ, so the write fails with EFBIG as a
full disk fails with ENOSPC). The CLI names the file and the limit, says what it kept and the
command that continues, and that command finishes the run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.plans import digits_plan

resource = pytest.importorskip("resource")  # POSIX only

ROOT = Path(__file__).resolve().parents[2]
LIMIT = "file too large for this process's file-size limit (ulimit -f) while writing"


def superconverge(*args, limit_kib=None):
    def limited():
        size = limit_kib * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "superconverge", *args, "--threads", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=None if limit_kib is None else limited,
    )


def test_tune_stopped_by_the_file_size_limit_names_it_and_resume_finishes(tmp_path):
    out = tmp_path / "run"
    # 150 KiB: the journal and the history fit, the final run's checkpoint (about 165 kB) does not
    # the short runs' journal grows before the final run's first checkpoint
    failed = superconverge("tune", "--lr-search", "short-runs", "--epochs", "2", "--out", str(out),
                           limit_kib=150)  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    (line,) = failed.stderr.strip().splitlines()[-1:]
    assert "Traceback" not in failed.stderr
    assert f"{LIMIT} {out / 'checkpoint.pt'}; the stages decided (batch_size, lr_bounds" in line
    assert line.endswith(
        f"kept in {out}; once you raise the file-size limit (ulimit -f unlimited), continue "
        f"with: superconverge tune --resume {out}"
    ), line
    resumed = superconverge("tune", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((out / "plan.json").read_text())["results"]["status"] == "completed"


def test_tune_stopped_before_it_measured_anything_says_to_run_the_command_again(tmp_path):
    out = tmp_path / "run"
    failed = superconverge("tune", "--lr-search", "short-runs", "--epochs", "2", "--out", str(out),
                           limit_kib=12)  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert "Traceback" not in failed.stderr
    assert failed.stderr.strip().endswith(
        f"{LIMIT} {out / 'journal.json'}; nothing measured yet; once you raise the file-size "
        "limit (ulimit -f unlimited), run the same command again"
    ), failed.stderr[-1000:]
    assert not out.exists()  # the folder it made held nothing to resume: removed


def test_a_report_that_does_not_fit_says_the_run_is_saved_and_how_to_render_it(tmp_path):
    out = tmp_path / "run"
    # 4 MiB: every file but the report (about 5 MB with plotly, 400 kB without)
    failed = superconverge("tune", "--epochs", "2", "--out", str(out), limit_kib=4096)
    if failed.returncode == 0:
        pytest.skip("the report fits in 4 MiB (plotly not installed)")
    assert failed.returncode == 1, failed.stderr
    assert failed.stderr.strip().endswith(
        f"{LIMIT} {out / 'report.html'}: the run finished and is saved in {out}; once you raise "
        f"the file-size limit (ulimit -f unlimited), render its report with: superconverge "
        f"report {out}"
    ), failed.stderr[-1000:]
    assert (out / "plan.json").is_file() and (out / "checkpoint.pt").is_file()


def test_fit_stopped_by_the_file_size_limit_names_it_and_says_how_to_start_again(tmp_path):
    plan = digits_plan(tmp_path, epochs=2)
    out = tmp_path / "out"
    failed = superconverge("fit", "--plan", str(plan), "--out", str(out), limit_kib=150)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert failed.stderr.strip().splitlines()[-1] == (
        f"superconverge fit: error: {LIMIT} {out / 'checkpoint.pt'}; no checkpoint of an epoch "
        "was saved, nothing kept; once you raise the file-size limit (ulimit -f unlimited), "
        f"start again with: superconverge fit --plan {plan} --out {out} --threads 1 --force"
    )
    assert superconverge("fit", "--plan", str(plan), "--out", str(out), "--force").returncode == 0
