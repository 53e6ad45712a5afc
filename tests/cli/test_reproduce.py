import pytest

from superconverge.cli.main import main
from superconverge.experiments import EXPERIMENTS


def test_list_names_every_experiment(capsys):
    assert main(["reproduce", "--list"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in EXPERIMENTS)


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
