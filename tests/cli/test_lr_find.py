import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from superconverge.cli.main import main


def test_lr_find_on_digits_prints_bounds_and_writes_png_and_json(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "lr-find",
                "--data",
                "digits",
                "--model",
                "mlp",
                "--out",
                str(out),
                "--num-steps",
                "60",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "max_lr" in printed and "why:" in printed
    data = json.loads((out / "lr_find.json").read_text())
    assert len(data["lrs"]) == len(data["losses"]) > 10
    assert (out / "lr_find.png").read_bytes()[:4] == b"\x89PNG"


def test_existing_results_are_not_overwritten_without_force(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "lr_find.json").write_text("precious")
    run = subprocess.run(
        [sys.executable, "-m", "superconverge", "lr-find", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "pass --force" in run.stderr and "Traceback" not in run.stderr
    assert (out / "lr_find.json").read_text() == "precious"


def test_model_that_does_not_fit_the_data_is_one_line(tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "superconverge",
            "lr-find",
            "--model",
            "resnet9",
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "superconverge lr-find: error: --model resnet9 needs 3x32x32 inputs; the data has 1x8x8 "
        "(use mlp, or data of that shape)"
    )
    assert not (tmp_path / "x").exists()


def test_a_loader_of_the_users_own_keeps_its_batch_size_and_says_so(tmp_path, capsys):
    # a user's check: --batch-size 128 with --data returning DataLoaders of batch 32 printed
    # "batch 128" and swept at 32 (the flag was ignored)
    flags = ["--data", "tests.cli.entry:own_loaders", "--model", "tests.cli.entry:small_mlp"]
    out = ["--out", str(tmp_path / "lr"), "--num-steps", "30"]
    assert main(["lr-find", *flags, *out, "--batch-size", "128"]) == 2
    assert (
        "--batch-size 128: --data tests.cli.entry:own_loaders gives a training loader with "
        "batch size 32, which --batch-size cannot change" in capsys.readouterr().err
    )
    assert not (tmp_path / "lr").exists()
    assert main(["lr-find", *flags, *out]) == 0
    assert ", sgd, your loader's own batch size (32), 30 steps" in capsys.readouterr().out
    assert main(["lr-find", *flags, *out, "--batch-size", "32", "--force"]) == 0


def test_an_out_being_written_by_another_run_is_refused_before_the_sweep(tmp_path, capsys):
    # a user's check: lr-find --out into the folder a tune was writing swept, then wrote its
    # lr_find.png and lr_find.json among the tune's files (the tune's report later replaced the
    # png): lr-find was the one command that took no folder lock
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from superconverge._files import FolderLock; "
         f"lock = FolderLock({str(out)!r}).acquire(); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")},
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["lr-find", "--out", str(out), "--num-steps", "20"]) == 1
        captured = capsys.readouterr()
        assert f"--out {out} is being written by pid {holder.pid} " in captured.err
        assert "LR range test" not in captured.out  # refused before the sweep
    finally:
        holder.communicate("")
    assert sorted(p.name for p in out.iterdir()) == [".superconverge.lock"]
    assert main(["lr-find", "--out", str(out), "--num-steps", "20"]) == 0  # once it is done
    assert {"lr_find.png", "lr_find.json"} <= {p.name for p in out.iterdir()}


@pytest.mark.parametrize("command", [["lr-find"], ["fit", "--plan", "plan.json"]])
def test_commands_of_one_process_refuse_torchrun(tmp_path, capsys, monkeypatch, command):
    # a user's check: under torchrun both ranks ran the whole job, printed it twice, and the
    # second failed on the first's folder lock
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main([*command, "--out", str(tmp_path / "x")]) == 2
    assert "runs in one process, and torchrun started 2" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


REGRESSION = ["--data", "tests.cli.entry_data:regression", "--model", "tests.cli.entry_data:regressor"]  # fmt: skip


def test_a_batch_size_above_a_users_dataset_is_refused_and_the_json_records_the_batch(
    tmp_path, capsys
):
    # an auditor's --batch-size 5000 on a Dataset of 400 from --data module:function: accepted,
    # the header said batch 5000, every batch was the whole 400, and lr_find.json said neither
    out = ["--out", str(tmp_path / "lr"), "--num-steps", "12", "--loss", "mse"]
    assert main(["lr-find", *REGRESSION, *out, "--batch-size", "321"]) == 2
    assert capsys.readouterr().err.strip() == (
        "superconverge lr-find: error: --batch-size must be <= the 320 training samples of "
        "tests.cli.entry_data:regression, got 321"
    )
    assert not (tmp_path / "lr").exists()
    assert main(["lr-find", *REGRESSION, *out, "--batch-size", "320"]) == 0  # the whole set
    saved = json.loads((tmp_path / "lr" / "lr_find.json").read_text())
    assert saved["settings"]["batch_size"] == 320



@pytest.mark.parametrize("second", [["lr-find"], ["tune", "--epochs", "1"]])
def test_the_folder_is_held_for_the_whole_sweep(tmp_path, capsys, monkeypatch, second):
    # an auditor's two lr-finds into one --out: the second, started during the first's sweep,
    # was let in, and the first then wrote over its results without --force; a tune started
    # there was let in too, and the lr-find's finished sweep was thrown away at the end
    from superconverge.cli import lr_find

    out = tmp_path / "run"
    command = [sys.executable, "-m", "superconverge", *second, "--out", str(out), "-q"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    refusals = []

    def sweep_while_another_starts(*args, **kwargs):
        started = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        refusals.append(started)
        return real_run(*args, **kwargs)

    real_run = lr_find._run
    monkeypatch.setattr(lr_find, "_run", sweep_while_another_starts)
    assert main(["lr-find", "--out", str(out), "--num-steps", "20"]) == 0
    (refused,) = refusals
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert refused.stderr.startswith(
        f"superconverge {second[0]}: error: --out {out} is being written by pid {os.getpid()} ("
    )
    assert sorted(p.name for p in out.iterdir()) == [".superconverge.lock", "lr_find.json", "lr_find.png"]
    assert json.loads((out / "lr_find.json").read_text())["settings"]["num_steps"] == 20


def test_a_reader_that_stops_early_loses_no_file(tmp_path):
    # an auditor's `lr-find | head -1`: the summary was printed before the files were written,
    # so the finished sweep was lost, and the line said "the files written are complete"
    out = tmp_path / "run"
    run = subprocess.Popen(
        [sys.executable, "-m", "superconverge", "lr-find", "--out", str(out), "--num-steps", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert run.stdout is not None and run.stdout.readline().startswith("LR range test: digits")
    run.stdout.close()  # as `head -1` does after its line
    _, err = run.communicate(timeout=300)
    assert run.returncode == 1 and "the output was closed" in err and "Traceback" not in err
    assert json.loads((out / "lr_find.json").read_text())["settings"]["num_steps"] == 20
    assert (out / "lr_find.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_a_tune_or_fit_run_folder_is_refused_with_or_without_force(tmp_path, capsys, force):
    # an auditor's lr-find into a tune run: "pass --force to overwrite", and --force then
    # replaced the tune's own lr_find.png, which its report and range_tests.json describe
    out = tmp_path / "tune"
    out.mkdir()
    (out / "plan.json").write_text("{}")
    (out / "lr_find.png").write_bytes(b"the tune's")
    assert main(["lr-find", "--out", str(out), "--num-steps", "20", *force]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"superconverge lr-find: error: --out {out} holds a tune or fit run (plan.json), not a "
        "range test's results: --force replaces only an earlier lr-find's lr_find.png and "
        "lr_find.json; choose another --out"
    )
    assert sorted(p.name for p in out.iterdir()) == ["lr_find.png", "plan.json"]
    assert (out / "lr_find.png").read_bytes() == b"the tune's"


def test_the_sweep_shows_its_progress_unless_quiet(tmp_path, capsys, monkeypatch):
    # an auditor's 3000-step sweep printed its header and nothing else for 30 s, so -q (no
    # progress) changed nothing; outside a terminal the progress is a line every interval
    monkeypatch.setenv("SUPERCONVERGE_PROGRESS_INTERVAL", "0")
    out = ["--out", str(tmp_path / "run"), "--num-steps", "12", "--end-lr", "0.01"]
    assert main(["lr-find", *out]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("lr_find: step 1/12, loss ") and lines[0].endswith(", lr 1e-07")
    assert lines[11].startswith("lr_find: step 12/12, loss ") and lines[11].endswith(", lr 0.01")
    assert main(["lr-find", *out, "--force", "-q"]) == 0
    assert capsys.readouterr().err == ""
