import json
from pathlib import Path

import pytest

from superconverge.cli.main import main

DATA = ["--data", "tests.cli.entry_data:regression", "--model", "tests.cli.entry_data:regressor"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--loss", "hinge"], "--loss must be one of cross_entropy, mse"),
        (["--metric", "f1"], "--metric must be one of accuracy, top5, mse, mae"),
        (["--num-workers", "-1"], "--num-workers must be >= 0, got -1"),
        (["--batch-fn", "nomodule"], "--batch-fn must be module:function"),
        (["--val-steps", "0"], "--val-steps must be >= 1, got 0"),
    ],
)
def test_bad_task_flags_are_named(flags, message, capsys, tmp_path):
    assert main(["tune", *DATA, "--out", str(tmp_path / "run"), *flags]) == 2
    assert message in capsys.readouterr().err


def test_data_that_is_neither_splits_nor_datasets_is_named(capsys, tmp_path):
    flags = ["--data", "tests.cli.entry_data:a_number", "--model", "tests.cli.entry_data:regressor"]
    assert main(["tune", *flags, "--out", str(tmp_path / "run")]) == 2
    assert "must return superconverge.data.DataSplits, (train, val)" in capsys.readouterr().err
    flags[1] = "tests.cli.entry_data:four_splits"  # an auditor's check: "got tuple"
    assert main(["tune", *flags, "--out", str(tmp_path / "run")]) == 2
    assert "Datasets or loader factories), got a tuple of 4" in capsys.readouterr().err
    assert main(["tune", "--data", "tests.cli.entry_data:regression", "--out", str(tmp_path)]) == 2
    assert "--model module:function is needed" in capsys.readouterr().err


@pytest.mark.slow
def test_tune_on_datasets_with_mse_and_adamw_from_the_command_line(tmp_path):
    out = tmp_path / "run"
    flags = ["--loss", "mse", "--optimizer", "adamw", "--epochs", "2", "--batch-size", "16"]
    assert main(["tune", *DATA, *flags, "--out", str(out), "--weight-decays", "0.01", "0"]) == 0
    plan = json.loads((out / "plan.json").read_text())
    assert plan["optimizer"] == "adamw" and plan["loss"] == "mse"
    assert set(plan["results"]["final_val_metrics"]) == {"mse", "mae"}
    assert "accuracy" not in plan["results"]["test"]
    refit = tmp_path / "refit"
    plan_file = str(out / "plan.json")
    assert main(["fit", "--plan", plan_file, "--out", str(refit)]) == 2  # its code is not trusted
    assert main(["fit", "--plan", plan_file, "--trust-plan-code", "--out", str(refit)]) == 0
    again = json.loads((refit / "plan.json").read_text())
    assert set(again["results"]["final_val_metrics"]) == {"mse", "mae"}


def test_a_regression_without_loss_mse_is_a_usage_error_naming_the_flag(tmp_path, capsys):
    # a user's run: exit 1 with "ValueError: loss_fn is cross-entropy ..." and a --debug hint,
    # though the fix is a flag
    assert main(["tune", *DATA, "--epochs", "1", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "--loss is cross-entropy, but the model has 1 output" in err and "--loss mse" in err
    assert "ValueError" not in err and "--debug" not in err


def test_a_binary_task_reports_binary_accuracy_not_the_mse_of_logits(tmp_path, capsys):
    # a user's run: --loss bce_with_logits on real 0/1 labels reported the MSE and MAE of raw
    # logits against the labels, and no accuracy at all
    out = tmp_path / "run"
    data = ["--data", "tests.cli.entry_data:breast_cancer"]
    data += ["--model", "tests.cli.entry_data:one_logit"]
    flags = ["--loss", "bce_with_logits", "--epochs", "5", "--optimizer", "sgd"]
    assert main(["tune", *data, *flags, "--out", str(out)]) == 0
    shown = capsys.readouterr()
    printed = shown.out + shown.err  # the epochs' lines are the log's (stderr)
    plan = json.loads((out / "plan.json").read_text())
    assert set(plan["results"]["final_val_metrics"]) == {"binary_accuracy"}
    assert set(plan["results"]["test"]) == {"loss", "binary_accuracy"}
    assert plan["results"]["test"]["binary_accuracy"] > 0.9  # 89 test rows: 0.955 here
    assert "val_binary_accuracy" in printed and "test binary_accuracy" in printed
    assert "mse" not in printed


@pytest.mark.slow
def test_tune_validates_and_tests_on_streams_from_the_command_line(tmp_path):
    out = tmp_path / "run"
    data = ["--data", "tests.cli.entry_data:streams", "--model", "tests.cli.entry_data:regressor"]
    flags = ["--loss", "mse", "--optimizer", "sgd", "--epochs", "1", "--batch-size", "16"]
    assert main(["tune", *data, *flags, "--steps-per-epoch", "20", "--test-steps", "3",
                 "--weight-decays", "0", "--out", str(out)]) == 0  # fmt: skip
    plan = json.loads((out / "plan.json").read_text())
    assert plan["results"]["test"]["mse"] >= 0 and plan["data_options"]["test_steps"] == 3


def test_lr_find_takes_datasets_from_entry_points(tmp_path, capsys):
    flags = ["--loss", "mse", "--optimizer", "adamw", "--num-steps", "12", "--batch-size", "16"]
    assert main(["lr-find", *DATA, *flags, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "lr_find.json").exists()
    assert (
        main(
            [
                "lr-find",
                "--data",
                "tests.cli.entry_data:regression",
                "--out",
                str(tmp_path),
                "--force",
            ]
        )
        == 2
    )
    assert "--model module:function is needed" in capsys.readouterr().err


def test_entry_points_are_found_in_the_current_folder_by_the_console_script(tmp_path):
    # the README's `superconverge tune --data mypkg.data:splits` run from the project's folder:
    # the console script's sys.path does not hold that folder (python -m would)
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(Path(__file__).with_name("entry_data.py"), package / "data.py")
    script = Path(sys.executable).with_name("superconverge")
    run = subprocess.run(
        [str(script), "lr-find", "--data", "mypkg.data:regression", "--model", "nope:nope",
         "--loss", "mse"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    # the data module imported (from the current folder); the model's module is what fails
    assert run.returncode == 2, run.stderr
    assert "--model nope:nope: cannot import nope" in run.stderr, run.stderr
    assert "mypkg" not in run.stderr


def test_a_dataset_label_the_model_cannot_output_is_named_and_leaves_no_folder(tmp_path, capsys):
    # a TensorDataset of two tensors is scanned whole before training (the first bad sample
    # named); before, the range test's first batch met label 5+
    out = tmp_path / "run"
    flags = [
        "--data",
        "tests.cli.entry_data:classes",
        "--model",
        "tests.cli.entry_data:five_classes",
    ]
    assert main(["tune", *flags, "--epochs", "1", "--out", str(out)]) == 2  # bad input
    err = capsys.readouterr().err
    assert "error: train_data sample 5 has label 5" in err and "the model has 5 outputs" in err
    assert "at least 10 outputs" in err and "out of bounds" not in err
    assert not out.exists()  # nothing measured: the same --out can be used again


@pytest.mark.parametrize("command", ["lr-find", "tune"])
def test_dict_batches_without_a_target_key_name_the_batch_fn_flag(command, tmp_path, capsys):
    # the library's advice is Python's (batch_fn=lambda ...); the command line's names the flag
    flags = [
        "--data",
        "tests.cli.entry_data:dict_rows",
        "--model",
        "tests.cli.entry_data:regressor",
    ]
    out = tmp_path / "run"
    assert main([command, *flags, "--loss", "mse", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert "dict batches with keys ['features', 'value']" in err
    assert "--batch-fn module:function" in err and "lambda" not in err
    # said by the data check, before any stage: tune's was said by the final run, after the
    # batch size and the LR search were journaled, and the corrected command was then refused
    # as "a tune that did not finish" in --out
    assert "batch_size =" not in captured.out + err and not out.exists()


def test_lr_find_has_no_metric_flag_to_ignore(tmp_path, capsys):
    # the range test reads the loss (and a classifier's accuracy): a --metric would be ignored
    assert main(["lr-find", "--metric", "top7", "--out", str(tmp_path / "run")]) == 2
    assert "unrecognized arguments: --metric top7" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("command", ["lr-find", "tune"])
def test_an_out_the_system_cannot_create_is_a_usage_error_even_for_root(command, capsys):
    # /proc passes access() for root, yet nothing can be made there
    assert main([command, "--out", "/proc/superconverge-run"]) == 2
    err = capsys.readouterr().err
    # root passes access() and meets the probe; another user is stopped by access() first
    assert "--out /proc/superconverge-run: " in err
    assert "cannot create a folder in /proc" in err or "/proc is not writable" in err


def test_data_dir_at_the_folder_above_the_data_set_says_which_folder_to_name(tmp_path, capsys):
    # a user passed the folder that holds mnist/ (as SUPERCONVERGE_DATA is set) and was told
    # only that the file is not there
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    flags = ["--data", "mnist", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "r")]
    assert main(["lr-find", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("superconverge lr-find: error: --data-dir: train-images-idx3-ubyte.gz")
    assert err.rstrip().endswith(f"pass --data-dir {tmp_path / 'data' / 'mnist'}")
    assert len(err.splitlines()) == 1 and not (tmp_path / "r").exists()


def test_superconverge_data_at_the_data_sets_own_folder_says_what_to_set(
    tmp_path, capsys, monkeypatch
):
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    monkeypatch.setenv("SUPERCONVERGE_DATA", str(tmp_path / "data" / "mnist"))
    assert main(["tune", "--data", "mnist", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"set SUPERCONVERGE_DATA={tmp_path / 'data'}, or pass --data-dir " in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "r").exists()


def test_numpy_arrays_from_data_are_a_usage_error(tmp_path, capsys):
    # a user's check: exit 1 with "error: TypeError: train_data is a pair of NumPy arrays; ...
    # (run again with --debug for the traceback)"
    flags = ["--data", "tests.cli.entry_data:numpy_pairs", "--model", "tests.cli.entry_data:regressor"]
    assert main(["tune", *flags, "--loss", "mse", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "error: --data: train_data is a pair of NumPy arrays; pass tensors" in err
    assert "TypeError" not in err and "--debug" not in err
