import json
from pathlib import Path

import pytest

pytest.importorskip("lightning")

from tests.torchrun import run_two_ranks


@pytest.mark.slow  # two processes start torch and Lightning: about a minute
def test_one_cycle_under_lightning_ddp_with_two_gloo_processes(tmp_path):
    done = run_two_ranks(Path(__file__).with_name("ddp_one_cycle.py"), str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == 2
    assert ranks[0]["max_lr"] == ranks[1]["max_lr"] is not None  # the same decision on each rank
    assert all(rank["restored"] for rank in ranks)
    # 512 samples / 2 ranks / 16 per batch = 16 batches per epoch, 2 per update, 2 epochs
    assert ranks[0]["total_steps"] == 16
    for rank in ranks:
        assert len(rank["seen"]) == 16
        assert rank["seen"] == rank["planned"]
    assert ranks[0]["weights"] == ranks[1]["weights"]  # DDP kept the replicas identical


@pytest.mark.slow  # two processes start torch and Lightning: about a minute
def test_the_in_run_search_under_lightning_ddp_finds_one_edge_for_both_ranks(tmp_path):
    script = Path(__file__).with_name("ddp_one_cycle.py")
    done = run_two_ranks(script, str(tmp_path), "search")
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["edge"] is not None and ranks[0]["edge"] == ranks[1]["edge"]
    assert ranks[0]["edge"]["restored_step"] is not None
    assert ranks[0]["seen"] == ranks[1]["seen"] and len(ranks[0]["seen"]) == 8 * 8
    assert ranks[0]["weights"] == ranks[1]["weights"]  # both restored the same copy
