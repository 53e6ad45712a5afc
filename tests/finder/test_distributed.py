import json
import math
from pathlib import Path

from tests.torchrun import run_two_ranks


def test_lr_find_under_torchrun_with_two_gloo_processes(tmp_path):
    run = run_two_ranks(Path(__file__).with_name("ddp_lr_find.py"), str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    # losses are averaged across ranks before smoothing: both ranks saw the same curve...
    assert ranks[0]["losses"] == ranks[1]["losses"]
    # ...and stopped at the same step for the same reason
    assert ranks[0]["stop"] == ranks[1]["stop"]
    assert len(ranks[0]["losses"]) < 80 or "reached end_lr" in ranks[0]["stop"]
    assert ranks[0]["max_lr"] == ranks[1]["max_lr"]
    assert all(r["restored"] for r in ranks)
    assert all(r["arrays_as_loader"] for r in ranks)  # ArrayData is sharded by rank too
    # a plain model swept on rank 0 alone finished, in a world of one (it hung)
    assert ranks[0]["alone"][0] == 1 and ranks[0]["alone"][1] > 10
    assert ranks[1]["alone"] is None
    assert not any(isinstance(v, float) and math.isnan(v) for v in ranks[0]["losses"][:-1])
