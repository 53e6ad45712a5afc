import pytest

from superconverge.cli.main import main
from superconverge.experiments import EXPERIMENTS


def test_list_names_every_experiment(capsys):
    assert main(["reproduce", "--list"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in EXPERIMENTS)


def test_no_name_lists_and_exits_2(capsys):
    assert main(["reproduce"]) == 2
    assert "mnist-clr" in capsys.readouterr().out


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
