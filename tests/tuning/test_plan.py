"""`TunePlan`: declared fields, plan.json round trips, and the run folder (`save_run`/`load_run`)."""

import json
import math
import re

import pytest

from superconverge.finder.result import RangeTestResult
from superconverge.training.history import History
from superconverge.tuning.plan import TunePlan, load_run, save_run


def _plan(**extra) -> TunePlan:
    evidence = [
        {"step": "batch_size", "decision": 64, "why": "given", "seconds": 0.5, "details": {}},
        {"step": "lr_bounds", "decision": {"max_lr": 0.2, "min_lr": 0.02}, "why": "short runs",
         "seconds": 3.0, "details": {"short_runs": {"0.2": {"val_loss": math.nan}},
                                     "extended_below": [0.05]}},
    ]  # fmt: skip
    return TunePlan(epochs=3, batch_size=64, max_lr=0.2, min_lr=0.02, weight_decay=1e-4,
                    momentum=(0.95, 0.85), evidence=evidence,
                    results={"status": "completed", "final_val_loss": 0.25}, **extra)  # fmt: skip


def _range_test() -> RangeTestResult:
    return RangeTestResult(lrs=(1e-3, 1e-2), losses=(2.0, 1.0), smoothed_losses=(2.0, 1.0),
                           stop_reason="end", suggestions={"minimum": 1e-3}, max_lr=1e-3,
                           min_lr=1e-4, rule="minimum", reason="test", lowest_loss_lr=1e-2)  # fmt: skip


def test_plan_round_trips_through_json_with_its_evidence():
    plan = _plan(data="digits", model="mlp", model_options={"width": 2})
    again = TunePlan.from_json(plan.to_json())
    assert again.evidence[0] == plan.evidence[0]  # (NaN compares unequal: compare the text)
    assert again.to_json() == plan.to_json()
    assert math.isnan(again.evidence[1]["details"]["short_runs"]["0.2"]["val_loss"])
    assert again.momentum == (0.95, 0.85) and again.evidence[1]["details"]["extended_below"] == [
        0.05
    ]


def test_objects_on_the_plan_stay_out_of_plan_json():
    plan = _plan(history=History(status="completed"), range_tests={"wd 0": _range_test()})
    saved = json.loads(plan.to_json())
    assert not {"history", "range_tests", "trainer"} & set(saved)
    assert plan.history is not None and plan.trainer is None


def test_plan_json_of_todays_files_still_loads_and_unknown_keys_are_named():
    today = {"epochs": 2, "batch_size": 16, "max_lr": 0.1, "min_lr": 0.01, "weight_decay": 0.0,
             "momentum": [0.95, 0.85], "policy": "smith", "seed": 0, "data": "digits",
             "model": "mlp", "model_options": {}, "evidence": [], "results": {}}  # fmt: skip
    assert TunePlan.from_dict(today).momentum == (0.95, 0.85)
    with pytest.raises(ValueError, match=r"unknown plan settings: \['history'\]"):
        TunePlan.from_dict({**today, "history": {}})
    # a user's check: fit --plan named every policy but the search's, which tune's plans use
    with pytest.raises(ValueError, match=r"policy must be one of .*'fastai', 'search', got 'serch'"):
        TunePlan.from_dict({**today, "policy": "serch"})
    assert TunePlan.from_dict({**today, "policy": "search"}).policy == "search"


def test_the_run_folder_round_trips(tmp_path):
    history = History(step_losses=[1.0, 0.5], status="completed", epochs=[{"epoch": 0}])
    plan = _plan(history=history, range_tests={"weight decay 0": _range_test()})
    save_run(tmp_path, plan)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "history.json",
        "plan.json",
        "range_tests.json",
    ]  # no temporary files left behind
    loaded, loaded_history, range_tests = load_run(tmp_path)
    assert loaded.to_json() == plan.to_json()
    assert loaded_history.step_losses == [1.0, 0.5] and loaded.history is loaded_history
    assert range_tests == {"weight decay 0": _range_test()} and loaded.range_tests == range_tests


def test_load_run_names_the_missing_files(tmp_path):
    save_run(tmp_path, _plan())  # no history: plan.json and range_tests.json only
    with pytest.raises(FileNotFoundError, match=r"history\.json missing"):
        load_run(tmp_path)
    # a user's check: sc.render_report / load_run of a Trainer's out_dir, or of plan.json itself,
    # said "not a tune or fit run folder" with nothing on what to do with it
    with pytest.raises(FileNotFoundError, match=r"plan\.json is a file; give the run folder"):
        load_run(tmp_path / "plan.json")
    trainer_dir = tmp_path / "trainer"
    trainer_dir.mkdir()
    (trainer_dir / "history.json").write_text(History(status="completed").to_json())
    with pytest.raises(FileNotFoundError, match=r"plan\.json missing; a Trainer's out_dir holds "
                       r"its History alone: History\.from_json"):  # fmt: skip
        load_run(trainer_dir)


def test_run_trains_with_the_loss_the_plan_was_tuned_with():
    # a user's check: plan.run defaulted to cross-entropy whatever plan.loss said; on a
    # one-output regression that loss is 0 at every step, and nothing was learned
    import torch
    from sklearn.datasets import load_diabetes

    from superconverge.data import ArrayData

    x, y = load_diabetes(return_X_y=True)
    inputs = torch.tensor(x, dtype=torch.float32)
    targets = torch.tensor((y - y.mean()) / y.std(), dtype=torch.float32)[:, None]
    train, val = ArrayData(inputs[:350], targets[:350]), ArrayData(inputs[350:], targets[350:])
    plan = TunePlan(epochs=3, batch_size=16, max_lr=0.05, min_lr=0.005, weight_decay=0.0,
                    momentum=(0.95, 0.85), loss="mse", optimizer="sgd")  # fmt: skip
    history = plan.run(lambda: torch.nn.Linear(10, 1), train, val)
    assert history.epochs[-1]["val_loss"] > 0.1  # the MSE of a fitted line, not cross-entropy's 0
    assert plan.results["final_val_loss"] < history.epochs[0]["val_loss"]  # it learned
    custom = TunePlan(epochs=1, batch_size=16, max_lr=0.05, min_lr=0.005, weight_decay=0.0,
                      momentum=(0.95, 0.85), loss="mypkg.losses:huber", optimizer="sgd")  # fmt: skip
    with pytest.raises(ValueError, match="loss_fn must be given: the plan was tuned with"):
        custom.run(lambda: torch.nn.Linear(10, 1), train, val)
    own = TunePlan(epochs=1, batch_size=16, max_lr=0.05, min_lr=0.005, weight_decay=0.0,
                   momentum=(0.95, 0.85), loss="custom", optimizer="sgd")  # fmt: skip
    with pytest.raises(ValueError, match="tuned with your own loss function"):
        own.run(lambda: torch.nn.Linear(10, 1), train, val)


def test_run_trains_on_the_device_named():
    # plan.run had no device: a plan re-ran on CUDA wherever there was one
    import torch

    from superconverge.data import ArrayData

    data = ArrayData(torch.randn(64, 4), torch.randint(0, 3, (64,)))
    plan = TunePlan(epochs=1, batch_size=16, max_lr=0.05, min_lr=0.005, weight_decay=0.0,
                    momentum=(0.95, 0.85), optimizer="sgd")  # fmt: skip
    with pytest.MonkeyPatch.context() as patched:  # "auto" would pick CUDA: "cpu" must reach it
        patched.setattr(torch.cuda, "is_available", lambda: True)
        plan.run(lambda: torch.nn.Linear(4, 3), data, data, device="cpu")
    assert plan.trainer.device == torch.device("cpu")
    assert next(plan.trainer.module.parameters()).device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"device must be available, got 'cuda'"):
            plan.run(lambda: torch.nn.Linear(4, 3), data, data, device="cuda")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_lr": None}, "field max_lr must be float, got None"),
        ({"epochs": "3"}, "field epochs must be int, got '3'"),
        ({"epochs": True}, "field epochs must be int, got True"),
        ({"momentum": [0.9, 0.8, 0.7]}, "field momentum must be"),
        ({"evidence": "trust me"}, "field evidence must be list"),
        ({"epoch": 3}, "unknown plan settings: ['epoch']"),
    ],
)
def test_a_plan_of_the_wrong_shape_is_named_field_by_field(change, message):
    # a user's check: TunePlan.from_json of a plan missing max_lr raised "TunePlan.__init__()
    # missing 1 required positional argument", and a string epochs loaded (and failed later)
    data = {**_plan().to_dict(), **change}
    with pytest.raises(ValueError, match=re.escape(message)):
        TunePlan.from_json(json.dumps(data))


def test_a_plan_missing_a_field_or_not_an_object_says_so():
    data = _plan().to_dict()
    del data["max_lr"], data["min_lr"]
    with pytest.raises(ValueError, match="not a tune plan: max_lr, min_lr missing"):
        TunePlan.from_dict(data)
    with pytest.raises(ValueError, match="a tune plan is a JSON object, got list"):
        TunePlan.from_json("[1, 2]")


def test_a_run_folder_with_a_broken_file_names_the_file(tmp_path):
    save_run(tmp_path, _plan(), History(status="completed"), {"lr_find": _range_test()})
    load_run(tmp_path)  # as written
    (tmp_path / "range_tests.json").write_text("[1]")
    # it was "AttributeError: 'list' object has no attribute 'items'"
    with pytest.raises(ValueError, match=r"^range_tests.json: it must hold a JSON object of "):
        load_run(tmp_path)
    (tmp_path / "history.json").write_text('"done"')
    with pytest.raises(ValueError, match=r"^history.json: a history is a JSON object, got str"):
        load_run(tmp_path)


def test_a_run_folder_with_a_history_or_range_test_of_the_wrong_shape_names_file_and_field(
    tmp_path,
):
    # a user's check: a val_loss "x" raised "TypeError: must be real number, not str", lrs
    # "oops" loaded (and the report failed on zip()), a history without epochs had 0 epochs
    history = History(status="completed", epochs=[{"epoch": 1.0, "val_loss": math.nan}])
    save_run(tmp_path, _plan(), history, {"lr_find": _range_test()})
    load_run(tmp_path)  # as written, NaN and all
    saved = json.loads((tmp_path / "history.json").read_text())
    saved["epochs"][0]["val_loss"] = "x"
    (tmp_path / "history.json").write_text(json.dumps(saved))
    message = "history.json: field epochs[0]['val_loss'] must be float, got 'x'"
    with pytest.raises(ValueError, match=re.escape(message)):
        load_run(tmp_path)
    del saved["epochs"]
    (tmp_path / "history.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"^history.json: not a history: epochs missing$"):
        load_run(tmp_path)
    save_run(tmp_path, _plan(), history, {"lr_find": _range_test()})
    tests = json.loads((tmp_path / "range_tests.json").read_text())
    tests["lr_find"]["lrs"] = "oops"
    (tmp_path / "range_tests.json").write_text(json.dumps(tests))
    message = "range_tests.json: field lrs must be tuple[float, ...], got 'oops'"
    with pytest.raises(ValueError, match=re.escape(message)):
        load_run(tmp_path)
    tests["lr_find"]["lrs"] = [-1.0] * len(tests["lr_find"]["losses"])  # was "math domain error"
    (tmp_path / "range_tests.json").write_text(json.dumps(tests))
    message = "range_tests.json: field lrs[0] must be an LR > 0, got -1.0"
    with pytest.raises(ValueError, match=re.escape(message)):
        load_run(tmp_path)


def test_a_search_plans_checkpoint_is_its_own_only_with_the_same_search_constants(tmp_path):
    import torch

    from superconverge.data import ArrayData

    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(128, 4, generator=generator)
    data = ArrayData(inputs, inputs[:, :3].argmax(1))
    plan = TunePlan(epochs=4, batch_size=8, max_lr=math.nan, min_lr=math.nan, weight_decay=0.0,
                    momentum=(0.95, 0.85), optimizer="adamw", policy="search",
                    search={"divisor": 8.0})  # fmt: skip
    plan.run(lambda: torch.nn.Linear(4, 3), data, data, out_dir=tmp_path)
    checkpoint = tmp_path / "checkpoint.pt"
    assert plan.is_own_checkpoint(checkpoint)
    other = TunePlan.from_json(plan.to_json())
    other.search = {"divisor": 6.0}  # another search: its run is not this one to resume
    assert not other.is_own_checkpoint(checkpoint)
    # a checkpoint from before plateau_factor searched with one divisor (a reviewer's check: it
    # matched a plan at the factor 2)
    from superconverge.training.checkpoint import load_checkpoint, save_atomically

    saved = load_checkpoint(checkpoint)
    del saved["edge"]["settings"]["plateau_factor"]
    save_atomically(saved, checkpoint)
    assert plan.is_own_checkpoint(checkpoint)  # its search {"divisor": 8.0}: factor 1
    other.search = {"divisor": 8.0, "plateau_factor": 2.0}
    assert not other.is_own_checkpoint(checkpoint)


def test_a_plan_tuned_under_torchrun_trains_its_global_batch_in_one_process():
    # a user's check: a refit in one process of a plan tuned on 2 processes at batch 8 each
    # trained at batch 8 with the max_lr found at 16, and reached 49% where the plan had 97%
    from dataclasses import replace

    plan = replace(_plan(environment={"world_size": 2}), batch_size=8)
    assert plan.batch_size_here() == 16
    assert replace(_plan(), batch_size=8).batch_size_here() == 8
    odd = replace(_plan(environment={"world_size": 3}), batch_size=7)
    assert odd.batch_size_here() == 21  # one process takes any global batch


def test_the_verdict_says_the_mean_of_the_weights_was_kept():
    # an auditor's check: "overfitting ... train for fewer epochs" where the weights kept (the
    # mean of the descent's) had a lower validation loss than every epoch
    from types import SimpleNamespace

    from superconverge.tuning.plan import _verdict_of_the_mean

    history = SimpleNamespace(epochs=[{"val_loss": 0.52}, {"val_loss": 0.50}, {"val_loss": 0.61}])
    kept = {"kept": "average", "steps": 300, "val_loss_average": 0.48, "val_loss_last": 0.61}
    verdict = {"kind": "overfitting", "explanation": "the validation loss was lowest at epoch 2",
               "next_step": "raise weight decay, ... or train for fewer epochs"}  # fmt: skip
    _verdict_of_the_mean(verdict, kept, history)
    assert verdict["explanation"].endswith(
        "; the model keeps the mean of the last 300 steps' weights, validation loss 0.48, below "
        "every epoch's (best 0.5)"
    )
    assert verdict["next_step"].startswith("the weights kept already undo it")
    # a mean above the best epoch: said, and the advice stands
    verdict = {"kind": "overfitting", "explanation": "x", "next_step": "fewer epochs"}
    _verdict_of_the_mean(verdict, {**kept, "val_loss_average": 0.55}, history)
    assert verdict == {"kind": "overfitting", "next_step": "fewer epochs",
                       "explanation": "x; the model keeps the mean of the last 300 steps' "
                       "weights, validation loss 0.55"}  # fmt: skip
