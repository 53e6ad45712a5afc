"""The recipe's short runs as trials of a real Optuna study (SQLite storage): workers in other
processes, a killed worker, a restarted coordinator, torchrun."""

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

import superconverge as sc  # noqa: E402
from superconverge.cli.main import main  # noqa: E402
from superconverge.tuning import RecipeSettings, TrialStudy  # noqa: E402
from tests.torchrun import free_port  # noqa: E402
from tests.tuning.trials_worker import arguments  # noqa: E402

WORKER = Path(__file__).with_name("trials_worker.py")
ROOT = Path(__file__).resolve().parents[2]
DECISIONS = ("batch_size", "optimizer", "max_lr", "min_lr", "weight_decay", "momentum")


def decisions(plan) -> dict:
    return {name: getattr(plan, name) for name in DECISIONS}


def start_worker(url: str, epochs: int, delay: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    return subprocess.Popen(
        [sys.executable, str(WORKER), url, str(epochs), str(delay)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def trials(url: str) -> list:
    return optuna.load_study(study_name="superconverge-tune", storage=url).get_trials()


def test_study_arguments_are_checked():
    with pytest.raises(ValueError, match="study must be an Optuna storage URL"):
        TrialStudy("runs/study.db")
    with pytest.raises(ValueError, match="grace must exceed heartbeat"):
        TrialStudy("sqlite:///x.db", heartbeat=5, grace=5)
    with pytest.raises(ValueError, match="retries must be an integer >= 0"):
        TrialStudy("sqlite:///x.db", retries=-1)
    positional = arguments(1, 0)[0]
    with pytest.raises(TypeError, match="study must be a storage URL or a TrialStudy"):
        sc.tune(*positional, epochs=1, study=3)
    with pytest.raises(ValueError, match="workers must be 1 with a study"):
        sc.tune(*positional, epochs=1, study="sqlite:///x.db", workers=2)
    with pytest.raises(ValueError, match="join=True needs study"):
        sc.tune(*positional, epochs=1, join=True)


def test_two_worker_processes_reach_the_single_process_decisions(tmp_path):
    positional, keywords = arguments(1, 0.0)
    # a study runs the short-run search; alone, the same call searches in its final run unless
    # told otherwise
    alone = sc.tune(*positional, **keywords, settings=RecipeSettings(lr_search="short_runs"))
    url = f"sqlite:///{tmp_path / 'study.db'}"
    workers = [start_worker(url, 1, 0.0) for _ in range(2)]
    try:
        shared = sc.tune(*positional, **keywords, study=TrialStudy(url, poll=0.1))
        outputs = [w.communicate(timeout=300)[0] for w in workers]
    finally:
        for w in workers:
            w.kill()
    assert decisions(shared) == decisions(alone)
    assert all(w.returncode == 0 for w in workers), outputs
    assert all(f"max_lr {shared.max_lr!r}" in out for out in outputs), outputs
    done = trials(url)
    assert done and all(t.state.name == "COMPLETE" for t in done)
    # every short run the plan's evidence used is one trial, by label, run once
    labels = [t.user_attrs["label"] for t in done]
    assert len(labels) == len(set(labels))
    assert {t.user_attrs["worker"].split(":")[1] for t in done} >= {str(os.getpid())}
    # a coordinator started again with the same settings reads every trial back
    again = sc.tune(*positional, **keywords, study=url)
    assert decisions(again) == decisions(alone) and len(trials(url)) == len(done)


@pytest.mark.slow
def test_a_killed_worker_s_trial_is_run_again_and_the_recipe_finishes(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="superconverge")
    positional, keywords = arguments(1, 0.0)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    # a slow forward pass (20 ms): trials last long enough to be killed in the middle
    victim, survivor = start_worker(url, 1, 0.02), start_worker(url, 1, 0.02)
    killed: list[int] = []

    # imported whole before the watcher's thread reads the study: two threads importing
    # SQLAlchemy at once failed once with "partially initialized module 'sqlalchemy.engine'"
    import sqlalchemy.engine  # noqa: F401

    def kill_mid_trial() -> None:
        deadline = time.monotonic() + 240
        while not killed and time.monotonic() < deadline:
            try:
                running = [t for t in trials(url) if t.state.name == "RUNNING"]
            except Exception:  # the study is not created yet
                running = []
            for trial in running:
                if trial.user_attrs.get("worker", "").endswith(f":{victim.pid}"):
                    victim.send_signal(signal.SIGKILL)
                    killed.append(trial.number)
                    return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_mid_trial)
    watcher.start()
    try:
        # the coordinator runs no trial itself: the survivor must take the lost one
        study = TrialStudy(url, heartbeat=1, grace=3, retries=2, poll=0.1, work=False)
        plan = sc.tune(*positional, **keywords, study=study)
        watcher.join()
        survivor_out = survivor.communicate(timeout=120)[0]
    finally:
        victim.kill()
        survivor.kill()
    assert killed, "the victim never ran a trial"
    assert survivor.returncode == 0, survivor_out
    assert plan.results["status"] == "completed"
    final = {t.number: t for t in trials(url)}
    lost = final[killed[0]]
    assert lost.state.name == "FAIL"  # failed by the missed heartbeats, not left RUNNING
    retried = [t for t in final.values() if t.system_attrs.get("failed_trial") == lost.number]
    assert retried and retried[0].state.name == "COMPLETE"
    assert retried[0].user_attrs["label"] == lost.user_attrs["label"]
    assert all(t.state.name in ("COMPLETE", "FAIL") for t in final.values())
    # the coordinator said what it waited for, and that the trial was lost and run again
    assert "waiting for trial" in caplog.text
    assert f"trial {lost.number} ({lost.user_attrs['label']}) in worker" in caplog.text
    assert "stopped: no heartbeat for 3 s; the trial is failed" in caplog.text


def test_a_worker_with_other_arguments_is_refused(tmp_path):
    positional, keywords = arguments(1, 0.0)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = TrialStudy(url)
    study.create({"epochs": 1}, None)
    study.set_state("searching")
    with pytest.raises(ValueError, match="belongs to a tune with other settings"):
        sc.tune(*positional, **{**keywords, "epochs": 3}, study=url, join=True)
    study.stop_beating()  # a stand-in coordinator: no heartbeat left running


def test_cli_join_needs_a_study_made_by_the_cli(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = TrialStudy(url)
    study.create({"epochs": 1}, None)
    assert main(["tune", "--join", url]) == 2
    assert "was started from Python" in capsys.readouterr().err
    assert main(["tune", "--join", "study.db"]) == 2
    assert "--join: study must be an Optuna storage URL" in capsys.readouterr().err
    study.stop_beating()


@pytest.mark.slow
def test_cli_coordinator_and_worker(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cli = [sys.executable, "-m", "superconverge", "tune"]
    coordinator = subprocess.Popen(
        [*cli, "--epochs", "2", "--study", url, "--out", str(tmp_path / "run")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    worker = subprocess.run([*cli, "--join", url], env=env, capture_output=True, text=True)
    out = coordinator.communicate(timeout=300)[0]
    assert coordinator.returncode == 0, out
    assert worker.returncode == 0, worker.stdout + worker.stderr
    assert "the coordinator chose" in worker.stdout
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert f"max_lr={plan['max_lr']:.3g}" in worker.stdout.replace(" ", "")


@pytest.mark.slow
def test_tune_under_torchrun_searches_on_rank_0_and_trains_on_both(tmp_path):
    assert main(["tune", "--epochs", "2", "--out", str(tmp_path / "one"), "-q"]) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               f"--master_port={free_port()}", "--master_addr=127.0.0.1", "-m", "superconverge",
               "tune", "--epochs", "2", "--out", str(tmp_path / "two")]  # fmt: skip
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "plan.json").read_text())
    two = json.loads((tmp_path / "two" / "plan.json").read_text())
    # rank 0 searched alone: the single process's decisions; the batch shared by the 2 ranks
    for name in ("optimizer", "max_lr", "min_lr", "weight_decay", "momentum"):
        assert two[name] == one[name], name
    assert two["batch_size"] * 2 == one["batch_size"] and two["environment"]["world_size"] == 2
    assert [s["step"] for s in two["evidence"]][-3:] == ["ranks", "final_run", "diagnosis"]
    assert two["results"]["status"] == "completed"
    assert two["results"]["test"]["accuracy"] > 0.85
    assert run.stdout.count("report:") == 1  # rank 1 printed (and wrote) nothing


def test_a_worker_stops_with_the_reason_when_the_coordinator_stopped(tmp_path, monkeypatch):
    from superconverge.tuning import recipe
    from superconverge.tuning.trials import STOPPED, TrialError

    def failing_search(setup, request):
        raise RuntimeError("the search failed")

    positional, keywords = arguments(1, 0.0)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    coordinator = TrialStudy(url)
    with monkeypatch.context() as patch:
        patch.setattr(recipe, "_search", failing_search)
        with pytest.raises(RuntimeError, match="the search failed"):
            sc.tune(*positional, **keywords, study=coordinator)
    assert coordinator.state() == STOPPED
    assert coordinator._coordinator_beat is None  # its heartbeat stopped with the search
    with pytest.raises(TrialError, match="the coordinator stopped before its search was over"):
        sc.tune(*positional, **keywords, study=TrialStudy(url, poll=0.05), join=True)


@pytest.mark.slow
@pytest.mark.parametrize("lr_search", ["short_runs", "in_run"])
def test_every_rank_under_torchrun_reports_the_searchs_compute(tmp_path, lr_search):
    # ranks > 0 do not search; their plan's account was once an empty one (search 0 samples,
    # x_final_run from a unit of 0): now each rank returns rank 0's account. In the final run's
    # rise every rank decides on the mean of the ranks' losses: the same edge on each
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               f"--master_port={free_port()}", "--master_addr=127.0.0.1",
               str(Path(__file__).with_name("ddp_tune.py")), str(tmp_path), lr_search]  # fmt: skip
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["status"] == ranks[1]["status"] == "completed"
    assert ranks[1]["compute"] == ranks[0]["compute"]
    if lr_search == "short_runs":
        assert ranks[0]["compute"]["search_samples"] > 0
        assert ranks[0]["compute"]["x_final_run"] > 1
    else:
        assert ranks[0]["lr_search"] is not None and ranks[0]["lr_search"] == ranks[1]["lr_search"]
        assert ranks[0]["max_lr"] == ranks[1]["max_lr"] == ranks[0]["lr_search"]["max_lr"]
        assert ranks[0]["compute"]["search_samples"] == 0


def test_cli_join_refuses_flags_the_coordinator_already_fixed(tmp_path, capsys):
    # a user's check: --join URL --epochs 3 ran the coordinator's 10 epochs without a word
    url = f"sqlite:///{tmp_path / 'study.db'}"
    from superconverge.tuning.trials import STOPPED

    coordinator = TrialStudy(url)
    command = ["--epochs", "2", "--metric", "accuracy", "--study", url, "--out", "runs/x"]
    coordinator.create({"epochs": 2}, command)
    coordinator.set_state(STOPPED)  # a worker that is let in returns at once (beat stopped)
    for given, differ in (
        (["--epochs", "3"], "these differ: --epochs 3 (the coordinator's: 2)"),
        (["--epochs", "2", "--seed", "0"], "these differ: --seed 0 (the coordinator's: 1)"),
        (["--exact-epochs"], "these differ: --exact-epochs (the coordinator's run has it off)"),
        (["--metric", "mae"], "these differ: --metric mae (the coordinator's: ['accuracy'])"),
        (["--batch-fn", "a:b"], "these differ: --batch-fn a:b (not given)."),
    ):
        if given[-1] == "0":  # a flag at its default value counts as given
            coordinator.storage.set_study_user_attr(
                coordinator._id, "command", [*command, "--seed", "1"]
            )
        assert main(["tune", "--join", url, *given, "--threads", "1"]) == 2, given
        err = capsys.readouterr().err
        assert "runs the coordinator's trials with the coordinator's flags (--epochs 2" in err
        assert differ in err and err.count("\n") == 1, err
        coordinator.storage.set_study_user_attr(coordinator._id, "command", command)
    # the coordinator's own command repeated with --join: let in (then stopped by the check of
    # the data and model against this test's stand-in settings, which the flags cannot tell)
    main(["tune", "--join", url, *command, "--threads", "1"])
    out, err = capsys.readouterr()
    assert out.startswith("worker of study 'superconverge-tune'") and "these differ" not in err


@pytest.mark.parametrize(
    ("given", "refused"),
    [
        (["--resume", "runs/x"], "--resume runs/x continues a run of its own: pass one"),
        (["--force"], "writes no run folder: --force has nothing to replace; drop it"),
        (["--workers", "2"], "is one worker; --workers 2 does not apply"),
        (["--study", "sqlite:///other.db"], "and --study sqlite:///other.db name two studies"),
        (["--data-dir", "no-such-folder"], "--data-dir no-such-folder is not a folder"),
    ],
)
def test_cli_join_refuses_what_no_coordinator_has_before_waiting_for_it(tmp_path, given, refused):
    # a user's check: a worker started before its coordinator, with a flag no coordinator's
    # command can hold, waited up to 10 minutes (JOIN_WAIT_S) to be told
    url = f"sqlite:///{tmp_path / 'study.db'}"  # no study there: joining would wait
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "superconverge", "tune", "--join", url, *given]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and refused in done.stderr, done.stderr
    assert "waiting for study" not in done.stderr


COORDINATOR = """
import sys, time
from superconverge.tuning import TrialStudy
TrialStudy(sys.argv[1], heartbeat=0.25, grace=2).create({"epochs": 1}, None)
print("searching", flush=True)
time.sleep(600)
"""


def test_a_worker_stops_when_the_coordinator_was_killed_without_a_word(tmp_path):
    # a user's check: a coordinator killed by SIGKILL (OOM, a lost machine) left its workers
    # polling a study that said "searching" for ever
    from superconverge.tuning.trials import TrialError

    url = f"sqlite:///{tmp_path / 'study.db'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    coordinator = subprocess.Popen(
        [sys.executable, "-c", COORDINATOR, url], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert coordinator.stdout is not None and coordinator.stdout.readline() == "searching\n"
        worker = TrialStudy(url, poll=0.05)
        worker.open()
        assert worker.grace == 2  # the coordinator's, adopted
        # alive: the worker keeps waiting past the grace period while the beats come in
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                worker.serve(lambda spec: {})
            except TrialError as error:
                errors.append(error)

        alive = threading.Thread(target=serve, daemon=True)
        alive.start()
        alive.join(timeout=3.5)
        assert alive.is_alive()
        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait(timeout=10)
        started = time.monotonic()
        late = TrialStudy(url, poll=0.05)  # a worker that joins after the kill
        late.open()
        with pytest.raises(TrialError) as caught:
            late.serve(lambda spec: {})
        assert 2 <= time.monotonic() - started < 30
    finally:
        coordinator.kill()
    message = str(caught.value)
    assert f":{coordinator.pid}) of study 'superconverge-tune'" in message
    assert "has sent no heartbeat for" in message and "Start it again" in message
    alive.join(timeout=30)  # the first worker stops too
    assert not alive.is_alive() and "has sent no heartbeat" in str(errors[0])


def test_a_worker_waits_on_a_live_coordinator_and_ends_with_its_search(tmp_path):
    from superconverge.tuning.trials import SEARCHED

    url = f"sqlite:///{tmp_path / 'study.db'}"
    # beats 8 to a grace period: a stalled SQLite write or a busy core must not fake a death
    coordinator = TrialStudy(url, heartbeat=0.25, grace=2)
    coordinator.create({"epochs": 1}, None)
    worker = TrialStudy(url, poll=0.05)
    worker.open()
    end = threading.Timer(5.0, coordinator.set_state, args=(SEARCHED,))  # 2.5 x grace
    end.start()
    started = time.monotonic()
    try:
        assert worker.serve(lambda spec: {}) == 0
        assert time.monotonic() - started >= 4.9
    finally:
        end.join()
        coordinator.stop_beating()


def test_a_worker_waits_for_a_missing_sqlite_file_without_creating_it(tmp_path, caplog):
    # a user's check: --join of a mistyped path created an empty database there and waited on
    # it for ever, saying only "waiting for study ..."
    import logging

    path = tmp_path / "typo.db"
    study = TrialStudy(f"sqlite:///{path}", poll=0.05)
    with caplog.at_level(logging.INFO), pytest.raises(ValueError, match="is not in") as failed:
        study.open(wait=0.2)
    assert not path.exists()
    # said in the error too: on a busy machine the wait could end before the first line
    assert f"no file {path} yet: the coordinator creates it" in str(failed.value)
    with caplog.at_level(logging.INFO), pytest.raises(ValueError, match="is not in"):
        study.open(wait=1.0)
    assert f"no file {path} yet: the coordinator creates it" in caplog.text


def test_the_coordinator_makes_the_folder_of_its_sqlite_file(tmp_path):
    # a user's check: the docs' `--study sqlite:///runs/m/study.db` failed on a fresh checkout,
    # "unable to open database file", as runs/m did not exist
    path = tmp_path / "runs" / "m" / "study.db"
    TrialStudy(f"sqlite:///{path}").create({"epochs": 1}, None)
    assert path.is_file()


def test_a_worker_runs_the_code_a_study_names_only_when_named_again_or_trusted(tmp_path, capsys):
    # a reviewer's check: --join imported and called the module:function code the study's
    # command named, as --resume did with a journal's (a study is data, as a plan is)
    from superconverge.cli.main import main
    from superconverge.tuning.trials import STOPPED

    url = f"sqlite:///{tmp_path / 'study.db'}"
    coordinator = TrialStudy(url)
    command = ["--epochs", "2", "--model", "evilmod:f", "--study", url, "--out", "runs/x"]
    coordinator.create({"epochs": 2}, command)
    coordinator.set_state(STOPPED)
    assert main(["tune", "--join", url, "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "the study's command names code to run (--model evilmod:f); name it again" in err
    assert "or add --trust-plan-code" in err
    for let_in in (["--model", "evilmod:f"], ["--trust-plan-code"]):  # past the refusal
        main(["tune", "--join", url, *let_in, "--threads", "1"])
        assert "names code to run" not in capsys.readouterr().err, let_in
    # and without --resume or --join the flag is refused, not ignored
    assert main(["tune", "--trust-plan-code", "--epochs", "1"]) == 2
    assert "--trust-plan-code applies to --resume DIR and --join URL" in capsys.readouterr().err


def test_a_study_without_optuna_installed_is_named_before_anything_runs(
    tmp_path, capsys, monkeypatch
):
    # a user's check: --join without the [optuna] extra said "ModuleNotFoundError: No module
    # named 'sqlalchemy'", exit 1; --study said it after the run's header, exit 1
    import importlib.util

    from superconverge.cli.main import main

    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else found(name, *a)
    )
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    for flags, flag in ((["--join", url], "--join"), (["--study", url, "--epochs", "1"], "--study")):
        assert main(["tune", *flags]) == 2
        err = capsys.readouterr().err
        assert f"{flag}: a study needs Optuna: pip install 'superconverge[optuna]'" in err, err
    assert list(tmp_path.iterdir()) == []  # no runs/ folder, no database
    with pytest.raises(ImportError, match=r"superconverge\[optuna\]"):
        TrialStudy(url)


def _interrupted(spec):
    raise KeyboardInterrupt


def test_a_trial_interrupted_in_a_worker_is_run_again_not_counted_as_lost(tmp_path, caplog):
    # a user's check: Ctrl-C (or SIGTERM) of a --join worker mid-trial failed the trial as
    # "lost" ("no heartbeat for 60 s", at once) and nothing enqueued it again: the coordinator
    # waited for ever
    caplog.set_level(logging.INFO, logger="superconverge")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    coordinator = TrialStudy(url, poll=0.05, retries=0, work=False)  # one loss would stop it
    coordinator.create({"case": 1}, None)
    specs = [{"label": "a"}, {"label": "bb"}]
    out: dict = {}

    def coordinate():
        try:
            out["results"] = coordinator.run(specs, _interrupted)
        except BaseException as error:  # the test reads it
            out["error"] = error

    thread = threading.Thread(target=coordinate)
    thread.start()
    worker = TrialStudy(url, poll=0.05)
    worker.open(wait=30)
    deadline = time.monotonic() + 60
    with pytest.raises(KeyboardInterrupt):
        while time.monotonic() < deadline:
            if not worker.work_once(_interrupted):
                time.sleep(0.05)
    while thread.is_alive() and time.monotonic() < deadline:
        if not worker.work_once(lambda spec: {"val_loss": float(len(spec["label"]))}):
            time.sleep(0.05)
    thread.join(timeout=10)
    coordinator.set_state("searched")
    assert "error" not in out, out.get("error")
    assert out["results"] == [{"val_loss": 1.0}, {"val_loss": 2.0}]
    assert "was interrupted (Ctrl-C or SIGTERM); its short run is run again" in caplog.text
    assert "no heartbeat" not in caplog.text


def test_a_coordinator_interrupted_mid_trial_again_and_again_still_resumes(tmp_path):
    # three Ctrl-Cs during one short run (each followed by --resume) counted as three losses:
    # "TrialError: ... was lost 3 times", and every later --resume failed the same way
    url = f"sqlite:///{tmp_path / 'study.db'}"
    specs = [{"label": "a"}]
    for _ in range(4):
        coordinator = TrialStudy(url, poll=0.05, retries=2)
        coordinator.create({"case": 2}, None)
        with pytest.raises(KeyboardInterrupt):
            coordinator.run(specs, _interrupted)
        coordinator.stop_beating()
    coordinator = TrialStudy(url, poll=0.05, retries=2)
    coordinator.create({"case": 2}, None)
    assert coordinator.run(specs, lambda spec: {"val_loss": 0.5}) == [{"val_loss": 0.5}]
    coordinator.set_state("searched")
    assert [t.state.name for t in trials(url)] == ["FAIL"] * 4 + ["COMPLETE"]


def test_a_lost_trial_is_said_also_when_the_coordinator_runs_its_copy_itself(tmp_path, caplog):
    # a user's check: a SIGKILLed worker's trial, re-run by the coordinator, went unexplained
    # (the warning was only said while the coordinator had nothing to run)
    caplog.set_level(logging.INFO, logger="superconverge")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    coordinator = TrialStudy(url, poll=0.05, retries=2)
    coordinator.create({"case": 3}, None)
    spec = {"label": "a"}
    coordinator._enqueue(spec)
    worker = TrialStudy(url, poll=0.05)
    worker.open(wait=10)
    (trial,) = [t for t in trials(url) if t.state.name == "WAITING"]
    trial_id = worker.storage.get_trial_id_from_study_id_trial_number(worker._id, trial.number)
    assert worker._take(trial_id)
    # what the heartbeat check does to a killed worker's trial: failed, and a copy enqueued
    worker.storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL)
    coordinator._enqueue(spec)
    assert coordinator.run([spec], lambda s: {"val_loss": 1.0}) == [{"val_loss": 1.0}]
    coordinator.set_state("searched")
    assert f"trial {trial.number} (a) in worker" in caplog.text
    assert "stopped: no heartbeat for 60 s; the trial is failed" in caplog.text
