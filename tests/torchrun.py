"""Launching a test script under torchrun with 2 processes on the loopback address."""

import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_ranks(script: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               f"--master_port={free_port()}", "--master_addr=127.0.0.1", str(script), *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=300)
