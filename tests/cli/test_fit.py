import json

import pytest
import torch

from superconverge.cli.main import main
from tests.cli.plans import digits_plan


def test_help_says_loss_takes_the_built_in_names(capsys):
    # it said "module:function loss", though fit --loss mse works as tune's --loss does
    assert main(["fit", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--loss LOSS cross_entropy, mse, l1, smooth_l1, bce_with_logits, nll, or" in help_text


def test_a_missing_plan_is_named(tmp_path, capsys):
    assert main(["fit", "--plan", str(tmp_path / "nope.json")]) == 2
    assert f"--plan {tmp_path / 'nope.json'} not found" in capsys.readouterr().err


def test_a_plan_from_the_python_api_has_nothing_to_rebuild(tmp_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "epochs": 1,
                "batch_size": 8,
                "max_lr": 0.1,
                "min_lr": 0.01,
                "weight_decay": 0.0,
                "momentum": [0.95, 0.85],
            }
        )
    )
    assert main(["fit", "--plan", str(plan), "--out", str(tmp_path / "o")]) == 2
    assert "names no data/model to rebuild" in capsys.readouterr().err


def _digits_plan(tmp_path, **changes):
    return digits_plan(tmp_path, **changes)


def test_a_plan_naming_built_in_data_and_model_runs_and_writes_its_results(tmp_path, capsys):
    plan = _digits_plan(tmp_path)
    assert main(["fit", "--plan", str(plan)]) == 0
    refit = tmp_path / "refit"
    assert json.loads((refit / "plan.json").read_text())["results"]["status"] == "completed"
    assert (refit / "history.json").is_file()
    assert "completed: 1 epoch;" in capsys.readouterr().out
    # a second run does not overwrite the first without --force
    assert main(["fit", "--plan", str(plan)]) == 2
    assert "pass --force" in capsys.readouterr().err
    # its folder has no range tests, and its report shows none (no empty axes)
    assert main(["report", str(refit), "--static"]) == 0
    assert (refit / "report.html").is_file() and not (refit / "lr_find.png").exists()
    report = (refit / "report.md").read_text()
    assert "lr_find.png" not in report
    # the folder is fit's: its command is fit's, and the report says the choices are not its own
    saved = json.loads((refit / "plan.json").read_text())["environment"]
    assert saved["command"] == f"superconverge fit --plan {plan}"
    assert saved["plan_made_by"] == f"the tune run of {plan}"  # a hand-written plan names none
    assert "This run re-trained a saved plan (`superconverge fit --plan" in report
    assert "not from this run; the results are this run's" in report
    # a plan re-run from that folder still credits the run that made the plan
    again = tmp_path / "again"
    assert main(["fit", "--plan", str(refit / "plan.json"), "--out", str(again)]) == 0
    chained = json.loads((again / "plan.json").read_text())["environment"]
    assert chained["plan_made_by"] == f"the tune run of {plan}"


def test_device_chooses_where_the_plan_re_runs_and_a_bad_one_is_a_usage_error(
    tmp_path, capsys, monkeypatch
):
    # fit --plan had no --device: a plan re-ran on CUDA wherever there was one
    plan = _digits_plan(tmp_path)
    assert main(["fit", "--plan", str(plan), "--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert "--device" in err and "'gpu'" in err and "Traceback" not in err
    assert not (tmp_path / "refit").exists()
    # where "auto" would pick CUDA (which this machine cannot run), --device cpu must reach the
    # run (a reviewer's check: on a CPU machine "auto" is the CPU too)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert main(["fit", "--plan", str(plan), "--device", "cpu"]) == 0
    saved = json.loads((tmp_path / "refit" / "plan.json").read_text())["environment"]
    assert saved["device"] == "cpu"


def test_a_plan_that_averages_says_which_weights_the_model_kept(tmp_path, capsys):
    plan = _digits_plan(tmp_path, weight_average=1.0)
    assert main(["fit", "--plan", str(plan)]) == 0
    saved = json.loads((tmp_path / "refit" / "plan.json").read_text())["results"]
    kept = saved["weight_average"]
    assert kept["kept"] in ("average", "last") and kept["steps"] > 0
    said = "weights: the mean of the last" if kept["kept"] == "average" else "weights: the last ("
    out = capsys.readouterr().out
    assert said in out and f"; model: {tmp_path / 'refit' / 'model.pt'}\n" in out
    # a plan without it (written before it existed): no line
    other = tmp_path / "other"
    other.mkdir()
    assert main(["fit", "--plan", str(_digits_plan(other))]) == 0
    assert "weights:" not in capsys.readouterr().out


def test_entry_points_the_user_names_run_those_a_plan_names_do_not(tmp_path, capsys):
    plan = _digits_plan(tmp_path, model="tests.cli.entry:small_mlp", model_options={})
    assert main(["fit", "--plan", str(plan)]) == 2
    assert "--trust-plan-code" in capsys.readouterr().err
    flags = ["--model", "tests.cli.entry:small_mlp", "--out", str(tmp_path / "named")]
    assert main(["fit", "--plan", str(plan), *flags]) == 0
    flags = ["--trust-plan-code", "--out", str(tmp_path / "trusted")]
    assert main(["fit", "--plan", str(plan), *flags]) == 0


def test_a_plan_naming_its_own_loss_and_metric_runs_when_fit_names_them_again(tmp_path, capsys):
    # the refusal tells the user to pass --loss/--metric: fit takes those flags
    plan = _digits_plan(
        tmp_path,
        loss="torch.nn.functional:cross_entropy",
        data_options={"metrics": ["accuracy", "torch.nn.functional:nll_loss"]},
    )
    assert main(["fit", "--plan", str(plan)]) == 2
    err = capsys.readouterr().err
    named = "--loss torch.nn.functional:cross_entropy --metric torch.nn.functional:nll_loss"
    assert f"names code to run ({named})" in err and f"pass {named} once" in err
    flags = ["--out", str(tmp_path / "named"), "--metric", "accuracy"]
    flags += ["--loss", "torch.nn.functional:cross_entropy", "--metric", "top5"]
    assert main(["fit", "--plan", str(plan), *flags]) == 0
    results = json.loads((tmp_path / "named" / "plan.json").read_text())["results"]
    assert set(results["final_val_metrics"]) == {"accuracy", "top5"}  # the command's
    # another loss named in its place is the one trained with
    flags = ["--out", str(tmp_path / "other"), "--metric", "accuracy"]
    flags += ["--loss", "torch.nn.functional:multi_margin_loss"]
    assert main(["fit", "--plan", str(plan), *flags]) == 0
    other = json.loads((tmp_path / "other" / "plan.json").read_text())["results"]
    assert other["final_val_loss"] != results["final_val_loss"]


def test_a_zoo_model_is_sized_for_the_data_fit_is_given_and_the_folder_records_it(
    tmp_path, capsys
):
    # a user's check: fit --plan (a digits mlp, in_features 64) --data mnist built the plan's
    # mlp and failed with "mat1 and mat2 shapes cannot be multiplied (2x784 and 64x128)"
    plan = _digits_plan(tmp_path)
    out = tmp_path / "wide"
    flags = ["--data", "tests.cli.entry:wide_random"]
    assert main(["fit", "--plan", str(plan), *flags, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        "fit: model mlp sized for this data: in_features 100 (the plan's: 64), num_classes 3 "
        "(the plan's: 10)" in printed
    )
    recorded = json.loads((out / "plan.json").read_text())
    assert recorded["data"] == "tests.cli.entry:wide_random"
    assert recorded["model_options"] == {"in_features": 100, "num_classes": 3}
    assert recorded["results"]["status"] == "completed"
    # the folder's plan re-runs what it trained (its data named again: a plan runs no code
    # it names unless told to)
    again = tmp_path / "again"
    assert main(["fit", "--plan", str(out / "plan.json"), *flags, "--out", str(again)]) == 0
    assert "sized for this data" not in capsys.readouterr().out


def test_a_plan_made_with_a_loss_of_the_users_own_asks_for_it_by_its_flag(tmp_path, capsys):
    # a user's check: it said "--loss must be one of cross_entropy, ... got 'custom'" to a
    # command that gave no --loss
    plan = _digits_plan(tmp_path, loss="custom")
    assert main(["fit", "--plan", str(plan), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "was made with a loss function of your own (loss_fn)" in err
    assert "name it with --loss module:function" in err and err.count("\n") == 1
    assert main(["fit", "--plan", str(plan), "--loss", "cross_entropy", "--out",
                 str(tmp_path / "o")]) == 0  # fmt: skip


def test_a_saved_steps_per_epoch_does_not_stop_a_refit_on_data_of_known_size(tmp_path, capsys):
    # a review's check: a plan whose tune run had a stream's --steps-per-epoch (or an older plan
    # that recorded the flag for tensors, which ignored it) could no longer be refit on tensors:
    # the refusal named a flag fit does not have
    plan = _digits_plan(tmp_path, data_options={"steps_per_epoch": 10})
    assert main(["fit", "--plan", str(plan), "--out", str(tmp_path / "o")]) == 0
    assert "completed: 1 epoch" in capsys.readouterr().out


def test_a_plan_refit_on_a_stream_takes_its_steps_per_epoch_from_the_flag(tmp_path, capsys):
    # an auditor's check: a plan tuned on Datasets refit on a stream failed with exit 1 asking
    # for steps_per_epoch, which fit had no flag for
    plan = _digits_plan(tmp_path, data="tests.cli.entry_data:regression",
                        model="tests.cli.entry_data:regressor", model_options={}, loss="mse",
                        batch_size=32, max_lr=0.01, min_lr=0.001)  # fmt: skip
    flags = ["fit", "--plan", str(plan), "--data", "tests.cli.entry_data:streams",
             "--model", "tests.cli.entry_data:regressor"]  # fmt: skip
    assert main([*flags, "--out", str(tmp_path / "a")]) == 2
    assert "--steps-per-epoch" in capsys.readouterr().err
    assert main([*flags, "--steps-per-epoch", "0", "--out", str(tmp_path / "b")]) == 2
    assert "--steps-per-epoch must be >= 1, got 0" in capsys.readouterr().err
    out = tmp_path / "c"
    assert main([*flags, "--steps-per-epoch", "10", "--test-steps", "2", "--out", str(out)]) == 0
    assert "completed: 1 epoch" in capsys.readouterr().out
    history = json.loads((out / "history.json").read_text())
    assert len(history["step_losses"]) == 10


def test_a_plan_that_diverges_on_this_data_exits_1_and_says_what_its_folder_holds(
    tmp_path, capsys
):
    # a user's check: a plan whose max_lr is far too high for the data it is re-run on printed
    # "diverged: 0 epochs" and "wrote ..." and exited 0, with no weights in the folder
    plan = _digits_plan(tmp_path, max_lr=500.0, min_lr=50.0)
    out = tmp_path / "hot"
    assert main(["fit", "--plan", str(plan), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "diverged: 0 epochs; verdict diverged" in captured.out
    # the guard of tune's final run answered it first: two halvings, then the stop
    assert captured.err.count("restored the weights of the epoch's start") == 2
    last = captured.err.strip().splitlines()[-1]
    assert last == (
        f"superconverge fit: error: the run diverged in epoch 1 at max_lr 500, also after "
        f"halving its LR; {out} holds its plan.json and history.json, and no trained weights "
        "were saved; run superconverge tune on this data for a max_lr that suits it"
    )
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "history.json",
        "plan.json",
    ]
    assert json.loads((out / "plan.json").read_text())["results"]["status"] == "diverged"


def test_a_force_run_that_diverges_keeps_the_run_it_was_to_replace(tmp_path, capsys):
    # a user's check: fit --force with a plan too hot for the data exited 1 and had deleted the
    # good run it replaced
    out = tmp_path / "out"
    assert main(["fit", "--plan", str(_digits_plan(tmp_path)), "--out", str(out)]) == 0
    good = (out / "model.pt").read_bytes()
    (tmp_path / "hot").mkdir()
    hot = _digits_plan(tmp_path / "hot", max_lr=500.0, min_lr=50.0)
    capsys.readouterr()
    assert main(["fit", "--plan", str(hot), "--out", str(out), "--force"]) == 1
    captured = capsys.readouterr()
    (aside,) = out.glob("previous-*")
    assert (aside / "model.pt").read_bytes() == good
    assert "deleted the previous run" not in captured.out
    assert f"; the run it was to replace is kept in {aside};" in captured.err


def test_a_force_run_that_fails_before_an_epoch_says_where_the_run_it_replaces_is(
    tmp_path, capsys
):
    # a user's check: "moved the previous run to ...", then an error line that did not say
    # where that run was (tune's does)
    out = tmp_path / "out"
    assert main(["fit", "--plan", str(_digits_plan(tmp_path)), "--out", str(out)]) == 0
    good = (out / "model.pt").read_bytes()
    flags = ["--model", "tests.cli.entry:unflattened", "--trust-plan-code", "--force"]
    capsys.readouterr()
    assert main(["fit", "--plan", str(tmp_path / "plan.json"), "--out", str(out), *flags]) == 2
    (aside,) = out.glob("previous-*")
    assert (aside / "model.pt").read_bytes() == good
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "cannot take the training inputs" in line
    assert line.endswith(f"; the run it was to replace is kept in {aside}/")


def test_own_data_with_the_plans_zoo_model_needs_model(tmp_path, capsys):
    # a user's check: "AttributeError: 'UserData' object has no attribute 'input_shape'", exit 1
    plan = _digits_plan(tmp_path)
    flags = ["--data", "tests.cli.entry:own_loaders", "--out", str(tmp_path / "o")]
    assert main(["fit", "--plan", str(plan), *flags]) == 2
    err = capsys.readouterr().err
    assert "--model module:function is needed with --data tests.cli.entry:own_loaders" in err
    assert not (tmp_path / "o").exists()


def test_a_folder_a_fit_is_writing_names_that_fit_not_resume_or_force(tmp_path, capsys):
    # a user's check: a second fit into a running one's folder was told to --resume or --force
    # (exit 2), and both were then refused by the lock
    from tests.cli.locks import folder_held

    plan, out = _digits_plan(tmp_path), tmp_path / "out"
    assert main(["fit", "--plan", str(plan), "--out", str(out)]) == 0
    (out / "plan.json").unlink()  # as a running fit's folder: no plan.json until it ends
    with folder_held(out) as holder:
        capsys.readouterr()
        for flags in ([], ["--resume"], ["--force"]):
            assert main(["fit", "--plan", str(plan), "--out", str(out), *flags]) == 1
            err = capsys.readouterr().err
            assert f"--out {out} is being written by pid {holder.pid}" in err
            assert "continue it with" not in err and "--force" not in err


@pytest.mark.parametrize(
    ("change", "message"),
    [  # each passed the plan's type check; the run was moved aside, then the fit was refused
        ({"weight_average": 5}, "weight_average must be in (0, 1] or null, got 5"),
        ({"epochs": 0}, "epochs must be >= 1, got 0"),
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
        ({"max_lr": -1.0}, "max_lr must be a finite number > 0, got -1.0"),
        ({"min_lr": 5.0}, "min_lr must be <= max_lr (0.1), got 5.0"),
        ({"weight_decay": -1.0}, "weight_decay must be >= 0, got -1.0"),
        ({"momentum": [2.0, 0.5]}, "momentum values must be in [0, 1), got (2.0, 0.5)"),
        ({"optimizer": "bogus"}, "optimizer must be one of 'sgd', "),
        ({"environment": {"world_size": "x"}}, "environment.world_size must be an integer >= 1"),
    ],
)
def test_a_hand_edited_value_is_refused_before_anything_moves(tmp_path, capsys, change, message):
    out = tmp_path / "out"
    assert main(["fit", "--plan", str(_digits_plan(tmp_path)), "--out", str(out)]) == 0
    (tmp_path / "edited").mkdir()
    edited = _digits_plan(tmp_path / "edited", **change)
    capsys.readouterr()
    assert main(["fit", "--plan", str(edited), "--out", str(out), "--force"]) == 2
    assert f"--plan {edited}: {message}" in capsys.readouterr().err
    assert not list(out.glob("previous-*")) and (out / "model.pt").is_file()


def test_only_the_run_a_fit_replaced_is_deleted_when_it_finishes(tmp_path, capsys):
    # a user's check: after a --force that failed (its run moved aside), a plain fit into the
    # folder was accepted; resumed, it deleted that earlier run, which it had never replaced
    out = tmp_path / "out"
    assert main(["fit", "--plan", str(_digits_plan(tmp_path)), "--out", str(out)]) == 0
    flags = ["--model", "tests.cli.entry:unflattened", "--trust-plan-code", "--force"]
    assert main(["fit", "--plan", str(tmp_path / "plan.json"), "--out", str(out), *flags]) == 2
    (aside,) = out.glob("previous-*")
    plain = ["fit", "--plan", str(tmp_path / "plan.json"), "--out", str(out)]
    assert main(plain) == 0
    (out / "plan.json").unlink()  # as a fit stopped after its epoch leaves it
    capsys.readouterr()
    assert main([*plain, "--resume"]) == 0
    assert "deleted the previous run" not in capsys.readouterr().out
    assert list(out.glob("previous-*")) == [aside] and (aside / "model.pt").is_file()


def test_advice_after_a_force_over_the_plans_own_folder_names_the_plan_where_it_went(
    tmp_path, capsys, monkeypatch
):
    # a user's check: fit --plan DIR/plan.json --out DIR --force moves the tune run aside, its
    # plan.json too; the line said "continue with: ... --plan DIR/plan.json ..." (not found)
    data = "tests.cli.entry_data:flaky_test_split"
    model = "tests.cli.entry_data:regressor"
    out = tmp_path / "out"
    out.mkdir()
    plan = _digits_plan(out, epochs=2, batch_size=16, max_lr=0.04, min_lr=0.004, data=data,
                        model=model, loss="mse", model_options={})  # fmt: skip
    command = ["fit", "--plan", str(plan), "--data", data, "--model", model, "--out", str(out)]
    monkeypatch.setenv("SUPERCONVERGE_TEST_FLAKY", "1")
    assert main([*command, "--force"]) == 1
    (aside,) = out.glob("previous-*")
    moved = aside / "plan.json"
    assert capsys.readouterr().err.strip().endswith(
        f"continue with: superconverge fit --plan {moved} --data {data} --model {model} --out "
        f"{out} --resume"
    )
    monkeypatch.delenv("SUPERCONVERGE_TEST_FLAKY")
    advised = ["fit", "--plan", str(moved), "--data", data, "--model", model, "--out", str(out)]
    assert main([*advised, "--resume"]) == 0
    assert f"fit: deleted the previous run {aside}" in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_resume_of_an_unreadable_checkpoint_says_so_not_that_it_is_another_plans(
    tmp_path, capsys, damage
):
    # a user's check: "checkpoint.pt is another plan's ... --force replaces what is there", for a
    # checkpoint cut short; tune's line ran to 900 characters of torch's advice to load it with
    # weights_only=False
    plan = _digits_plan(tmp_path)
    out = tmp_path / "out"
    assert main(["fit", "--plan", str(plan), "--out", str(out)]) == 0
    (out / "plan.json").unlink()  # as a fit stopped mid-run leaves it: unfinished
    checkpoint = out / "checkpoint.pt"
    whole = checkpoint.read_bytes()
    damaged = {"truncated": whole[: len(whole) // 2], "garbage": b"garbage" * 9, "empty": b""}
    checkpoint.write_bytes(damaged[damage])
    capsys.readouterr()
    assert main(["fit", "--plan", str(plan), "--out", str(out), "--resume"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert f"--resume: checkpoint {checkpoint} cannot be read: " in line
    assert "another plan's" not in line and "weights_only" not in line
    assert len(line.replace(str(tmp_path), "")) < 400  # not torch's 900 characters
    assert f"start again with superconverge fit --plan {plan} --out {out} --force" in line
    assert checkpoint.read_bytes() == damaged[damage]  # left as it was


def test_force_over_a_tune_folder_replaces_that_run_whole(tmp_path, capsys):
    # a user's check: fit --force into a tune run's folder replaced plan.json, checkpoint.pt
    # and history.json and left the old report, journal and range tests beside them, so the
    # folder's report showed the old run's range test as this run's evidence
    plan = _digits_plan(tmp_path)
    out = tmp_path / "old"
    out.mkdir()
    for name in ("report.md", "journal.json", "range_tests.json", "lr_find.png", "plan.json"):
        (out / name).write_text("the old run's")
    (out / "notes.txt").write_text("mine")  # not a run's file: it stays
    assert main(["fit", "--plan", str(plan), "--out", str(out), "--force"]) == 0
    assert f"fit: moved the previous run to {out}/previous-" in capsys.readouterr().out
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == ["best.pt", "checkpoint.pt", "history.csv", "history.json", "model.pt",
                     "notes.txt", "plan.json"]  # fmt: skip
    assert json.loads((out / "plan.json").read_text())["results"]["status"] == "completed"


def test_a_plan_made_with_an_optimizer_callable_names_it_with_the_optimizer_flag(
    tmp_path, capsys
):
    # a user's check: fit said "optimizer must be given: the plan was made with an optimizer
    # callable", and fit had no flag to give one
    plan = _digits_plan(tmp_path, optimizer=None)
    assert main(["fit", "--plan", str(plan), "--out", str(tmp_path / "a")]) == 2
    assert "name it with --optimizer module:function" in capsys.readouterr().err
    flags = ["--optimizer", "tests.cli.entry:nesterov", "--out", str(tmp_path / "b")]
    assert main(["fit", "--plan", str(plan), *flags]) == 0
    assert json.loads((tmp_path / "b" / "plan.json").read_text())["results"]["status"] == (
        "completed"
    )
    # a plan tuned with a named optimizer keeps it: another one is refused, not run at its LR
    named = _digits_plan(tmp_path, optimizer="sgd")
    assert main(["fit", "--plan", str(named), "--optimizer", "adamw"]) == 2
    assert "--optimizer adamw: --plan" in capsys.readouterr().err


def test_resume_into_a_tune_folder_points_at_tune_resume(tmp_path, capsys):
    # the recipe's final run saves a checkpoint.pt of the same max_lr and epochs as its plan:
    # fit --resume would have continued it and written a fit's plan.json into the tune's folder
    from superconverge.tuning.journal import Journal

    out = tmp_path / "tuned"
    Journal.start(out, {"epochs": 1}, command=["--epochs", "1", "--out", str(out)])
    args = ["fit", "--plan", str(_digits_plan(tmp_path)), "--out", str(out)]
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"--resume: {out} holds a tune run (journal.json); continue it with: superconverge " in (
        err
    )
    assert f"tune --resume {out}" in err and err.count("\n") == 1
    assert main(args) == 2  # and without --resume, the tune that did not finish is named
    assert f"--out {out} holds a tune that did not finish" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["journal.json"]


def test_a_crash_after_an_epoch_says_what_was_kept_and_how_to_resume(
    tmp_path, capsys, monkeypatch
):
    # the test split's disk failed after the last epoch (a network file system's hiccup):
    # the line was the bare error, and the same command was then refused as "not empty"
    data = "tests.cli.entry_data:flaky_test_split"
    model = "tests.cli.entry_data:regressor"
    plan = _digits_plan(tmp_path, epochs=2, batch_size=16, max_lr=0.04, min_lr=0.004,
                        data=data, model=model, loss="mse", model_options={})  # fmt: skip
    out = tmp_path / "out"
    command = ["fit", "--plan", str(plan), "--data", data, "--model", model, "--out", str(out)]
    monkeypatch.setenv("SUPERCONVERGE_TEST_FLAKY", "1")
    assert main(command) == 1
    err = capsys.readouterr().err
    assert "Input/output error: /mnt/data/test-rows.bin; check the path" in err
    assert err.strip().endswith(
        f"{out / 'checkpoint.pt'} holds epoch 2 of 2; once that is fixed, continue with: "
        f"superconverge {' '.join(command)} --resume"
    ), err
    monkeypatch.delenv("SUPERCONVERGE_TEST_FLAKY")
    assert main([*command, "--resume"]) == 0
    assert "completed: 2 epochs" in capsys.readouterr().out
    assert json.loads((out / "plan.json").read_text())["results"]["test"]["loss"] > 0


def test_resume_over_a_finished_fit_of_another_plan_says_so(tmp_path, capsys):
    # it printed "holds a finished run: nothing to resume" as if this plan's run were done
    first = tmp_path / "first"
    first.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    out = tmp_path / "out"
    assert main(["fit", "--plan", str(_digits_plan(first)), "--out", str(out), "-q"]) == 0
    capsys.readouterr()
    mine = _digits_plan(other, max_lr=0.05)
    assert main(["fit", "--plan", str(mine), "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"--resume: {out} holds a finished fit of another plan, not of --plan {mine}" in err
    assert "--force replaces it" in err and err.count("\n") == 1
    assert main(["fit", "--plan", str(_digits_plan(first)), "--out", str(out), "--resume"]) == 0
    assert capsys.readouterr().out.startswith(f"fit: {out} holds a finished run")


def test_a_plan_made_from_python_keeps_its_metrics_and_names_those_it_cannot_hold(
    tmp_path, capsys
):
    # a user's check: tune(metrics={"accuracy": ..., "worst": fn}) recorded nothing, and
    # fit --plan silently reported other metrics
    import superconverge as sc
    from superconverge.data import load

    digits = load("digits")

    def net():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))

    def worst(outputs, targets):
        return (outputs.argmax(1) != targets).float().max()

    metrics = {"accuracy": "accuracy", "worst": worst}
    plan = sc.tune(net, digits.train, digits.val, epochs=1, metrics=metrics,
                   out_dir=tmp_path / "run")  # fmt: skip
    assert plan.data_options == {"metrics": ["accuracy"], "own_metrics": ["worst"]}
    capsys.readouterr()
    flags = ["--data", "digits", "--model", "mlp", "--out", str(tmp_path / "fit")]
    assert main(["fit", "--plan", str(tmp_path / "run" / "plan.json"), *flags]) == 0
    out = capsys.readouterr().out
    assert "fit: the plan was tuned with metrics of your own (worst), which plan.json" in out
    assert "test accuracy" in out
