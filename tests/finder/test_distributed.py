import json
import math
import socket
import subprocess
import sys
from pathlib import Path


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lr_find_under_torchrun_with_two_gloo_processes(tmp_path):
    script = Path(__file__).with_name("ddp_lr_find.py")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        "--master_addr=127.0.0.1",
        str(script),
        str(tmp_path),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
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
    assert not any(isinstance(v, float) and math.isnan(v) for v in ranks[0]["losses"][:-1])
