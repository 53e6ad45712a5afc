import json

from superconverge.cli.main import main


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
