import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from superconverge.cli.main import build_parser, main
from superconverge.cli.tune import model_factory
from superconverge.data import load
from superconverge.models import ModelFactory


def _args(*flags):
    return build_parser().parse_args(["tune", *flags])


def test_the_model_is_chosen_for_the_data_when_not_named():
    factory, name, options = model_factory(_args(), load("digits"))
    assert isinstance(factory, ModelFactory)
    assert (name, options) == ("mlp", {"in_features": 64, "num_classes": 10})


def test_a_named_model_is_sized_for_the_data():
    factory, _, _ = model_factory(_args("--model", "mlp"), load("digits"))
    assert (factory.name, factory.options) == ("mlp", {"num_classes": 10, "in_features": 64})


def test_an_entry_point_model_is_the_function_itself():
    factory, name, options = model_factory(
        _args("--model", "tests.cli.entry:small_mlp"), load("digits")
    )
    assert name == "tests.cli.entry:small_mlp" and options == {}
    assert factory().__class__.__name__ == "Sequential"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--epochs", "0"], "--epochs must be >= 1, got 0"),
        (["--batch-size", "big"], "--batch-size must be 'auto' or an integer, got 'big'"),
        (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["--model", "resnet9"], "--model resnet9 needs 3x32x32 inputs"),
        (
            ["--budget", "0"],
            "--budget: must be a number > 0 (final runs' worth of samples), got '0'",
        ),
        (["--budget", "abc"], "--budget: must be a number > 0 (final runs' worth of samples)"),
        (
            ["--weight-decays", "1e-4", "-1"],
            "--weight-decays: must be finite numbers >= 0, got '-1'",
        ),
        (["--precision", "16"], "argument --precision: invalid choice: '16'"),
        (["--optimizer", "sgdd"], "argument --optimizer: invalid choice: 'sgdd'"),
        (["--device", "foo"], "argument --device: must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        (["--loss", "nosuch"], "--loss must be one of cross_entropy"),
        (["--metric", "nosuch"], "--metric must be one of accuracy"),
        # an auditor's check: "tests.cli.entry has no function NOT_A_FUNCTION", which it has
        (["--model", "tests.cli.entry:NOT_A_FUNCTION"], "--model tests.cli.entry:NOT_A_FUNCTION: "
         "tests.cli.entry.NOT_A_FUNCTION is not a function (type int)"),
        # a user's check: these two printed the run's header line before their message
        (["--batch-fn", "nosuchmodule:fn"], "--batch-fn nosuchmodule:fn: cannot import"),
        (["--collate-fn", "nosuchmodule:fn"], "--collate-fn nosuchmodule:fn: cannot import"),
        pytest.param(
            ["--device", "cuda"],
            "argument --device: must be available, got 'cuda'",
            marks=pytest.mark.skipif("torch.cuda.is_available()"),
        ),
    ],
)
def test_bad_flags_exit_2_before_any_training(tmp_path, capsys, flags, message):
    assert main(["tune", *flags, "--out", str(tmp_path / "run")]) == 2
    out, err = capsys.readouterr()
    assert message in err
    if flags[0] != "--model":  # only a model needs the data's shapes to be judged
        assert out == ""  # named before the data were loaded, no header line first
    assert not (tmp_path / "run").exists()


def test_a_metric_that_raises_is_named_by_its_flag_before_the_range_test(tmp_path, capsys):
    # a user's check: it failed as "ValueError: metrics['raising_metric'] raised ..." (exit 1)
    # after the range test had run
    flags = ["--metric", "tests.cli.entry:raising_metric", "--out", str(tmp_path / "run")]
    assert main(["tune", *flags]) == 2
    err = capsys.readouterr().err
    assert "error: --metric raising_metric raised RuntimeError on outputs (32, 10)" in err
    assert "the user's metric failed" in err and "lr_find" not in err  # no range test ran
    assert err.count("\n") == 1 and not (tmp_path / "run").exists()


def test_a_metric_that_raises_mid_run_is_a_failure_that_keeps_the_run(tmp_path, capsys):
    # an auditor's check: exit 2 ("usage error: nothing was run") after epochs had run, and
    # no word of what was kept or how to go on
    from tests.cli import entry

    entry._calls["metric"] = 0
    out = tmp_path / "run"
    flags = ["--metric", "tests.cli.entry:metric_fails_late", "--epochs", "2", "--out", str(out)]
    assert main(["tune", "--data", "tests.cli.entry:tiny_digits", *flags, "-q"]) == 1
    err = capsys.readouterr().err
    assert "error: --metric metric_fails_late raised RuntimeError" in err
    assert f"kept in {out}" in err and f"continue with: superconverge tune --resume {out}" in err


def test_a_loss_that_raises_is_said_to_raise_not_to_misfit(tmp_path, capsys):
    # an auditor's check: "model outputs of shape (32, 10) and targets of shape (32,) do not fit
    # loss_fn: the user's loss failed", the usual shapes blamed
    flags = ["--loss", "tests.cli.entry:loss_raises", "--out", str(tmp_path / "run")]
    assert main(["tune", "--data", "tests.cli.entry:tiny_digits", *flags]) == 2
    err = capsys.readouterr().err
    assert "error: --loss raised ValueError on model outputs of shape (" in err
    assert "the user's loss failed" in err and "do not fit" not in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--steps-per-epoch", "10"], "--steps-per-epoch applies to streams and loader factories; "
         "train_data (ArrayData) has a known size"),
        (["--num-workers", "2"], "--num-workers applies to a Dataset"),
        (["--collate-fn", "torch.utils.data:default_collate"], "--collate-fn applies to a "
         "Dataset (read through the DataLoader tune builds); got collate_fn=default_collate"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("command", ["tune", "lr-find"])
def test_loader_flags_that_cannot_apply_to_tensors_are_refused_not_ignored(
    tmp_path, capsys, flags, message, command
):
    # a user's check: each was accepted on digits and changed nothing (tune's --collate-fn and
    # lr-find's --steps-per-epoch until 2026-12-04)
    if command == "lr-find":
        message = message.replace("tune builds", "lr_find builds")
    assert main([command, *flags, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "run").exists()


def test_a_batch_size_too_large_for_a_1cycle_is_refused_before_the_range_test(tmp_path, capsys):
    # a user's check: --batch-size 1294 --epochs 1 ran a whole range test, then said so; and
    # then it printed the header line first, and its advice named batch_size and epochs
    out = tmp_path / "run"
    assert main(["tune", "--batch-size", "1294", "--epochs", "1", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "superconverge tune: error: --batch-size 1294 with --epochs 1 leaves the final run 2 "
        "optimizer updates over 1295 training samples; a 1cycle needs at least 4: lower "
        "--batch-size or raise --epochs\n"
    )
    assert captured.out == "" and not out.exists()


@pytest.mark.slow
def test_tune_then_fit_then_report_on_tiny_data(tmp_path, capsys):
    out = tmp_path / "run"
    tiny = ["--data", "tests.cli.entry:tiny_digits", "--model", "tests.cli.entry:small_mlp"]
    flags = [
        *tiny,
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--weight-decays",
        "0",
        "--precision",
        "32",
        "--exact-epochs",  # the final run of the 2 epochs asked for (the budget lengthens it)
    ]
    assert main(["tune", *flags, "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert re.search(r"chosen: (sgd|adamw), batch 32", said)
    assert f"; model: {out / 'model.pt'}\n" in said  # where the trained weights are
    plan = json.loads((out / "plan.json").read_text())
    assert (plan["batch_size"], plan["epochs"], plan["weight_decay"]) == (32, 2, 0.0)
    assert plan["model"] == "tests.cli.entry:small_mlp"
    assert plan["data"] == "tests.cli.entry:tiny_digits"  # recorded, not run by fit unasked
    assert plan["data_options"]["precision"] == "32"  # fit --plan trains the same way
    assert (out / "report.html").is_file()

    refit = tmp_path / "refit"
    assert main(["fit", "--plan", str(out / "plan.json"), "--out", str(refit)]) == 2
    assert "--trust-plan-code" in capsys.readouterr().err
    assert main(["fit", "--plan", str(out / "plan.json"), *tiny, "--out", str(refit)]) == 0
    assert json.loads((refit / "plan.json").read_text())["results"]["status"] == "completed"

    assert main(["report", str(out)]) == 0
    assert "report.html" in capsys.readouterr().out


def test_resume_refuses_other_flags_instead_of_ignoring_them(tmp_path, capsys):
    from superconverge.tuning.resumable import recipe_folder

    out = tmp_path / "run"
    with recipe_folder(out, {"epochs": 2}, command=["--epochs", "2", "--out", str(out)]):
        pass  # an interrupted run: its journal, with the flags it was started with
    before = sorted(p.name for p in out.iterdir())
    assert main(["tune", "--resume", str(out), "--optimizer", "adamw", "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert f"--resume {out} continues that run with the flags it was started with" in err
    assert "also given: --optimizer adamw --epochs 3" in err and err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == before  # nothing touched


def test_an_interrupted_tune_in_out_is_offered_to_resume_not_only_to_force(tmp_path, capsys):
    # a user's check: re-running the command of a killed tune said "pass --force to overwrite",
    # which would discard the search it had kept; --resume was not named
    from superconverge.tuning.resumable import recipe_folder

    out = tmp_path / "run"
    with (
        pytest.raises(KeyboardInterrupt),
        recipe_folder(out, {"epochs": 2}, command=["--epochs", "2"]) as journal,
    ):
        journal.record("batch_size", 32)
        raise KeyboardInterrupt
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["tune", "--epochs", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out {out} holds a tune that did not finish (started " in err
    assert "kept: the stages decided (batch_size)" in err
    assert f"continue it with `superconverge tune --resume {out}`" in err and "--force" in err
    assert err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched
    # `report` on it says the same, not "plan.json, history.json missing"
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"FOLDER {out} holds a tune that did not finish" in err and "missing" not in err
    assert f"superconverge tune --resume {out}" in err
    # a run started from Python is continued from Python (the CLI's --resume refuses it)
    python = tmp_path / "python"
    with (
        pytest.raises(KeyboardInterrupt),
        recipe_folder(python, {"epochs": 2}) as journal,
    ):
        journal.record("batch_size", 32)
        raise KeyboardInterrupt
    assert main(["tune", "--epochs", "2", "--out", str(python)]) == 2
    err = capsys.readouterr().err
    assert "it was started from Python: continue it with tune(..., out_dir=" in err
    assert "continue it with continue" not in err and "--resume" not in err
    # a finished run is only "not empty"
    with recipe_folder(tmp_path / "done", {"epochs": 2}, command=["--epochs", "2"]):
        pass
    assert main(["tune", "--epochs", "2", "--out", str(tmp_path / "done")]) == 2
    assert "already exists and is not empty; pass --force" in capsys.readouterr().err


def test_resume_runs_at_the_threads_the_run_was_started_with(tmp_path):
    # torch's reductions differ with the thread count: a resume at another count was 26x slower
    # on a busy machine and ended with other weights
    from superconverge.cli.tune import _resumed
    from superconverge.tuning.resumable import recipe_folder

    out = tmp_path / "run"
    command = ["--epochs", "2", "--threads", "1", "--out", str(out)]
    with recipe_folder(out, {"epochs": 2}, command=command):
        pass
    before = torch.get_num_threads()
    try:
        for given, expected in (([], 1), (["--threads", "2"], 2)):
            torch.set_num_threads(2)  # what main sets from this command's flags (none: torch's)
            argv = ["tune", "--resume", str(out), *given]
            args = build_parser().parse_args(argv)
            args.argv = argv
            assert _resumed(args).threads == expected and torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(before)


def test_an_out_being_written_by_another_run_is_named_not_offered_to_force(tmp_path, capsys):
    from tests.cli.locks import folder_held

    out = tmp_path / "run"
    out.mkdir()
    (out / "journal.json").write_text("{}")  # the other run's first file
    with folder_held(out) as holder:
        for force in ([], ["--force"]):
            assert main(["tune", "--epochs", "1", "--out", str(out), *force]) == 1
            err = capsys.readouterr().err
            assert f"--out {out} is being written by pid {holder.pid}" in err
            assert "--force" not in err and err.count("\n") == 1
    assert (out / "journal.json").read_text() == "{}"  # nothing touched


def test_threads_given_before_the_subcommand_are_recorded_for_resume(tmp_path):
    from superconverge.tuning.journal import Journal

    out = tmp_path / "run"
    before = torch.get_num_threads()
    try:
        assert main(["--threads", "1", "tune", "--epochs", "1", "-q", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(before)
    assert Journal.load(out).command[-2:] == ["--threads", "1"]


def test_resume_runs_no_code_its_journal_names_unless_trusted(tmp_path, capsys, monkeypatch):
    # a user's check: a journal edited to name --model evilmod:f had evilmod imported and f
    # called by tune --resume; fit --plan refuses a plan's code unless named or trusted
    from superconverge.tuning.journal import Journal

    out = tmp_path / "run"
    Journal.start(out, {}, command=["--epochs", "1", "--model", "evilmod:f"])  # unfinished
    (tmp_path / "evilmod.py").write_text(
        "open(__file__ + '.imported', 'w').close()\ndef f():\n    return None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["tune", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--resume {out}: its journal names code to run (--model evilmod:f)" in err
    assert "add --trust-plan-code" in err
    assert not (tmp_path / "evilmod.py.imported").exists()
    # trusted, the code runs (and here fails as such code would)
    assert main(["tune", "--resume", str(out), "--trust-plan-code"]) == 2
    assert "--model evilmod:f must return a torch.nn.Module" in capsys.readouterr().err
    assert (tmp_path / "evilmod.py.imported").exists()


def test_resume_over_an_unreadable_final_run_checkpoint_says_how_to_go_on(tmp_path, capsys):
    # a user's check: 900 characters of torch's advice (weights_only=False), and "once that is
    # fixed, continue with --resume" without how; deleting the checkpoint is what works
    out = tmp_path / "run"
    assert main(["tune", "--epochs", "2", "--threads", "1", "--out", str(out)]) == 0
    finished = json.loads((out / "journal.json").read_text())
    (out / "journal.json").write_text(json.dumps({**finished, "finished": False}))
    (out / "checkpoint.pt").write_bytes(b"garbage" * 9)
    capsys.readouterr()
    assert main(["tune", "--resume", str(out)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.endswith(
        f"checkpoint {out / 'checkpoint.pt'} cannot be read: it is corrupt or not a checkpoint of "
        f"this library (it holds other objects); delete it and continue with: superconverge tune "
        f"--resume {out} (the final run starts again from the decisions the journal kept)"
    ), line
    (out / "checkpoint.pt").unlink()  # what the line says
    assert main(["tune", "--resume", str(out)]) == 0
    assert json.loads((out / "plan.json").read_text())["results"]["status"] == "completed"


def test_resume_of_a_journal_whose_settings_were_edited_is_a_usage_error_not_a_loop(
    tmp_path, capsys
):
    # a user's check: exit 1, "resume it with the settings it was started with ...; once that is
    # fixed, continue with: superconverge tune --resume DIR", the command that had just failed
    out = tmp_path / "run"
    assert main(["tune", "--epochs", "2", "--threads", "1", "--out", str(out)]) == 0
    journal = json.loads((out / "journal.json").read_text())
    journal["finished"], journal["settings"]["epochs"] = False, 5
    (out / "journal.json").write_text(json.dumps(journal))
    capsys.readouterr()
    assert main(["tune", "--resume", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"--resume {out}: its journal's settings differ from what its own command asks now " in (
        line
    )
    assert "(epochs 5 there, 2 now)" in line and "--force moves this one aside" in line
    assert "continue with" not in line


def test_resume_in_a_folder_that_is_not_writable_says_to_make_it_so(tmp_path, capsys, monkeypatch):
    # a user's check: "is not writable; choose another --out", which starts the run over
    import os

    from superconverge.cli import _common
    from superconverge.tuning.journal import Journal

    out = tmp_path / "run"
    Journal.start(out, {}, command=["--epochs", "1"])  # unfinished
    writable = os.access
    monkeypatch.setattr(
        _common.os, "access", lambda path, mode: Path(path) != out and writable(path, mode)
    )
    assert main(["tune", "--resume", str(out)]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            f"--resume: {out} is not writable; make it writable (chmod u+w {out}) and run the same "
            "command again (another folder would start the run over)"
        )
    )


def test_resuming_a_finished_run_leaves_it_as_it_is(tmp_path, capsys):
    # a user's check: --resume of a finished run warned, then rewrote plan.json, history.json,
    # journal.json and the report (with other timings)
    out = tmp_path / "run"
    assert main(["tune", "--epochs", "1", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(["tune", "--resume", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"tune: {out} holds a finished run: nothing to resume" in said
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_a_final_run_that_diverges_whatever_the_guard_does_exits_1_after_writing_it(
    tmp_path, capsys
):
    # a user's check: the final run diverged (at its max_lr, halved twice, and at a third of
    # it), the verdict said "diverged", and tune exited 0 as if it had trained a model
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"an earlier run's good weights")
    flags = ["--data", "tests.cli.entry:tiny_digits", "--model", "tests.cli.entry:goes_bad_late"]
    command = ["tune", *flags, "--epochs", "30", "--threads", "1", "--out", str(out), "--force"]
    assert main(command) == 1
    captured = capsys.readouterr()
    # the run --force replaced is kept (a user's check: it was deleted, and the new run failed)
    (aside,) = out.glob("previous-*")
    assert (aside / "checkpoint.pt").read_bytes() == b"an earlier run's good weights"
    assert "deleted the previous run" not in captured.err
    assert "verdict: diverged:" in captured.out and "report: " in captured.out
    error = captured.err.strip().splitlines()[-1]
    assert error.startswith(
        "superconverge tune: error: the final run diverged, also after halving its LR and at a "
        "third of its max_lr (max_lr "
    )
    assert f"{out} holds its report and plan.json (verdict diverged: it says what to try)" in error
    plan = json.loads((out / "plan.json").read_text())
    assert plan["results"]["status"] == "diverged" and (out / "report.html").is_file()
    epochs = len(json.loads((out / "history.json").read_text())["epochs"])
    assert error.endswith(
        f"checkpoint.pt holds the weights of epoch {epochs}, the last good one; the run it was "
        f"to replace is kept in {aside}"
    )


def test_data_that_does_not_fit_the_model_is_a_usage_error_and_a_bad_environment_too(
    tmp_path, capsys, monkeypatch
):
    # a user's checks: labels 0-9 against a 1-output model exited 1 with "error: DataError: ...
    # (run again with --debug for the traceback)"; SUPERCONVERGE_PROGRESS_INTERVAL=abc exited 1
    # in the middle of the search
    flags = ["--data", "tests.cli.entry:tiny_digits", "--model", "tests.cli.entry:one_output"]
    assert main(["tune", *flags, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "error: train_data" in err and "but the model has 1 outputs" in err
    assert "DataError" not in err and "--debug" not in err
    # inputs the model cannot take: exit 1 after the search had journaled its stages, with a
    # --resume that the fixed model's new shape then refused (a user's check)
    flags[-1] = "tests.cli.entry:unflattened"
    assert main(["tune", *flags, "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "error: the model cannot take the training inputs of shape (32, 1, 8, 8)" in err
    assert "--resume" not in err and not (tmp_path / "c").exists()
    monkeypatch.setenv("SUPERCONVERGE_PROGRESS_INTERVAL", "abc")
    assert main(["tune", "--epochs", "1", "--out", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err == (
        "superconverge tune: error: SUPERCONVERGE_PROGRESS_INTERVAL must be seconds >= 0, got "
        "'abc'\n"
    )
    assert not (tmp_path / "b").exists()


def test_the_default_out_folder_of_entry_points_has_no_colon():
    # a user's check: --data mydata:splits --model mydata:make_net wrote
    # runs/mydata:splits-mydata.make_net (a ':' is refused on Windows, host:path to scp/rsync)
    import argparse

    from superconverge.cli.tune import _out_dir

    folder = _out_dir(argparse.Namespace(out=None), "mydata:splits", "mydata:make_net")
    assert folder == Path("runs") / "mydata.splits-mydata.make_net"
    given = _out_dir(argparse.Namespace(out=Path("a:b")), "x", "y")
    assert given == Path("a:b")  # the user's own --out is theirs


def test_files_people_share_record_the_command_without_a_url_password(tmp_path, capsys):
    # a user's check: `--study postgresql://user:password@host/db` (the storage the README
    # suggests) was written whole into plan.json, report.html and report.md. Here the URL is
    # a --study-name in a local study (no server to reach); the journal keeps
    # the command whole, since --resume repeats it
    out, secret = tmp_path / "run", "s3cr%40t"
    url = f"postgresql://ann:{secret}@db.example:5432/runs"
    tiny = ["--data", "tests.cli.entry:tiny_digits", "--model", "tests.cli.entry:small_mlp"]
    flags = [*tiny, "--epochs", "1", "--batch-size", "32", "--weight-decays", "0"]
    study = ["--study", f"sqlite:///{tmp_path / 'study.db'}", "--study-name", url]
    assert main(["tune", *flags, *study, "--out", str(out)]) == 0
    capsys.readouterr()
    plan = json.loads((out / "plan.json").read_text())
    command = plan["environment"]["command"]
    assert "--study-name postgresql://ann:***@db.example:5432/runs" in command
    for name in ("plan.json", "report.html", "report.md", ".superconverge.lock"):
        assert secret not in (out / name).read_text(), name
    assert url in json.loads((out / "journal.json").read_text())["command"]


def test_a_crash_mid_run_says_what_was_kept_and_how_to_resume(tmp_path, capsys, monkeypatch):
    # a user's check: the test split's disk failed after the final run (a network file
    # system's hiccup); the line was "Input/output error: ...; check the path and its
    # permissions", without a word of the search and the weights the folder kept for --resume
    out = tmp_path / "run"
    data = ["--data", "tests.cli.entry_data:flaky_test_split"]
    flags = [*data, "--model", "tests.cli.entry_data:regressor", "--loss", "mse", "--epochs",
             "1", "--batch-size", "16", "--optimizer", "sgd", "--out", str(out)]  # fmt: skip
    monkeypatch.setenv("SUPERCONVERGE_TEST_FLAKY", "1")
    assert main(["tune", *flags]) == 1
    err = capsys.readouterr().err
    assert "Input/output error: /mnt/data/test-rows.bin; check the path" in err
    assert err.strip().endswith(
        "and the final run's checkpoint of its last finished epoch kept in "
        f"{out}; once that is fixed, continue with: superconverge tune --resume {out} "
        "--trust-plan-code"  # the run named its data and model as entry points
    ), err
    assert err.count("superconverge tune: error:") == 1 and "Traceback" not in err
    monkeypatch.delenv("SUPERCONVERGE_TEST_FLAKY")
    assert main(["tune", "--resume", str(out), "--trust-plan-code"]) == 0
    assert json.loads((out / "plan.json").read_text())["results"]["test"]["loss"] > 0


def test_out_of_memory_mid_run_points_at_a_new_run_not_at_resume(tmp_path, capsys, monkeypatch):
    # "lower --batch-size" beside "continue with --resume", which keeps the batch size (and
    # refuses --batch-size): the advice contradicted itself
    out = tmp_path / "run"
    flags = ["--data", "tests.cli.entry_data:flaky_test_split", "--model",
             "tests.cli.entry_data:regressor", "--loss", "mse", "--epochs", "1", "--batch-size",
             "16", "--optimizer", "sgd", "--out", str(out)]  # fmt: skip
    monkeypatch.setenv("SUPERCONVERGE_TEST_FLAKY", "oom")
    assert main(["tune", *flags]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "superconverge tune: error: out of memory; lower --batch-size or use a smaller --model "
        f"in a new run: add --force (it moves {out} aside; --resume would keep the batch size "
        "and model that ran out of memory)"
    ), err
    assert "Traceback" not in err and (out / "journal.json").is_file()  # nothing removed


def test_a_run_that_loses_the_race_for_a_new_folder_leaves_the_winners_files(
    tmp_path, capsys, monkeypatch
):
    # two tunes started at once into the same new --out: both saw no folder; the one refused
    # as busy removed the folder "it had made" (the lock file, at most a batch-size-only
    # journal) from under the one at work
    import subprocess
    import sys
    import textwrap

    from superconverge.cli import tune as tune_cli

    out = tmp_path / "run"
    winner = None
    made = tune_cli._create

    def the_other_run_wins(folder):  # between this run's check and its lock
        nonlocal winner
        made(folder)
        code = textwrap.dedent(f"""
            import sys
            from superconverge._files import FolderLock
            FolderLock({str(folder)!r}).acquire()
            print("held", flush=True)
            sys.stdin.read()
        """)
        winner = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert winner.stdout.readline().strip() == "held"

    monkeypatch.setattr(tune_cli, "_create", the_other_run_wins)
    try:
        assert main(["tune", "--epochs", "1", "--out", str(out)]) == 1
        assert f"pid {winner.pid}" in capsys.readouterr().err  # the busy line names the winner
        assert [p.name for p in out.iterdir()] == [".superconverge.lock"]  # the winner's, kept
    finally:
        winner.communicate("")


def test_a_study_that_is_no_url_is_refused_before_the_data_load(tmp_path, capsys):
    # the header line ("tune: mnist (54000 train ...") came first: the data were loaded, then
    # the flag refused, where a usage error is one line and nothing run
    out = tmp_path / "r"
    assert main(["tune", "--study", "runs/study.db", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(
        "superconverge tune: error: --study: study must be an Optuna storage URL"
    )
    assert "got 'runs/study.db'" in captured.err and not out.exists()


@pytest.mark.slow
def test_tune_piped_into_head_says_the_output_closed_not_resume(tmp_path):
    # `superconverge tune | head -1`: the run finished and wrote its report, then its summary
    # met the closed pipe, and the line said "Broken pipe; check the path and its permissions;
    # ... once that is fixed, continue with: superconverge tune --resume DIR"
    out = tmp_path / "run"
    tiny = ["--data", "tests.cli.entry:tiny_digits", "--model", "tests.cli.entry:small_mlp"]
    command = [sys.executable, "-m", "superconverge", "tune", *tiny, "--epochs", "1"]
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([f"{root}/src", root])}
    process = subprocess.Popen(
        [*command, "--threads", "1", "-q", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None and process.stdout.readline().startswith("tune: ")
    process.stdout.close()  # what `head -1` does after its line
    _, err = process.communicate(timeout=300)
    assert process.returncode == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("superconverge tune: error: the output was closed"), err
    assert "--resume" not in err and "Exception ignored" not in err
    assert (out / "report.html").is_file() and (out / "plan.json").is_file()


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--lr-search", "in-run", "--compare-momentum"], "--lr-search in-run, but several"),
        (["--exact-epochs", "--budget", "2"], "--budget lengthens the final run when the LR"),
        (["--budget=2", "--exact-epochs"], "--budget lengthens the final run when the LR"),
    ],
)
def test_flags_that_would_change_nothing_are_refused(tmp_path, capsys, flags, said):
    # a user's check: each exited 0 having done nothing, or not what it said (--compare-momentum
    # quietly searched by short runs)
    assert main(["tune", "--epochs", "1", *flags, "--out", str(tmp_path / "o")]) == 2
    assert said in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_force_run_refused_by_its_first_batch_puts_the_run_it_replaces_back(tmp_path, capsys):
    # a user's check: a loader factory that ignores the batch size was said by the final run's
    # first batch (exit 1, "ValueError: ... run again with --debug"), after --force had moved the
    # finished run into previous-*/ and a journal had refused the corrected command
    out = tmp_path / "run"
    model = ["--model", "tests.cli.entry_data:regressor", "--loss", "mse", "--epochs", "1"]
    assert (
        main(["tune", "--data", "tests.cli.entry_data:regression", *model, "--out", str(out)]) == 0
    )
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    bad = ["tune", "--data", "tests.cli.entry_data:fixed_batch_factory", *model]
    assert main([*bad, "--out", str(out), "--force"]) == 2
    err = capsys.readouterr().err
    assert "error: --data: train_data: make_loader(16) yielded a first batch of 40 samples" in err
    assert "put the previous run back" in err and "--debug" not in err
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before and not [p for p in out.iterdir() if p.is_dir()]
    fresh = tmp_path / "fresh"  # a new folder: left as it was found (none), not holding a journal
    assert main([*bad, "--out", str(fresh)]) == 2
    assert not fresh.exists()


def test_items_the_loader_cannot_batch_are_a_usage_error_before_any_stage(tmp_path, capsys):
    # a user's check: PIL images in a Dataset were said by the final run (exit 1, "TypeError: ...
    # run again with --debug"), after the stages, and advised Python's collate_fn=
    out = tmp_path / "run"
    flags = [
        "--data",
        "tests.cli.entry_data:uncollatable",
        "--model",
        "tests.cli.entry_data:regressor",
    ]
    assert main(["tune", *flags, "--epochs", "1", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "error: --data: train_data: the DataLoader could not make a batch" in captured.err
    assert "(or pass --collate-fn module:function)" in captured.err
    assert "batch_size =" not in captured.out + captured.err and not out.exists()


def test_a_read_error_of_a_force_run_that_measured_nothing_says_the_old_run_is_back(
    tmp_path, capsys, monkeypatch
):
    # a reviewer's check: the line described the run put back (its stages, its checkpoint) as
    # this one's and told the user to --resume it; and a read error of the first batch was
    # called a collate error, exit 2, "(or pass --collate-fn ...)"
    out = tmp_path / "run"
    model = ["--model", "tests.cli.entry_data:regressor", "--loss", "mse", "--epochs", "1"]
    flaky = ["tune", "--data", "tests.cli.entry_data:flaky_train", *model, "--out", str(out)]
    assert main(flaky) == 0
    before = (out / "plan.json").read_bytes()
    capsys.readouterr()
    monkeypatch.setenv("SUPERCONVERGE_TEST_FLAKY", "1")
    assert main([*flaky, "--force"]) == 1
    err = capsys.readouterr().err
    assert "error: Input/output error: /mnt/data/test-rows.bin" in err
    assert f"nothing was measured, and the run it was to replace is back in {out}" in err
    assert "--resume" not in err and "collate" not in err
    assert (out / "plan.json").read_bytes() == before


def test_a_run_trained_on_torchrun_ranks_is_resumed_the_way_it_was_launched(tmp_path, capsys):
    # an auditor's check: a torchrun tune's interrupt line said `superconverge tune --resume`,
    # which refused it for a --batch-size its user never gave; under torchrun, rank 1's resume
    # failed with AttributeError 'verbose' (the resumed flags lacked the global ones)
    from superconverge.cli import tune as cli_tune
    from superconverge.tuning.journal import Journal

    out = tmp_path / "run"
    assert main(["tune", "--epochs", "1", "--exact-epochs", "--out", str(out), "-q"]) == 0
    journal = Journal.load(out)
    journal.settings["world_size"], journal.finished = 2, False  # as a 2-rank run left it
    journal.save()
    capsys.readouterr()
    assert main(["tune", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert "that run trained on 2 processes (torchrun), this one is 1" in err
    assert f"torchrun --nproc-per-node 2 -m superconverge tune --resume {out}" in err
    # the same command again is offered the same resume
    assert main(["tune", "--epochs", "1", "--exact-epochs", "--out", str(out)]) == 2
    assert f"`torchrun --nproc-per-node 2 -m superconverge tune --resume {out}`" in (
        capsys.readouterr().err
    )
    args = build_parser().parse_args(["-v", "tune", "--resume", str(out)])
    args.argv = ["-v", "tune", "--resume", str(out)]
    resumed = cli_tune._resumed(args)
    assert (resumed.verbose, resumed.quiet, resumed.debug) == (True, False, False)
    gloo = RuntimeError("[pair.cc:553] Connection closed by peer [127.0.0.1]:55942. GLHF!")
    assert cli_tune._peer_gone(gloo) and not cli_tune._peer_gone(RuntimeError("NaN"))
