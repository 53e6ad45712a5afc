import json

import pytest

from superconverge.experiments import EXPERIMENTS, MODULES, cifar_full
from superconverge.experiments import cifar_superconvergence as contenders
from tests.data.conftest import make_cifar_archive


@pytest.fixture
def archive_dir(tmp_path):
    archive, _ = make_cifar_archive(
        tmp_path / "cifar10-full", batches=(1, 2), per_batch=48, test=20
    )
    return archive.parent


def test_the_protocols_keep_the_published_data_split_and_batch():
    for settings in (cifar_full.FULL, cifar_full.FULL_CUDA):
        assert (settings.train_samples, settings.val_samples) == (40_000, 10_000)
        assert settings.batch_size == 32
    assert cifar_full.FULL_CUDA.piecewise_factor == 8  # 64 epochs; the CPU protocol's 4 is a cut
    assert (cifar_full.FULL_CUDA.width, cifar_full.FULL_CUDA.blocks) == (1.0, 8)
    assert cifar_full.FULL_CUDA.epochs == 8
    assert MODULES["cifar10-full"] == cifar_full.__name__ and "cifar10-full" in EXPERIMENTS


def test_validation_images_follow_the_training_ones_and_runs_resume(archive_dir, tmp_path):
    settings = contenders.Settings(epochs=1, width=0.125, blocks=1, batch_size=16,
                                   train_samples=64, val_samples=32,
                                   contenders=("one cycle 0.1-3.5",))  # fmt: skip
    out = tmp_path / "out"
    first = cifar_full.run(out, settings, str(archive_dir))
    saved = json.loads((out / "results.json").read_text())
    assert {k: saved["environment"][k] for k in ("train", "val", "test")} == {
        "train": 64, "val": 32, "test": 20
    }  # fmt: skip
    assert [p[0] for p in first["one cycle 0.1-3.5"]["curve"]] == [4]  # 64 / 16
    more = contenders.Settings(**{**settings.__dict__, "contenders": ("one cycle 0.1-3.5", "Adam")})
    second = cifar_full.run(out, more, str(archive_dir))
    kept = json.loads(json.dumps(first["one cycle 0.1-3.5"]))  # as read back: lists, not tuples
    assert second["one cycle 0.1-3.5"] == kept  # kept, not run again
    assert "Adam" in second
    table = (out / "results.md").read_text()
    assert "| Adam | 1 |" in table


def test_a_changed_piecewise_factor_reruns_only_the_piecewise_contender(tmp_path):
    settings = contenders.Settings(epochs=2, piecewise_factor=8)
    path = tmp_path / "results.json"
    results = {"one cycle 0.1-3.5": {"epochs": 2}, "piecewise 0.35/0.035/0.0035": {"epochs": 16}}
    path.write_text(json.dumps({"settings": settings.__dict__, "results": results}))
    assert contenders._resume(path, settings) == results
    halved = contenders.Settings(epochs=2, piecewise_factor=4)
    assert contenders._resume(path, halved) == {"one cycle 0.1-3.5": {"epochs": 2}}
    assert contenders._resume(path, contenders.Settings(epochs=3)) == {}  # E itself differs


def test_too_few_images_for_the_validation_split_is_refused(archive_dir, tmp_path):
    settings = contenders.Settings(train_samples=64, val_samples=64, contenders=())
    with pytest.raises(ValueError, match="val_samples=64 needs 128 training images"):
        cifar_full.run(tmp_path / "out", settings, str(archive_dir))
