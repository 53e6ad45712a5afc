import base64
import itertools
import json
import logging
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import superconverge as sc
from superconverge.cli.main import main
from superconverge.data import load
from superconverge.models import build
from superconverge.training import Callback, EdgeSettings
from superconverge.tuning import RecipeSettings, load_run

# the recipe before its in-run LR search: range tests and short runs (what these tests check)
SHORT = RecipeSettings(lr_search="short_runs")


def make_mlp():
    return build("mlp")


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def test_tune_records_every_step_with_its_cost_and_trains(digits, tmp_path):
    # budget 3: room for both optimizers' LR search, the noise repeat and every decay; the final
    # run of exactly 4 epochs and weight-decay runs whether or not the short run may overfit, so
    # that the weight-decay stage always runs (its extension and its skip: below)
    plan = sc.tune(
        make_mlp,
        digits.train,
        digits.val,
        epochs=4,
        test_data=digits.test,
        out_dir=tmp_path,
        budget=3.0,
        settings=RecipeSettings(
            lr_search="short_runs", extend_final_run=False, weight_decay_runs="always"
        ),
    )
    steps = [step["step"] for step in plan.evidence]
    assert steps == [
        "batch_size",
        "lr_bounds",
        "weight_decay",
        "momentum",
        "final_run",
        "diagnosis",
    ]
    assert all(step["seconds"] >= 0 and step["why"] for step in plan.evidence)
    assert plan.batch_size <= len(digits.train) // 10
    assert plan.min_lr == pytest.approx(plan.max_lr / 10)
    details = plan.evidence[2]["details"]
    runs, skipped = set(details["runs"]), {f"{wd:g}" for wd in details["skipped"]}
    expected = {"sgd": {"0.001", "0.0001", "1e-05", "0"}, "adamw": {"0.1", "0.03", "0.01", "0"}}
    assert expected[plan.optimizer] <= runs | skipped and len(runs) >= 2  # what the budget held
    assert ("not run (budget)" in plan.evidence[2]["why"]) == bool(skipped)
    assert set(plan.evidence[1]["details"]["optimizers"]) == {"sgd", "adamw"}
    assert plan.evidence[1]["details"]["noise"]["relative"] >= 0
    # the account: every stage's samples, and the search within its allowance
    compute = plan.compute
    assert compute["search_samples"] == sum(compute["search_samples_by_stage"].values())
    assert compute["search_samples"] <= compute["allowance_samples"] == 3 * 4 * len(digits.train)
    assert compute["final_run_samples"] == 4 * len(digits.train)
    assert [step["samples"] > 0 for step in plan.evidence[1:3]] == [True, True]
    assert plan.environment["torch_threads"] >= 1 and plan.environment["seed"] == 0
    assert plan.weight_decay in [float(k) for k in runs]
    assert plan.results["test"]["accuracy"] > 0.85
    assert plan.results["verdict"]["kind"] in ("good", "underfitting", "overfitting", "unstable")
    assert (tmp_path / "checkpoint.pt").exists()
    again = sc.TunePlan.from_json(plan.to_json())
    assert again.max_lr == plan.max_lr and again.evidence == json.loads(plan.to_json())["evidence"]


def test_explicit_batch_size_wins_and_momentum_can_be_compared(digits, caplog):
    with caplog.at_level(logging.INFO, logger="superconverge"):
        plan = sc.tune(make_mlp, digits.train, digits.val, epochs=2, batch_size=48,
                       compare_momentum=True, weight_decays=(1e-4, 0.0), optimizer="sgd",
                       budget=20.0)  # fmt: skip
    assert plan.batch_size == 48 and plan.evidence[0]["why"] == "given"
    # the default's in-run search was overridden: said, with why (an auditor's check)
    assert (
        "tune: the LR is searched by range tests and short runs before the final run, not inside "
        "it: this run compares several weight decays and compares the momenta, which only short "
        "runs do"
    ) in caplog.messages
    assert set(plan.evidence[3]["details"]["runs"]) == {
        "(0.95, 0.85)",
        "0.99",
        "0.97",
        "0.95",
        "0.9",
    }


def test_weight_decay_candidates_run_in_worker_processes(digits):
    # a fixed batch: the automatic one is timed, and two timings under load can differ
    kwargs = {
        "epochs": 2,
        "weight_decays": (1e-3, 0.0),
        "batch_size": 64,
        "optimizer": "sgd",
        "budget": 20.0,
    }
    plan = sc.tune(make_mlp, digits.train, digits.val, workers=2, **kwargs)
    single = sc.tune(make_mlp, digits.train, digits.val, workers=1, **kwargs)
    runs, reference = plan.evidence[2]["details"]["runs"], single.evidence[2]["details"]["runs"]
    assert runs["0.001"]["val_loss"] == pytest.approx(reference["0.001"]["val_loss"], rel=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
        ({"epochs": 2, "weight_decays": (-1.0,)}, "weight_decays must be finite numbers >= 0"),
        ({"epochs": 2, "batch_size": "big"}, "batch_size must be 'auto' or an integer"),
        ({"epochs": 2, "budget": 0.0}, r"budget must be a number > 0"),
        # a user's checks: a third value was dropped, one value an IndexError, None a TypeError
        (
            {"epochs": 1, "momentum": (0.95, 0.85, 0.9)},
            r"momentum must be a \(high, low\) pair .* got \(0.95, 0.85, 0.9\)",
        ),
        ({"epochs": 1, "momentum": (0.95,)}, r"momentum must be a \(high, low\) pair"),
        ({"epochs": 1, "momentum": 1.5}, r"momentum must be .* got 1.5$"),
    ],
)
def test_bad_arguments(digits, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sc.tune(make_mlp, digits.train, digits.val, **kwargs)


def test_a_model_where_a_function_is_needed_is_named(digits):
    # a user's check: it failed inside the first run, "forward() missing 1 required positional
    # argument: 'input'"
    with pytest.raises(TypeError, match="model_fn must be a function that returns a new model "
                       r".* got a Sequential instance; pass its class"):  # fmt: skip
        sc.tune(make_mlp(), digits.train, digits.val, epochs=1)


def test_one_momentum_is_kept_constant(digits):
    plan = sc.tune(
        make_mlp, digits.train, digits.val, epochs=1, momentum=0.9, optimizer="sgd", settings=SHORT
    )
    assert plan.momentum == (0.9, 0.9)
    assert plan.evidence[3]["why"] == "constant 0.9 (given)"  # not "the paper's default" cycle
    assert {m for step in plan.history.step_momenta for m in step} == {0.9}


def test_settings_must_be_recipe_settings(digits):
    with pytest.raises(TypeError, match="settings must be a RecipeSettings, got dict"):
        sc.tune(make_mlp, digits.train, digits.val, epochs=1, settings={"lr_divisors": (2.0,)})


def test_test_inputs_the_model_cannot_take_are_named_before_any_training(digits, tmp_path):
    # a user's check: the final run trained its 6 epochs, then "cannot take the data inputs"
    # (test_data first met the model there), and no plan came back
    from superconverge.data import ArrayData

    narrow = ArrayData(digits.test.inputs.flatten(1)[:, :32], digits.test.targets)
    with pytest.raises(ValueError, match=r"cannot take the test inputs of shape \(32, 32\).*"
                       r"\(test_data\)"):  # fmt: skip
        sc.tune(make_mlp, digits.train, digits.val, epochs=1, test_data=narrow,
                out_dir=tmp_path / "run")  # fmt: skip
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_settings_none_is_the_defaults(digits):
    # a user's habit (None for "the default"): it was refused as "got NoneType"
    given = sc.tune(make_mlp, digits.train, digits.val, epochs=1, settings=None)
    default = sc.tune(make_mlp, digits.train, digits.val, epochs=1)
    assert (given.max_lr, given.batch_size) == (default.max_lr, default.batch_size)
    assert given.history.epoch_values("val_loss") == default.history.epoch_values("val_loss")


def test_cli_tune_writes_the_run_folder_and_report(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["tune", "--lr-search", "short-runs", "--epochs", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        re.search(r"chosen: (sgd|adamw), batch", printed)
        and "verdict:" in printed
        and "test accuracy" in printed
    )
    for name in ("report.html", "report.md", "plan.json", "history.json", "checkpoint.pt",
                 "lr_find.png", "schedule.png", "losses.png", "range_tests.json"):  # fmt: skip
        assert (out / name).is_file(), name
    page = (out / "report.html").read_text()
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 4  # loss curve, range tests, short runs, schedule
    assert all(
        base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" for data in images
    )  # self-contained
    assert "Verdict:" in page and "weight decay" in page
    environment = page[page.index("<h2>Environment</h2>") :]
    assert "superconverge tune --lr-search short-runs --epochs 3 --out" in environment
    assert "torch" in environment
    assert (out / "short_runs.png").is_file()
    plan, _, range_tests = load_run(out)
    assert plan.data == "digits" and plan.model == "mlp" and len(range_tests) >= 1
    assert "compute: search" in printed and "x one run of --epochs (budget 1)" in printed
    assert "recipe / one run of the epochs asked for" in page

    run = subprocess.run([sys.executable, "-m", "superconverge", "tune", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 2 and "pass --force" in run.stderr and "Traceback" not in run.stderr
    assert main(["report", str(out)]) == 0
    assert main(["fit", "--plan", str(out / "plan.json"), "--out", str(tmp_path / "refit")]) == 0
    refit = json.loads((tmp_path / "refit" / "plan.json").read_text())
    assert refit["results"]["status"] == "completed"


def test_tune_searches_the_lr_inside_its_final_run_by_default(digits, tmp_path):
    # issue 16: the final run's rise is the range test; the budget's samples train it longer
    plan = sc.tune(make_mlp, digits.train, digits.val, epochs=3, test_data=digits.test,
                   out_dir=tmp_path)  # fmt: skip
    assert [s["step"] for s in plan.evidence] == ["batch_size", "lr_search", "final_run",
                                                  "diagnosis"]  # fmt: skip
    record, final = plan.evidence[1], plan.evidence[2]
    assert plan.policy == "search" and plan.optimizer == "adamw" and plan.weight_decay == 0.1
    assert record["details"]["extra_epochs"] == 3 and plan.epochs == 6
    assert "20 epochs" not in record["why"] and "3 asked + 3 from the budget" in record["why"]
    found = plan.history.lr_search
    assert found is not None and plan.max_lr == found["max_lr"] == final["details"]["lr_search"]["max_lr"]
    assert plan.min_lr == pytest.approx(plan.max_lr / 10)
    assert "found by its rise" in final["decision"] and "LR search:" in final["why"]
    assert plan.compute["search_samples"] == 0 and plan.compute["x_final_run"] == 2.0
    assert final["samples"] == 6 * len(digits.train)
    assert plan.results["status"] == "completed" and plan.results["test"]["accuracy"] > 0.9
    # the folder reads back, resumes to the same run, and re-runs from plan.json
    saved, history, range_tests = load_run(tmp_path)
    assert saved.policy == "search" and saved.max_lr == plan.max_lr and range_tests == {}
    assert history.lr_search == found
    again = sc.tune(make_mlp, digits.train, digits.val, epochs=3, test_data=digits.test,
                    out_dir=tmp_path, resume=True)  # fmt: skip
    assert again.results["test"] == plan.results["test"] and again.compute == plan.compute
    rerun = saved.run(make_mlp, digits.train, digits.val)
    assert rerun.lr_search == found  # the same search on the same data and seed


def test_an_in_run_search_keeps_the_epochs_and_the_optimizer_it_is_given(digits):
    settings = RecipeSettings(extend_final_run=False)
    plan = sc.tune(make_mlp, digits.train, digits.val, epochs=2, optimizer="sgd",
                   settings=settings)  # fmt: skip
    assert plan.epochs == 2 and plan.optimizer == "sgd" and plan.weight_decay == 1e-4
    assert plan.compute["x_final_run"] == 1.0 and plan.evidence[1]["details"]["extra_epochs"] == 0
    assert plan.results["status"] == "completed" and math.isfinite(plan.max_lr)


def test_the_in_run_search_takes_its_constants_from_the_settings_and_the_plan_keeps_them(
    digits, tmp_path
):
    # a transformer did better at the range test's minimum / 10: a tune user can ask for it,
    # and the plan's re-run searches as the tune run did
    search = EdgeSettings(divisor=10.0, min_lr_divisor=20.0)
    plan = sc.tune(make_mlp, digits.train, digits.val, epochs=2, out_dir=tmp_path,
                   settings=RecipeSettings(search=search, extend_final_run=False))  # fmt: skip
    found = plan.history.lr_search
    assert plan.search == {**plan.search, "divisor": 10.0, "min_lr_divisor": 20.0}
    assert plan.search["start_lr"] == EdgeSettings().start_lr  # all of them: defaults change
    divisor = 20.0 if "no new low" in found["why"] else 10.0  # a plateau: / (10 x 2)
    assert found["divisor"] == divisor
    assert plan.max_lr == pytest.approx(found["lowest_lr"] / divisor)
    assert plan.min_lr == pytest.approx(plan.max_lr / 20)
    assert f"the lowest loss's LR / {divisor:g}" in plan.evidence[2]["why"]
    saved = load_run(tmp_path)[0]
    assert saved.search == plan.search
    assert saved.run(make_mlp, digits.train, digits.val).lr_search == found
    default = sc.tune(make_mlp, digits.train, digits.val, epochs=2,
                      settings=RecipeSettings(extend_final_run=False))  # fmt: skip
    assert default.search["divisor"] == 3.0 and default.search["plateau_factor"] == 2.0
    found = default.history.lr_search
    assert found["divisor"] == (6.0 if "no new low" in found["why"] else 3.0)
    assert default.max_lr == pytest.approx(found["lowest_lr"] / found["divisor"])


def test_callbacks_given_to_tune_see_the_final_run_only(digits):
    # a user's logger or test curve had no way into tune's final run
    class Epochs(Callback):
        def __init__(self):
            self.fits, self.epochs = 0, []

        def on_fit_start(self, trainer, history):
            self.fits += 1

        def on_epoch_end(self, trainer, record):
            self.epochs.append(record["epoch"])

    seen = Epochs()
    plan = sc.tune(make_mlp, digits.train, digits.val, epochs=2, callbacks=seen, settings=SHORT)
    assert [s["step"] for s in plan.evidence][1:3] == ["lr_bounds", "weight_decay"]  # short runs
    assert seen.fits == 1 and len(seen.epochs) == plan.epochs == len(plan.history.epochs)
    with pytest.raises(TypeError, match="callbacks must be Callback objects, got the class Epochs"):
        sc.tune(make_mlp, digits.train, digits.val, epochs=2, callbacks=[Epochs])


def test_a_short_final_run_is_told_what_tune_can_do_not_to_shrink_its_batch(digits):
    # two users' checks: `tune --epochs 2` on digits warned "more epochs or a smaller batch, or
    # pass a max_lr", where tune had chosen its smallest batch and takes no max_lr
    with pytest.warns(UserWarning, match="updates a decade") as caught:
        sc.tune(make_mlp, digits.train, digits.val, epochs=2)
    (said,) = [str(w.message) for w in caught if "updates a decade" in str(w.message)]
    assert "give the final run at least 334 updates (more epochs), or search by short runs" in said
    assert "smaller batch" not in said and "pass a max_lr" not in said


def test_search_constants_are_checked_before_any_training(digits, tmp_path):
    with pytest.raises(TypeError, match=r"settings\.search must be an EdgeSettings"):
        sc.tune(make_mlp, digits.train, digits.val, epochs=1,
                settings=RecipeSettings(search={"divisor": 10}))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="searches by short runs"):
        sc.tune(make_mlp, digits.train, digits.val, epochs=1, weight_decays=(0.1, 0.01),
                settings=RecipeSettings(search=EdgeSettings(divisor=10)))  # fmt: skip
    data = json.loads(sc.TunePlan(epochs=1, batch_size=8, max_lr=0.1, min_lr=0.01,
                                  weight_decay=0.0, momentum=None).to_json())  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown constants in the plan's search: \['divisr'\]"):
        sc.TunePlan.from_dict({**data, "search": {"divisr": 10}})
    with pytest.raises(ValueError, match="the plan's search: divisor must be > 0"):
        sc.TunePlan.from_dict({**data, "search": {"divisor": -1}})
    assert sc.TunePlan.from_dict({**data, "search": {"divisor": 10}}).search == {"divisor": 10}
    # a search plan from before plans recorded its constants searched at the divisor of then
    earlier = {**{k: v for k, v in data.items() if k != "search"}, "policy": "search"}
    assert sc.TunePlan.from_dict(earlier).search == {"divisor": 4.0, "plateau_factor": 1.0}
    assert sc.TunePlan.from_dict(data).search == {}  # not a search plan: nothing to record


def test_cli_search_divisor(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["tune", "--epochs", "1", "--search-divisor", "10", "--out", str(out)]) == 0
    plan = load_run(out)[0]
    assert plan.search["divisor"] == 10.0
    found = plan.history.lr_search  # / 10 where the loss turned up, / 20 on a plateau
    assert found["divisor"] == (20.0 if "no new low" in found["why"] else 10.0)
    assert plan.max_lr == pytest.approx(found["lowest_lr"] / found["divisor"])
    capsys.readouterr()
    for flags, message in (
        (["--search-divisor", "0"], "--search-divisor: must be a number > 0, got '0'"),
        (["--search-divisor", "4", "--lr-search", "short-runs"], "searches by short runs"),
    ):
        assert main(["tune", *flags, "--out", str(tmp_path / "bad")]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "bad").exists()


def test_the_final_run_keeps_the_average_of_its_weights_only_where_validation_says_so(
    digits, tmp_path
):
    plan = sc.tune(make_mlp, digits.train, digits.val, epochs=2, out_dir=tmp_path / "run")
    assert plan.weight_average == RecipeSettings().weight_average == 1.0
    kept = plan.results["weight_average"]
    assert kept["kept"] in ("average", "last") and kept["steps"] > 0
    chosen = kept["val_loss_average"] if kept["gain"] > kept["noise"] else kept["val_loss_last"]
    assert kept["kept"] == ("average" if kept["gain"] > kept["noise"] else "last")
    assert plan.results["final_val_loss"] == pytest.approx(chosen)
    assert plan.trainer.evaluate()["loss"] == pytest.approx(chosen)  # the weights the model holds
    final = next(r for r in plan.evidence if r["step"] == "final_run")
    assert "WeightAverage: the model " in final["why"]
    assert load_run(tmp_path / "run")[0].weight_average == 1.0  # plan.json: fit --plan again
    # off: the last weights, as before
    plan = sc.tune(make_mlp, digits.train, digits.val, epochs=2,
                   settings=RecipeSettings(weight_average=None))  # fmt: skip
    assert plan.weight_average is None and "weight_average" not in plan.results
    assert plan.trainer.evaluate()["loss"] == pytest.approx(plan.results["final_val_loss"])
    # a plan written before it averaged nothing
    data = json.loads(plan.to_json())
    del data["weight_average"]
    assert sc.TunePlan.from_dict(data).weight_average is None
    with pytest.raises(ValueError, match=r"weight_average must be None or in \(0, 1\], got 0"):
        RecipeSettings(weight_average=0)


def test_cli_weight_average(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["tune", "--epochs", "1", "--weight-average", "none", "--out", str(out)]) == 0
    assert load_run(out)[0].weight_average is None
    assert "weights:" not in capsys.readouterr().out
    assert main(["tune", "--epochs", "1", "--weight-average", "0.5", "--out", str(out), "--force"]) == 0
    assert load_run(out)[0].weight_average == 0.5
    assert "weights: " in capsys.readouterr().out
    assert main(["tune", "--weight-average", "1.5", "--out", str(tmp_path / "bad")]) == 2
    assert "--weight-average: must be a number in (0, 1] or none, got '1.5'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_asking_tune_to_compare_runs_the_short_run_search(digits):
    # several weight decays (and compare_momentum) are compared by short runs, not given up
    plan = sc.tune(make_mlp, digits.train, digits.val, epochs=2, optimizer="sgd",
                   weight_decays=(1e-4, 1e-3))  # fmt: skip
    assert [s["step"] for s in plan.evidence][1:3] == ["lr_bounds", "weight_decay"]
    assert plan.policy == "smith"


def test_cli_tune_searches_in_the_final_run_and_reports_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["tune", "--epochs", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "chosen: adamw, batch" in printed and "verdict:" in printed
    for name in ("report.html", "report.md", "plan.json", "history.json", "checkpoint.pt",
                 "schedule.png", "losses.png"):  # fmt: skip
        assert (out / name).is_file(), name
    assert not (out / "short_runs.png").exists() and not (out / "lr_find.png").exists()
    page = (out / "report.html").read_text()
    assert "lr_search" in page and "found by its rise" in page
    plan, history, _ = load_run(out)
    assert plan.policy == "search" and plan.epochs == 4 and history.lr_search is not None
    assert main(["fit", "--plan", str(out / "plan.json"), "--out", str(tmp_path / "refit")]) == 0
    refit = json.loads((tmp_path / "refit" / "plan.json").read_text())
    assert refit["results"]["status"] == "completed"
    assert main(["tune", "--epochs", "2", "--exact-epochs", "--out", str(tmp_path / "x")]) == 0
    assert load_run(tmp_path / "x")[0].epochs == 2


def test_report_renders_in_headless_chromium_with_every_image_loaded(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    out = tmp_path / "run"
    assert main(["tune", "--lr-search", "short-runs", "--epochs", "2", "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    probe = ("<script>window.addEventListener('load', () => { const ok = [...document.images].every("
             "i => i.complete && i.naturalWidth > 0); document.title = 'images:' + document.images.length"
             " + ':' + ok; });</script></body>")  # fmt: skip
    (out / "probe.html").write_text(page.replace("</body>", probe))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]  # fmt: skip
    dom = subprocess.run([chromium, *flags, "--dump-dom", (out / "probe.html").as_uri()],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "<title>images:4:true</title>" in dom.stdout, dom.stderr[-2000:]
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, "--window-size=1100,4400", f"--screenshot={shot}",
                    (out / "report.html").as_uri()], capture_output=True, timeout=120)  # fmt: skip
    assert shot.stat().st_size > 50_000
    Path("/tmp/superconverge-report-screenshot.png").write_bytes(shot.read_bytes())


def test_a_diverged_final_run_is_reported_not_raised(digits):
    plan = sc.TunePlan(epochs=1, batch_size=32, max_lr=1e4, min_lr=1e3, weight_decay=0.0,
                       momentum=(0.95, 0.85))  # fmt: skip
    with pytest.warns(RuntimeWarning, match="diverged"):
        history = plan.run(make_mlp, digits.train, digits.val, test_data=digits.test)
    assert history.status == "diverged"
    assert plan.results["status"] == "diverged" and "test" not in plan.results
    assert plan.results["verdict"]["kind"] == "diverged"


def test_a_final_run_that_falls_apart_is_redone_once_at_a_third_of_max_lr(digits, tmp_path):
    # every final run counts as fallen apart (factor 0): the real retry path, on real data
    kwargs = {"epochs": 2, "weight_decays": (1e-4,), "batch_size": 64, "test_data": digits.test,
              "settings": RecipeSettings(lr_search="short_runs", retry_loss_factor=0.0), "optimizer": "sgd"}  # fmt: skip
    plan = sc.tune(make_mlp, digits.train, digits.val, out_dir=tmp_path, **kwargs)
    steps = [step["step"] for step in plan.evidence]
    assert steps[-3:] == ["final_run", "final_run", "diagnosis"]
    first, second = plan.evidence[-3], plan.evidence[-2]
    assert "redone at max_lr / 3" in first["why"] and "x that of its short run" in first["why"]
    chosen = plan.evidence[1]["decision"]["max_lr"]
    assert plan.max_lr == pytest.approx(chosen / 3)
    assert plan.min_lr == pytest.approx(plan.max_lr / 10)
    assert f"max_lr {plan.max_lr:.3g}" in second["decision"]
    assert plan.results["status"] == "completed" and plan.results["test"]["accuracy"] > 0.5
    assert (tmp_path / "checkpoint.pt").exists()


def test_a_searched_final_run_redone_keeps_the_searchs_min_lr_divisor(digits):
    # the rise finds its edge, then the loss is NaN until the back-offs run out: the run
    # diverged and is redone below what the search found, Smith's cycle at the search's
    # min_lr_divisor (20 here; before: RecipeSettings' 10)
    calls = [0]

    def nan_for_a_while(outputs, targets):
        loss = torch.nn.functional.cross_entropy(outputs, targets)
        if torch.is_grad_enabled():
            calls[0] += 1
            if 150 <= calls[0] <= 260:
                return loss * math.nan
        return loss

    settings = RecipeSettings(search=EdgeSettings(min_lr_divisor=20))
    with pytest.warns(RuntimeWarning):
        plan = sc.tune(make_mlp, digits.train, digits.val, epochs=2, loss_fn=nan_for_a_while,
                       settings=settings)  # fmt: skip
    first = next(e for e in plan.evidence if e["step"] == "final_run")
    assert first["why"].startswith("redone at max_lr / 3: it diverged")
    assert plan.policy == "smith" and plan.max_lr / plan.min_lr == pytest.approx(20)


def test_a_one_epoch_final_run_is_judged_against_its_short_run(digits, tmp_path):
    # one validation point gives no trend; the short run at the same settings is a second point
    plan = sc.tune(make_mlp, digits.train, digits.val, epochs=1, optimizer="sgd",
                   out_dir=tmp_path, settings=SHORT)  # fmt: skip
    verdict = plan.results["verdict"]
    assert verdict["kind"] == "underfitting", verdict["explanation"]  # digits: 10 epochs do better
    evidence = verdict["evidence"]
    assert evidence["short_run_samples"] == plan.evidence[1]["details"]["short_run"]["samples"]
    assert evidence["final_samples"] == plan.evidence[-2]["samples"] == len(digits.train)
    assert evidence["final_val_loss"] == plan.results["final_val_loss"]
    assert (
        evidence["fall_per_doubling"] > evidence["noise"] == plan.evidence[1]["details"]["margin"]
    )
    assert plan.evidence[-1]["decision"] == "underfitting"
    # the folder is as complete as the CLI's: `superconverge report DIR` and `fit --plan` use it
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["results"]["verdict"]["kind"] == "underfitting"
    assert (tmp_path / "history.json").is_file() and (tmp_path / "range_tests.json").is_file()
    # resumed: the final run read back from its checkpoint, the same verdict
    again = sc.tune(make_mlp, digits.train, digits.val, epochs=1, optimizer="sgd",
                    out_dir=tmp_path, resume=True, settings=SHORT)  # fmt: skip
    assert again.results["verdict"] == verdict
    # a final run redone at another LR is not at the short run's settings: no second point
    redone = sc.tune(make_mlp, digits.train, digits.val, epochs=1, optimizer="sgd",
                     settings=RecipeSettings(lr_search="short_runs", retry_loss_factor=0.0))  # fmt: skip
    assert [r["step"] for r in redone.evidence][-3:] == ["final_run", "final_run", "diagnosis"]
    assert redone.results["verdict"]["kind"] == "inconclusive"


def test_final_run_failure_rule():
    from superconverge.tuning.decisions import final_run_failed

    assert final_run_failed("diverged", 0.1, 0.1) == "it diverged"
    assert final_run_failed("completed", float("nan"), 0.1) == "its validation loss is nan"
    assert final_run_failed("completed", 0.14, 0.1) is None  # within 1.5x: noise
    assert final_run_failed("completed", 0.16, 0.1).startswith("its validation loss 0.16 is 1.6x")
    assert final_run_failed("completed", 5.0, float("nan")) is None  # no reference to judge by


def test_when_the_lowest_candidate_wins_the_grid_extends_downwards(digits):
    # candidates at the range test's lowest-loss LR itself and twice it: far too high, so the
    # lowest (or nothing) wins and the recipe must look below the grid
    plan = sc.tune(make_mlp, digits.train, digits.val, epochs=2, weight_decays=(0.0,),
                   batch_size=64, test_data=digits.test, optimizer="sgd", budget=20.0,
                   settings=RecipeSettings(lr_search="short_runs", lr_divisors=(1.0, 0.5), measure_noise=False))  # fmt: skip
    details = plan.evidence[1]["details"]
    extended = details["extended_below"]
    assert 1 <= len(extended) <= 3
    grid = sorted(float(k) for k in details["short_runs"])[len(extended) :]
    assert extended[0] == pytest.approx(grid[0] / 3, rel=1e-3)  # keys carry 4 digits
    assert plan.max_lr <= grid[0] * 1.001
    assert plan.results["test"]["accuracy"] > 0.8


def test_when_the_highest_candidate_wins_the_grid_extends_upwards(digits):
    # candidates a hundred and thirty times below the range test's lowest-loss LR: far
    # too timid, so the highest wins and the recipe must look above the grid, doubling each time
    plan = sc.tune(make_mlp, digits.train, digits.val, epochs=2, weight_decays=(0.0,),
                   batch_size=64, test_data=digits.test, optimizer="sgd", budget=20.0,
                   settings=RecipeSettings(lr_search="short_runs", lr_divisors=(100.0, 30.0), measure_noise=False))  # fmt: skip
    details = plan.evidence[1]["details"]
    above = details["extended_above"]
    assert details["extended_below"] == []
    assert 1 <= len(above) <= 3
    grid_top = max(float(k) for k in details["short_runs"] if float(k) < above[0] * 0.99)
    assert above[0] == pytest.approx(2 * grid_top, rel=1e-3)  # keys carry 4 digits
    assert all(b == pytest.approx(2 * a) for a, b in itertools.pairwise(above))
    lowest_loss_lr = 10 * details["suggestions"]["minimum"]
    assert max(above) <= lowest_loss_lr * 1.0001
    assert plan.max_lr > grid_top * 1.5  # it moved up
    assert "above the grid" in plan.evidence[1]["why"]


class _Scale(torch.nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, inputs):
        return inputs * self.factor


def _tiny_logits_mlp():
    # outputs scaled by 3e-3: the loss stays flat up to LR 10 and only falls beyond it
    return torch.nn.Sequential(build("mlp"), _Scale(3e-3))


def test_a_range_test_flat_up_to_lr_10_is_swept_two_decades_further(digits):
    plan = sc.tune(_tiny_logits_mlp, digits.train, digits.val, epochs=1, weight_decays=(0.0,),
                   batch_size=64, optimizer="sgd", settings=SHORT)  # fmt: skip
    why = plan.evidence[1]["why"]
    assert "first sweep to LR 10: the loss is flat" in why and "swept again to LR 1000" in why
    assert plan.max_lr > 1.0  # found beyond the first sweep's end


def test_auto_batch_leaves_the_final_run_enough_updates(digits):
    # 1,293 training images for 2 epochs: 1,293 * 2 / 1,000 = 2 per batch would give 1,000
    # updates, but the update floor stops at 16 (a tenth of the set would allow 129)
    plan = sc.tune(make_mlp, digits.train, digits.val, epochs=2, weight_decays=(0.0,))
    assert plan.batch_size == 16
    assert "32 and larger were not tried" in plan.evidence[0]["why"]  # the next candidate
    assert "fewer than 1000 updates" in plan.evidence[0]["why"]


def test_tune_names_a_bad_label_before_any_training(digits, tmp_path):
    from superconverge.data.checks import DataError

    def five_outputs():
        return build("mlp", num_classes=5)  # the digits have 10 classes

    with pytest.raises(DataError, match=r"train_data sample .* but the model has 5 outputs"):
        sc.tune(five_outputs, digits.train, digits.val, epochs=1, out_dir=tmp_path)
    assert not (tmp_path / "journal.json").exists()  # nothing was started


def test_the_same_call_makes_the_same_choices_on_an_idle_and_a_busy_machine(digits):
    # issue 16: the CPU batch rule timed sizes within the noise and flipped with the load; now
    # no timing decides, so two busy processes beside the second call change nothing
    kwargs = {"epochs": 2, "budget": 2.0, "seed": 3, "settings": SHORT}
    idle = sc.tune(make_mlp, digits.train, digits.val, **kwargs)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        busy = sc.tune(make_mlp, digits.train, digits.val, **kwargs)
    finally:
        for burner in burners:
            burner.kill()
    assert [s["decision"] for s in busy.evidence[:4]] == [s["decision"] for s in idle.evidence[:4]]
    assert busy.evidence[1]["details"]["short_runs"] == idle.evidence[1]["details"]["short_runs"]
    assert busy.compute == idle.compute


def test_a_short_run_that_does_not_overfit_hands_its_decay_runs_to_the_final_run(digits, tmp_path):
    # the defaults (`make run`'s job): on digits the short run at the chosen LR shows no
    # overfitting beyond the noise, and the LR search leaves more than an epoch of the allowance
    settings = SHORT
    plan = sc.tune(make_mlp, digits.train, digits.val, epochs=10, out_dir=tmp_path, settings=SHORT)
    record, compute = plan.evidence[2], plan.compute
    extra = record["details"]["extra_epochs"]
    assert extra >= 1 and plan.epochs == 10 + extra
    assert "not searched" in record["why"] and "no overfitting" in record["details"]["extension"]
    assert record["samples"] == 0 and set(record["details"]["runs"]) == {"0.0001"}
    assert compute["handed_to_final_run_samples"] == extra * len(digits.train)
    assert "weight_decay" not in compute["search_samples_by_stage"]
    assert compute["search_samples"] + compute["handed_to_final_run_samples"] <= (
        compute["allowance_samples"]
    )  # fmt: skip
    assert compute["final_run_samples"] >= plan.epochs * len(digits.train)
    assert len(plan.history.epochs) == plan.epochs
    assert f"{plan.epochs} epochs of 1cycle" in plan.evidence[4]["decision"]
    # a plan saved and read back re-runs the extended run; a resumed call makes the same decisions
    assert sc.TunePlan.from_json(plan.to_json()).epochs == plan.epochs
    again = sc.tune(make_mlp, digits.train, digits.val, epochs=10, settings=settings,
                    out_dir=tmp_path, resume=True)  # fmt: skip
    assert again.epochs == plan.epochs and again.evidence[2]["why"] == record["why"]
    assert again.compute == compute


def test_samples_held_back_during_the_lr_search_go_to_the_final_run(digits):
    # the rejected reserve, kept as a setting: half the allowance is not used by the LR search
    settings = RecipeSettings(lr_search="short_runs", extension_reserve_fraction=0.5)
    plan = sc.tune(make_mlp, digits.train, digits.val, epochs=6, optimizer="sgd",
                   settings=settings)  # fmt: skip
    compute, extra = plan.compute, plan.evidence[2]["details"]["extra_epochs"]
    assert extra >= 1 and plan.epochs == 6 + extra
    assert compute["search_samples"] <= compute["allowance_samples"] // 2 + 640  # + the repeat
    assert compute["handed_to_final_run_samples"] == extra * len(digits.train)
    assert compute["handed_to_final_run_samples"] <= compute["allowance_samples"] // 2


def test_the_final_run_keeps_its_epochs_when_asked(digits, capsys):
    settings = RecipeSettings(
        lr_search="short_runs", extension_reserve_fraction=0.5, extend_final_run=False
    )
    plan = sc.tune(make_mlp, digits.train, digits.val, epochs=3, optimizer="sgd",
                   settings=settings)  # fmt: skip
    assert plan.epochs == 3 and plan.compute["handed_to_final_run_samples"] == 0
    assert plan.evidence[2]["details"]["extension"].endswith(
        "off (RecipeSettings.extend_final_run)"
    )
    # a script that configured no logging sees the decisions, once each, as the CLI shows them
    lines = capsys.readouterr().err.splitlines()
    for stage in ("batch_size", "lr_bounds", "weight_decay", "momentum", "final_run", "diagnosis"):
        assert sum(line.startswith(f"tune: {stage} = ") for line in lines) == 1, stage
    assert sum(line.startswith("lr_find (SGD): max_lr ") for line in lines) == 1
    bounds = next(line for line in lines if line.startswith("tune: lr_bounds = "))
    assert bounds.startswith(f"tune: lr_bounds = optimizer sgd, max_lr {plan.max_lr:.3g}, min_lr")


def test_a_short_run_that_does_not_overfit_spends_nothing_on_weight_decay(digits):
    # the final run kept at its epochs: the weight-decay runs' samples are not spent either
    # (budget 3: room for every decay where they do run)
    settings = RecipeSettings(lr_search="short_runs", extend_final_run=False)
    plan = sc.tune(make_mlp, digits.train, digits.val, epochs=3, optimizer="sgd", budget=3.0,
                   settings=settings)  # fmt: skip
    record, compute = plan.evidence[2], plan.compute
    assert plan.weight_decay == 1e-4 and set(record["details"]["runs"]) == {"0.0001"}
    assert record["samples"] == 0 and "weight_decay" not in compute["search_samples_by_stage"]
    assert "not searched: the short run shows no overfitting" in record["why"]
    assert "the final run is not lengthened: off" in record["why"]
    # the paper's search whatever the short run shows, and candidates the caller names, still run
    always = sc.tune(
        make_mlp,
        digits.train,
        digits.val,
        epochs=3,
        optimizer="sgd",
        budget=3.0,
        settings=RecipeSettings(
            lr_search="short_runs", extend_final_run=False, weight_decay_runs="always"
        ),
    )
    # named candidates are compared even where the extension could take their share (it is on
    # here, and the same call without them lengthens the final run)
    named = sc.tune(make_mlp, digits.train, digits.val, epochs=3, optimizer="sgd", budget=3.0,
                    weight_decays=(1e-4, 1e-3), settings=SHORT)  # fmt: skip
    assert named.epochs == 3 and named.compute["handed_to_final_run_samples"] == 0
    for other in (always, named):
        assert len(other.evidence[2]["details"]["runs"]) >= 2
        assert other.compute["search_samples_by_stage"]["weight_decay"] > 0
    # the same LR search either way: only the weight-decay stage differs
    assert always.evidence[1]["decision"] == plan.evidence[1]["decision"]
    assert compute["search_samples"] < always.compute["search_samples"]


def test_cli_exact_epochs_keeps_the_final_run_at_epochs(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["tune", "--lr-search", "short-runs", "--epochs", "2", "--exact-epochs", "--optimizer", "sgd",
                 "--out", str(out)]) == 0  # fmt: skip
    plan, history, _ = load_run(out)
    assert plan.epochs == 2 and len(history.epochs) == 2
    assert plan.evidence[2]["details"]["extension"].endswith(
        "off (RecipeSettings.extend_final_run)"
    )
    assert plan.compute["handed_to_final_run_samples"] == 0
    assert "x one run of --epochs" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize(
    ("device", "message"), [("cuda", "must be available"), ("foo", "must be 'auto'")]
)
def test_a_bad_device_is_named_before_the_run_folder_is_made(digits, tmp_path, device, message):
    with pytest.raises(ValueError, match=f"device {message}"):
        sc.tune(
            make_mlp, digits.train, digits.val, epochs=1, device=device, out_dir=tmp_path / "run"
        )
    assert not (tmp_path / "run").exists()


def test_a_noise_larger_than_the_losses_keeps_the_defaults_instead_of_failing(
    tmp_path, monkeypatch
):
    # a user's check: `superconverge tune --epochs 40` on digits failed in the LR stage with
    # "lr_safety_margin must be in [0, 1), got 1.066": two seeds of one short run ended at
    # validation losses (near 0) that differed by more than the smaller of them
    from superconverge.tuning import stages
    from superconverge.tuning.stages import MAX_MARGIN, margin_for

    settings = RecipeSettings()
    assert margin_for(settings, {"relative": 1.066}) == MAX_MARGIN < 1
    assert margin_for(settings, {"relative": 0.31}) == 0.31  # below the cap: as measured
    assert margin_for(settings, {"relative": 0.0}) == settings.noise_floor
    assert margin_for(settings, None) == settings.lr_safety_margin

    def noisy(setup, family):  # what the 40-epoch run measured, on a short run of 3 epochs
        return {"max_lr": min(family.losses), "val_losses": [0.077, 0.16], "relative": 1.066}

    monkeypatch.setattr(stages, "measure_noise", noisy)
    out = tmp_path / "run"
    flags = ["--lr-search", "short-runs", "--epochs", "3", "--budget", "3", "--out", str(out)]
    assert main(["tune", *flags]) == 0
    assert sc.load_run is load_run  # public: a notebook reads a CLI run back
    plan = sc.load_run(out)[0]
    lr_bounds = plan.evidence[1]
    assert lr_bounds["details"]["margin"] == MAX_MARGIN
    assert "differed by 107%: too noisy for a gain under 99% to count" in lr_bounds["why"]
    assert plan.optimizer == "sgd" and plan.weight_decay == 1e-4  # the defaults
    assert plan.results["status"] == "completed"


def test_a_loss_below_zero_is_decided_on_as_the_same_loss_above_it(digits):
    # a user's check: loss_fn = cross-entropy - 5 (any callable may go below 0: a Gaussian NLL)
    # trains with the same gradients, but the ratio rules read it upside down: "-4.63 is 1.2x
    # the best epoch's -3.81" called a better epoch a stall (weights restored, LR halved twice),
    # and a final run that ended lower than its short run was redone at a third of the LR
    def shifted(outputs, targets):
        return torch.nn.functional.cross_entropy(outputs, targets) - 5.0

    common = {"epochs": 3, "test_data": digits.test, "seed": 0, "settings": SHORT}
    plain = sc.tune(make_mlp, digits.train, digits.val, **common)
    below = sc.tune(make_mlp, digits.train, digits.val, loss_fn=shifted, **common)
    final = [e for e in below.evidence if e["step"] == "final_run"]
    assert len(final) == 1 and "stalled" not in final[0]["why"] and "redone" not in final[0]["why"]
    assert [getattr(below, k) for k in ("batch_size", "optimizer", "max_lr", "weight_decay")] == [
        getattr(plain, k) for k in ("batch_size", "optimizer", "max_lr", "weight_decay")
    ]
    assert below.results["final_val_loss"] == pytest.approx(plain.results["final_val_loss"] - 5)
    assert below.results["test"]["accuracy"] == plain.results["test"]["accuracy"]
    assert below.results["verdict"]["kind"] == plain.results["verdict"]["kind"]
    assert re.search(r"beat \S+ by \d", below.evidence[1]["why"])  # a gain, not "by -4.7%"


def test_a_short_run_that_diverged_is_shown_as_diverged_not_nan(digits):
    # the evidence read "0.646: nan"; the run's status says what happened
    settings = RecipeSettings(
        lr_search="short_runs", lr_divisors=(10.0, 0.01), measure_noise=False
    )  # 0.01: past it
    plan = sc.tune(make_mlp, digits.train, digits.val, epochs=1, optimizer="sgd",
                   settings=settings)  # fmt: skip
    why = plan.evidence[1]["why"]
    assert re.search(r"\d: diverged", why) and "nan" not in why


def test_the_weight_decays_compared_reach_an_optimizer_callable(digits):
    # a user's check: with optimizer=callable every weight-decay candidate trained the same run
    # (equal losses to 4 digits) and the plan reported one the optimizer never used
    def nesterov(groups):
        return torch.optim.SGD(groups, lr=0.1, momentum=0.9, nesterov=True)

    plan = sc.tune(make_mlp, digits.train, digits.val, epochs=2, optimizer=nesterov,
                   weight_decays=[1e-4, 0.1, 0.0], budget=4.0)  # fmt: skip
    losses = {wd: run["val_loss"] for wd, run in plan.evidence[2]["details"]["runs"].items()}
    assert {"0.0001", "0.1", "0"} <= set(losses)
    assert losses["0.1"] > 1.5 * losses["0.0001"]  # a decay of 0.1 at these LRs hurts: it ran
    groups = plan.trainer.optimizer.param_groups
    assert all(group["weight_decay"] == plan.weight_decay for group in groups)
    assert all(group["nesterov"] for group in groups)  # the user's own optimizer trained


class _HeavyBall(torch.optim.Optimizer):
    """A user's own optimizer: lr and momentum, no weight decay."""

    def __init__(self, params, lr=0.1, momentum=0.9):
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    buffer = self.state[param].setdefault("buffer", torch.zeros_like(param))
                    buffer.mul_(group["momentum"]).add_(param.grad)
                    param.add_(buffer, alpha=-group["lr"])


def test_an_optimizer_that_takes_no_weight_decay_is_tuned_without_a_decay_search(digits):
    # a review's check: such a callable was refused ("no weight_decay to set to 0.0001")
    plan = sc.tune(
        make_mlp, digits.train, digits.val, epochs=2, optimizer=_HeavyBall, settings=SHORT
    )
    assert plan.weight_decay == 0.0 and set(plan.evidence[2]["details"]["runs"]) == {"0"}
    assert plan.results["status"] == "completed" and plan.results["final_val_loss"] < 0.5


def test_a_range_test_that_learned_nothing_in_its_steps_sweeps_again_longer():
    # a noisy regression (digits' labels as standardised targets, seed 2): both optimizers'
    # 100-step sweeps read "the loss never went down" and tune stopped with "found none"; over
    # 300 steps the same LRs show the fall (docs/benchmarks.md, "Regression targets")
    import numpy as np
    from sklearn.datasets import load_digits

    from superconverge.data import ArrayData

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    train, val = order[: int(0.8 * len(x))], order[int(0.8 * len(x)) :]
    mean, std = y[train].mean(), y[train].std()

    def split(rows):
        targets = torch.tensor((y[rows] - mean) / std, dtype=torch.float32)[:, None]
        return ArrayData(torch.tensor(x[rows] / 16.0, dtype=torch.float32), targets)

    def model():
        return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))

    torch.manual_seed(2)
    plan = sc.tune(model, split(train), split(val), epochs=2, loss_fn=torch.nn.functional.mse_loss,
                   seed=2, settings=SHORT)  # fmt: skip
    why = plan.evidence[1]["why"]
    assert "the loss never went down" in why and "swept again over 300 steps" in why
    assert plan.results["final_val_loss"] < 0.5  # the mean predictor is 1 (standardised)


class _NaNAfter:
    """Cross-entropy, except NaN from the `start`-th training call on, for the first model that
    trains only (the one `models` counted when training began)."""

    def __init__(self, start):
        self.start, self.count, self.models, self.first = start, 0, [0], None

    def model(self):
        self.models[0] += 1
        return make_mlp()

    def __call__(self, outputs, targets):
        loss = torch.nn.functional.cross_entropy(outputs, targets)
        if torch.is_grad_enabled():
            self.first = self.models[0] if self.first is None else self.first
            self.count += 1
            if self.count > self.start and self.models[0] == self.first:
                return loss * math.nan
        return loss


def test_an_in_run_final_run_that_diverges_is_redone_below_what_its_rise_found(digits):
    # NaN from the 40th training step (the rise's edge) on: every back-off diverges again, so
    # the run is redone (a new model) as Smith's cycle at a third of the max_lr its rise found
    nan = _NaNAfter(40)
    plan = sc.tune(nan.model, digits.train, digits.val, epochs=3, loss_fn=nan,
                   settings=RecipeSettings(extend_final_run=False))  # fmt: skip
    first, second = [r for r in plan.evidence if r["step"] == "final_run"]
    found = first["details"]["lr_search"]["max_lr"]
    assert "redone at max_lr / 3: it diverged" in first["why"]
    assert plan.policy == "smith" and plan.max_lr == pytest.approx(found / 3)
    assert plan.min_lr == pytest.approx(plan.max_lr / 10)
    assert plan.results["status"] == "completed" and "found by its rise" not in second["decision"]


def test_a_resumed_final_run_is_charged_the_epochs_its_checkpoint_kept(digits, tmp_path, monkeypatch):
    # a user's check: after a Ctrl-C in the final run's epoch 3, the resumed tune reported
    # 4.3 s for a final run whose first two epochs had taken 3.8 s in the first process
    import time

    from superconverge.tuning import final

    real = final._JournalClock.after_epoch

    def slow_then_interrupted(self, fit):
        time.sleep(1.0)  # two epochs of a second each, kept by the checkpoint
        real(self, fit)
        if fit.epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(final._JournalClock, "after_epoch", slow_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        sc.tune(make_mlp, digits.train, digits.val, epochs=2, out_dir=tmp_path)
    monkeypatch.undo()
    plan = sc.tune(make_mlp, digits.train, digits.val, epochs=2, out_dir=tmp_path, resume=True)
    record = next(r for r in plan.evidence if r["step"] == "final_run")
    assert plan.epochs == 4 and record["seconds"] >= 2.0


def test_tune_gives_the_callers_torch_generator_back_and_warns_at_the_callers_line(digits):
    import warnings

    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sc.tune(make_mlp, digits.train, digits.val, epochs=1)  # a rise too short: warned
    assert torch.equal(torch.rand(3), expected)
    short = [w for w in caught if "max_lr='search' on a run of" in str(w.message)]
    assert short and short[0].filename == __file__  # not contextlib.py, which wraps tune


def test_an_optimizer_without_momentum_is_tuned_with_momentum_none(digits):
    # a user's check: tune(optimizer=Rprop) said "build the plan with momentum=None", and
    # tune(..., momentum=None) then said "an optimizer without momentum cannot be tuned"
    with pytest.raises(ValueError, match=r"Rprop has no momentum .* pass tune\(\.\.\., momentum=None\)"):
        sc.tune(make_mlp, digits.train, digits.val, epochs=1, optimizer=torch.optim.Rprop)
    with pytest.raises(ValueError, match="compare_momentum compares momenta, but momentum=None"):
        sc.tune(make_mlp, digits.train, digits.val, epochs=1, optimizer=torch.optim.Rprop,
                momentum=None, compare_momentum=True)  # fmt: skip
    plan = sc.tune(make_mlp, digits.train, digits.val, epochs=1, optimizer=torch.optim.Rprop,
                   momentum=None, settings=RecipeSettings(lr_search="short_runs"))  # fmt: skip
    assert plan.momentum is None and plan.weight_decay == 0  # no momentum, no decay searched
    (step,) = [step for step in plan.evidence if step["step"] == "momentum"]
    assert step["decision"] is None and "left alone (momentum=None)" in step["why"]
    assert {m for momenta in plan.history.step_momenta for m in momenta} <= {None}  # none set


@pytest.mark.parametrize(("seed", "error"), [(-1, ValueError), (2**32, ValueError), (1.5, TypeError)])
def test_a_seed_out_of_the_generators_range_is_refused_by_name(digits, seed, error):
    # tune(seed=-1) trained, and wrote a plan that fit --plan refused ("seed must be in ...")
    with pytest.raises(error, match=r"seed must be .*in \[0, 4294967295\]"):
        sc.tune(make_mlp, digits.train, digits.val, epochs=1, seed=seed)
    with pytest.raises(error, match=r"seed must be .*in \[0, 4294967295\]"):
        sc.Trainer(make_mlp(), torch.nn.functional.cross_entropy, digits.train, seed=seed)


def test_an_optimizer_callable_that_needs_the_models_parameters_is_not_refused_early(digits):
    # a reviewer's check: the momentum check built the callable on one 1-element parameter,
    # where a factory keeping only matrices (as for Muon) has none: "empty parameter list"
    def matrices_only(params):
        return torch.optim.SGD([p for p in params if p.ndim == 2], lr=0.1, momentum=0.9)

    from superconverge.tuning.recipe import _check_momentum_to_cycle

    _check_momentum_to_cycle([matrices_only], (0.95, 0.85))  # no error: checked by its run
    with pytest.raises(ValueError, match="Adagrad has no momentum"):
        _check_momentum_to_cycle([torch.optim.Adagrad], (0.95, 0.85))


def test_a_loss_partials_fingerprint_is_the_same_in_another_process():
    # a reviewer's check: repr() of a function argument holds its address, which differs per
    # process: a resume or a study worker was refused though nothing had changed
    import functools
    import subprocess
    import sys

    from superconverge.tuning.resumable import _loss_name

    code = (
        "import functools, torch; from superconverge.tuning.resumable import _loss_name; "
        "print(_loss_name(functools.partial(torch.nn.functional.cross_entropy, "
        "weight=torch.arange(3.0), reduction='sum', label_smoothing=0.1)), end='')"
    )
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = _loss_name(functools.partial(torch.nn.functional.cross_entropy,
                                        weight=torch.arange(3.0), reduction="sum",
                                        label_smoothing=0.1))  # fmt: skip
    assert here == there.stdout and "0x" not in here
    assert _loss_name(functools.partial(torch.nn.functional.l1_loss, reduction=object())) == (
        "partial(l1_loss, reduction=object)"
    )
