import json
import subprocess
import sys

from superconverge.cli.main import main


def test_lr_find_on_digits_prints_bounds_and_writes_png_and_json(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "lr-find",
                "--data",
                "digits",
                "--model",
                "mlp",
                "--out",
                str(out),
                "--num-steps",
                "60",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "max_lr" in printed and "why:" in printed
    data = json.loads((out / "lr_find.json").read_text())
    assert len(data["lrs"]) == len(data["losses"]) > 10
    assert (out / "lr_find.png").read_bytes()[:4] == b"\x89PNG"


def test_existing_results_are_not_overwritten_without_force(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "lr_find.json").write_text("precious")
    run = subprocess.run(
        [sys.executable, "-m", "superconverge", "lr-find", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "pass --force" in run.stderr and "Traceback" not in run.stderr
    assert (out / "lr_find.json").read_text() == "precious"


def test_model_that_does_not_fit_the_data_is_one_line(tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "superconverge",
            "lr-find",
            "--model",
            "resnet9",
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "superconverge lr-find: error: --model resnet9 needs 3x32x32 inputs; the data has 1x8x8 "
        "(use mlp, or data of that shape)"
    )
    assert not (tmp_path / "x").exists()
