import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from tests.torchrun import run_two_ranks


@pytest.mark.slow  # two processes start torch and transformers: about a minute
def test_the_range_test_under_torchrun_gives_every_rank_rank_0s_max_lr(tmp_path):
    # a user's check: each rank swept its own shard and trained at its own max_lr (0.0272 and
    # 0.0120): the copies of the model drifted apart, silently
    done = run_two_ranks(Path(__file__).with_name("ddp_range_test.py"), str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["max_lr"] == ranks[1]["max_lr"] is not None
    assert ranks[0]["weights"] == ranks[1]["weights"]
