import json
import math
from pathlib import Path

import pytest
import torch

from superconverge.data import load
from tests.torchrun import run_two_ranks


def test_fit_one_cycle_under_torchrun_with_two_gloo_processes(tmp_path):
    run = run_two_ranks(Path(__file__).with_name("ddp_train.py"), str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["world"] == 2 and r["status"] == "completed" for r in ranks)
    # the per-rank sampler splits 1295 samples into 648 per rank: 41 batches of 16
    assert ranks[0]["per_rank_batches"] == math.ceil(math.ceil(1295 / 2) / 16) == 41
    # the schedule counts optimizer steps, the same on both ranks
    assert ranks[0]["steps"] == ranks[1]["steps"] == 2 * 41
    # metrics are reduced across ranks: both report the same validation numbers
    assert ranks[0]["epochs"][-1]["val_loss"] == ranks[1]["epochs"][-1]["val_loss"]
    assert ranks[0]["epochs"][-1]["val_accuracy"] > 0.8
    # Trainer.predict gave each rank every test output in order (it returned the rank's half)
    test_rows = len(load("digits").test.inputs)
    assert all(r["predicted_rows"] == [test_rows, test_rows] for r in ranks)
    assert all(r["predicted_equal"] == [True, True] for r in ranks)
    assert all(r["one_row"] for r in ranks)  # a rank without samples (it hung rank 0)
    assert all(r["own_rows"] == math.ceil(test_rows / 2) for r in ranks)  # the user's shard
    # a test set of one sample: rank 1 reads none (its shorter sums hung rank 0 or gave 4226)
    assert ranks[0]["one_sample"] == ranks[1]["one_sample"]
    assert ranks[0]["one_sample"]["loss"] == pytest.approx(ranks[0]["one_sample_expected"])
    assert "accuracy" in ranks[1]["one_sample"]
    w0, w1 = (torch.load(tmp_path / f"weights{r}.pt", weights_only=True) for r in range(2))
    assert all(torch.equal(w0[k], w1[k]) for k in w0)  # DDP kept the replicas identical
    assert (tmp_path / "run" / "checkpoint.pt").exists()  # written once, by rank 0


@pytest.mark.slow  # two processes start torch: about 10 s
def test_ranks_asked_for_different_runs_are_named_instead_of_hanging():
    # a user's check: different epochs per rank hung until torchrun's timeout (gloo's default:
    # 30 minutes); another batch size aborted in gloo with "collective mismatch"
    run = run_two_ranks(Path(__file__).with_name("ddp_mismatch.py"))
    assert run.returncode != 0
    assert "the ranks of this torchrun would train different runs" in run.stderr
    assert "epochs: rank 0 2, rank 1 3" in run.stderr
    # a user's check: seed=rank made the ranks read overlapping samples (26 of 100 twice)
    seeded = run_two_ranks(Path(__file__).with_name("ddp_mismatch.py"), "seed")
    assert seeded.returncode != 0
    assert "seed: rank 0 0, rank 1 1" in seeded.stderr
