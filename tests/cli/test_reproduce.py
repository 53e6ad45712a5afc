import json
import os

import pytest

from superconverge.cli.main import main
from superconverge.experiments import EXPERIMENTS


def test_list_names_every_experiment(capsys):
    assert main(["reproduce", "--list"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in EXPERIMENTS)


def test_list_with_a_name_is_refused_not_a_run_silently_skipped(capsys):
    assert main(["reproduce", "--list", "mnist-clr"]) == 2
    assert "--list lists the experiments and runs none: leave out 'mnist-clr'" in (
        capsys.readouterr().err
    )


def test_no_name_is_a_usage_error_naming_the_experiments(capsys):
    assert main(["reproduce"]) == 2
    err = capsys.readouterr().err  # on stderr, where a script's log sees why it failed
    assert err.startswith("superconverge reproduce: error: NAME is missing")
    assert "mnist-clr" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["imagenet"],
            "NAME must be one of mnist-clr, cifar10-superconvergence, cifar10-full, cifar10-data-size, got 'imagenet'",
        ),
        (["mnist-clr", "--seeds", "0"], "--seeds must be >= 1, got 0"),
    ],
)
def test_bad_names_and_values(tmp_path, capsys, flags, message):
    assert main(["reproduce", *flags, "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_data_dir_without_the_data_files_is_a_usage_error_naming_it(tmp_path, capsys):
    # it was exit 1, "...; check the path and its permissions", where tune says --data-dir
    empty = tmp_path / "empty"
    empty.mkdir()
    flags = ["--quick", "--data-dir", str(empty), "--out", str(tmp_path / "r")]
    assert main(["reproduce", "mnist-clr", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("superconverge reproduce: error: --data-dir: train-images-idx3-ubyte.gz")
    assert "permissions" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def _tiny_cifar10_full(tmp_path, monkeypatch):
    """`reproduce cifar10-full --quick` on a tiny archive: two contenders of a few steps."""
    from superconverge.experiments import cifar_full
    from superconverge.experiments import cifar_superconvergence as contenders
    from tests.data.conftest import make_cifar_archive

    archive, _ = make_cifar_archive(tmp_path / "data", batches=(1, 2), per_batch=48, test=20)
    quick = contenders.Settings(epochs=1, width=0.125, blocks=1, batch_size=16,
                                train_samples=64, val_samples=32,
                                contenders=("one cycle 0.1-3.5", "Adam"))  # fmt: skip
    monkeypatch.setattr(cifar_full, "QUICK", quick)
    return ["reproduce", "cifar10-full", "--quick", "--data-dir", str(archive.parent)]


def test_an_interrupted_reproduction_resumes_with_what_it_ran(tmp_path, monkeypatch, capsys):
    # an interrupt said only "interrupted"; continuing took --force, which (as said) replaces
    from superconverge.experiments import cifar_superconvergence as contenders

    command = _tiny_cifar10_full(tmp_path, monkeypatch)
    out = tmp_path / "out"
    real, ran = contenders._contender, []

    def interrupted_at_adam(name, *args):
        if name == "Adam" and not ran:
            ran.append(name)
            raise KeyboardInterrupt
        return real(name, *args)

    monkeypatch.setattr(contenders, "_contender", interrupted_at_adam)
    assert main([*command, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert f"the runs that finished are in {out / 'results.json'}; continue with " in err
    assert f"`superconverge reproduce cifar10-full --resume --out {out}`" in err
    first = json.loads((out / "results.json").read_text())["results"]
    assert list(first) == ["one cycle 0.1-3.5"]

    assert main([*command, "--out", str(out)]) == 2  # neither flag: what to do is said
    assert "pass --resume to continue it, --force to start over" in capsys.readouterr().err
    assert main([*command[:-3], "--data-dir", command[-1], "--out", str(out), "--resume"]) == 2
    assert "records no run of cifar10-full with these settings" in capsys.readouterr().err
    assert main([*command, "--out", str(out), "--resume", "--force"]) == 2

    assert main([*command, "--out", str(out), "--resume"]) == 0
    assert "resuming: 1 run recorded in" in capsys.readouterr().out
    resumed = json.loads((out / "results.json").read_text())["results"]
    assert resumed["one cycle 0.1-3.5"] == first["one cycle 0.1-3.5"]  # kept, not run again
    assert "Adam" in resumed


def test_force_starts_over_and_keeps_the_old_results_until_the_new_run_ends(
    tmp_path, monkeypatch, capsys
):
    # --force read the old results.json and kept its runs: it continued, it did not start over
    from superconverge.experiments import cifar_superconvergence as contenders

    command = _tiny_cifar10_full(tmp_path, monkeypatch)
    out = tmp_path / "out"
    assert main([*command, "--out", str(out)]) == 0
    old = json.loads((out / "results.json").read_text())
    old["results"]["Adam"]["accuracy"] = 2.0  # a mark: a run kept would keep it
    (out / "results.json").write_text(json.dumps(old))

    def failing(name, *args):
        raise RuntimeError("the new run failed")

    # failed before any run of its own finished: the old results come back (a reviewer's
    # check: they stayed in previous-*/ with nothing in their place)
    with monkeypatch.context() as patched:
        patched.setattr(contenders, "_contender", failing)
        assert main([*command, "--out", str(out), "--force"]) == 1
    assert json.loads((out / "results.json").read_text()) == old
    assert not [p for p in out.iterdir() if p.name.startswith("previous-")]
    assert "put the previous results back" in capsys.readouterr().out
    real = contenders._contender

    def adam_fails(name, *args):
        if name == "Adam":
            raise RuntimeError("the new run failed")
        return real(name, *args)

    # failed after a run of its own: the old results stay aside until a new run finishes
    with monkeypatch.context() as patched:
        patched.setattr(contenders, "_contender", adam_fails)
        assert main([*command, "--out", str(out), "--force"]) == 1
    aside = [p for p in out.iterdir() if p.name.startswith("previous-")]
    assert len(aside) == 1 and json.loads((aside[0] / "results.json").read_text()) == old
    capsys.readouterr()
    assert main([*command, "--out", str(out), "--force"]) == 0
    new = json.loads((out / "results.json").read_text())["results"]
    assert new["Adam"]["accuracy"] <= 1.0  # run again
    assert [p.name for p in out.iterdir() if p.name.startswith("previous-")] == [aside[0].name]


def test_a_reproduction_holds_its_folder_so_a_second_one_is_refused(tmp_path, monkeypatch, capsys):
    # two reproductions into one --out each ran and wrote results.json over the other's
    import subprocess
    import sys

    from superconverge.experiments import cifar_superconvergence as contenders
    from tests.cli.locks import folder_held

    command = _tiny_cifar10_full(tmp_path, monkeypatch)
    out = tmp_path / "out"
    real, seen = contenders._contender, []

    def looked_at_from_another_process(name, *args):
        if not seen:
            look = "from superconverge._files import folder_holder; import sys; "
            look += "print(folder_holder(sys.argv[1]))"
            holder = subprocess.run([sys.executable, "-c", look, str(out)],
                                    capture_output=True, text=True, check=True)  # fmt: skip
            seen.append(holder.stdout.strip())
        return real(name, *args)

    monkeypatch.setattr(contenders, "_contender", looked_at_from_another_process)
    assert main([*command, "--out", str(out)]) == 0
    assert seen[0].startswith(f"pid {os.getpid()} (")  # held while it ran
    capsys.readouterr()
    before = (out / "results.json").read_bytes()
    with folder_held(out):
        assert main([*command, "--out", str(out), "--force"]) == 1
    assert "is being written by pid" in capsys.readouterr().err
    assert (out / "results.json").read_bytes() == before  # nothing moved aside
    assert not [p for p in out.iterdir() if p.name.startswith("previous-")]
    fresh = tmp_path / "fresh"
    with folder_held(fresh):
        assert main([*command, "--out", str(fresh)]) == 1
    assert sorted(p.name for p in fresh.iterdir()) == [".superconverge.lock"]  # the holder's


def test_force_over_a_tune_run_is_refused_and_an_interrupted_force_names_its_previous_results(
    tmp_path, monkeypatch, capsys
):
    # an auditor's checks: --force over a tune run deleted its model and checkpoints without a
    # word; an interrupted --force kept the earlier results in previous-*/ for good, unnamed
    from superconverge.experiments import cifar_superconvergence as contenders

    command = _tiny_cifar10_full(tmp_path, monkeypatch)
    tune_run = tmp_path / "tune"
    tune_run.mkdir()
    for name in ("plan.json", "model.pt", "journal.json"):
        (tune_run / name).write_text("a tune run's")
    for force in (["--force"], []):  # without it, it said "pass --force" (a reviewer's check)
        assert main([*command, "--out", str(tune_run), *force]) == 2
        err = capsys.readouterr().err
        assert f"--out {tune_run} holds a tune or fit run (journal.json, model.pt, plan.json)" in err
    assert sorted(p.name for p in tune_run.iterdir()) == ["journal.json", "model.pt", "plan.json"]

    out = tmp_path / "out"
    assert main([*command, "--out", str(out)]) == 0
    # its files name the experiment run (they said cifar10-superconvergence, another protocol)
    assert (out / "results.md").read_text().startswith("# cifar10-full: cifar-resnet")
    assert json.loads((out / "results.json").read_text())["environment"]["experiment"] == (
        "cifar10-full"
    )
    real = contenders._contender

    def interrupted_at_adam(name, *args):
        if name == "Adam":
            raise KeyboardInterrupt
        return real(name, *args)

    capsys.readouterr()
    with monkeypatch.context() as patched:
        patched.setattr(contenders, "_contender", interrupted_at_adam)
        assert main([*command, "--out", str(out), "--force"]) == 130
    aside = [p for p in out.iterdir() if p.name.startswith("previous-")]
    said = capsys.readouterr()
    assert len(aside) == 1 and f"moved the previous results to {aside[0]}" in said.out
    assert f"the previous results stay in {aside[0]} until it finishes" in said.err
    assert main([*command, "--out", str(out), "--resume"]) == 0
    assert f"deleted the previous results {aside[0]}" in capsys.readouterr().out
    assert not aside[0].exists()


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b'{"settings": ', "not JSON: Expecting value"),
        (b"[1, 2]", "not an object of settings and results"),
        (b"\xb4\x00\xff", "not JSON: 'utf-8' codec can't decode"),
        (b'{"settings": {}, "results": {"raw": {"CLR": [{"accuracy": "high"}]}}}',
         "a run records accuracy 'high', not a number"),
    ],
)  # fmt: skip
def test_resume_over_a_damaged_results_file_names_it_and_the_way_out(
    tmp_path, monkeypatch, capsys, content, said
):
    # an auditor's check: a bare "JSONDecodeError: ..." (exit 1) naming no file, or a failure
    # at the very end ("TypeError: must be real number, not str")
    command = _tiny_cifar10_full(tmp_path, monkeypatch)
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_bytes(content)
    assert main([*command, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"--resume: {out / 'results.json'} cannot be read as a reproduction's results (" in err
    assert said in err and err.endswith("); --force moves it aside and starts over\n")
    assert (out / "results.json").read_bytes() == content


def test_resume_takes_a_results_file_whose_range_test_found_no_max_lr(
    tmp_path, monkeypatch, capsys
):
    # a reviewer's check: mnist-clr records "max_lr": null where its range test found none, and
    # the damage check refused that file, advising --force (which discards the finished runs)
    command = _tiny_cifar10_full(tmp_path, monkeypatch)
    out = tmp_path / "out"
    out.mkdir()
    row = {"accuracy": 0.5, "max_lr": None, "seconds": 1.0}
    (out / "results.json").write_text(json.dumps({"settings": {}, "results": {"x": [row]}}))
    assert main([*command, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "records no run of cifar10-full with these settings" in err  # its settings differ
    assert "cannot be read" not in err
