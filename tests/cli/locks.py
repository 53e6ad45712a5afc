"""Another process holding a run folder's lock, as a second run running there would."""

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def folder_held(folder: Path) -> Iterator[subprocess.Popen]:
    """A process that holds `folder`'s `FolderLock` until the block ends (it is then killed)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from superconverge._files import FolderLock; "
         "FolderLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)",
         str(folder)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()
