"""Test-side helpers of the crash harness: run `crash.py` in a subprocess, read what it did."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

CHILD = Path(__file__).with_name("crash.py")
ROOT = Path(__file__).resolve().parents[2]
KILLED = -9  # returncode of a child that SIGKILLed itself
TIMEOUT_S = 600


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]]

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def writes(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("write") == name]


PRELOAD = ["torch", "torch._dynamo", "sklearn.datasets", "superconverge", "superconverge.cli.main", "superconverge.diagnostics.plots",
           "superconverge.tuning", "matplotlib.pyplot", "tests.reliability.crash"]  # fmt: skip
# (torch._dynamo: the first optimizer imports it, 10 s under load; sklearn: the digits)
_context: Any = None


def _children() -> Any:
    """A forkserver that imported torch and the library once: each child then starts in
    milliseconds instead of seconds, and no child inherits threads (the server never trained)."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def _child(argv: list[str], output: str) -> None:
    """The child's body: stdout and stderr into files, then `crash.main` as a script would."""
    from tests.reliability import crash

    # Ctrl-C as in a script started from a shell: in a full test session the forkserver's
    # children were found with SIGINT ignored (SIG_IGN), and the Ctrl-C test's child then
    # finished its run instead of stopping
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with open(output + ".out", "w") as out, open(output + ".err", "w") as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the process's own stdout
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    try:
        code = crash.main(argv)
    except SystemExit as error:
        code = error.code if isinstance(error.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class Child:
    """One child process running ``crash.py CUES MODE ARGS``."""

    def __init__(self, mode: str, args: tuple[Any, ...], cues: tuple[str, ...]) -> None:
        self.output = str(_fresh_events().with_suffix(""))
        self.events = Path(self.output + ".jsonl")
        argv = ["--events", str(self.events), *cues, mode, *(str(a) for a in args)]
        self.process = _children().Process(target=_child, args=(argv, self.output))
        self.process.start()

    def poll(self) -> int | None:
        return self.process.exitcode

    def wait(self, timeout_s: float = TIMEOUT_S) -> Run:
        self.process.join(timeout_s)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join()
            raise AssertionError(f"child ran past {timeout_s} s")
        texts = []
        for suffix in (".out", ".err"):
            path = Path(self.output + suffix)
            texts.append(path.read_text() if path.exists() else "")
            path.unlink(missing_ok=True)
        result = Run(self.process.exitcode, texts[0], texts[1], read_events(self.events))
        self.events.unlink(missing_ok=True)
        return result


def run(mode: str, *args: Any, cues: tuple[str, ...] = (), expect: int | None = 0) -> Run:
    """Run the child to its end (or its death); `expect` checks the return code (None: any)."""
    result = Child(mode, args, cues).wait()
    if expect is not None:
        assert result.returncode == expect, (
            f"child exited {result.returncode}, expected {expect}\n{result.output[-3000:]}"
        )
    return result


def start(mode: str, *args: Any, cues: tuple[str, ...] = ()) -> Child:
    """Start the child without waiting (for two writers at once)."""
    return Child(mode, args, cues)


def wait_for(path: Path, child: Child, timeout_s: float = TIMEOUT_S) -> None:
    """Until `path` exists; fails early, with the child's output, if the child ends first."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if child.poll() is not None:
            ended = child.wait()
            raise AssertionError(f"child ended ({ended.returncode}) first:\n{ended.output[-3000:]}")
        if time.monotonic() > deadline:
            child.process.kill()
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.05)


_counter = iter(range(1_000_000))


def _fresh_events() -> Path:
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    return folder / f"crash-events-{os.getpid()}-{next(_counter)}.jsonl"


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assert_same_weights(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor],
                        what: str = "") -> None:  # fmt: skip
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        assert torch.equal(tensor, actual[name]), f"{name} differs {what}"


def _record_saves(run: Run) -> list[dict[str, Any]]:
    """The journal's saves that added a record (its first save too), in order: it is also
    saved after each final-run epoch, holding no new record."""
    saves, held = [], -1
    for event in run.events:
        if "journal_records" in event and event["journal_records"] > held:
            saves.append(event)
            held = event["journal_records"]
    return saves


def stage_steps(run: Run, journal_keys: list[str]) -> dict[str, tuple[int, int]]:
    """For each journal record of an uninterrupted run, the optimizer steps ``(first, last)``
    spent making it: from the journal's save before it to the save that added it."""
    steps = [e["step"] for e in _record_saves(run)]
    assert len(steps) >= len(journal_keys) + 1, (steps, journal_keys)
    return {key: (steps[i] + 1, steps[i + 1]) for i, key in enumerate(journal_keys)}


def record_writes(run: Run, journal_keys: list[str]) -> dict[str, int]:
    """For each journal record, which write of ``journal.json`` saved it (1 is the first)."""
    counts = [e["count"] for e in _record_saves(run)]
    return {key: counts[i + 1] for i, key in enumerate(journal_keys)}


def loadable_files(folder: Path) -> dict[str, str]:
    """Every run file in `folder` read back the way its reader reads it: {name: problem}."""
    import torch

    from superconverge.training.checkpoint import load_checkpoint

    problems = {}
    for path in sorted(folder.iterdir()):
        try:
            if path.name == "model.pt":  # the fit's final weights: a plain state_dict
                weights = torch.load(path, weights_only=True)
                if not weights or not all(isinstance(v, torch.Tensor) for v in weights.values()):
                    raise ValueError(f"not a state_dict: {sorted(weights)[:3]}")
            elif path.suffix == ".pt":
                load_checkpoint(path)
            elif path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".csv":
                lines = path.read_text().splitlines()
                widths = {len(line.split(",")) for line in lines}
                if not lines or len(widths) != 1:
                    raise ValueError(f"ragged or empty CSV: {lines[-1:]}")
            elif path.suffix == ".png":
                if not path.read_bytes().endswith(b"IEND\xaeB`\x82"):
                    raise ValueError("truncated PNG")
            elif path.suffix in (".html", ".md"):
                text = path.read_text()
                if path.suffix == ".html" and not text.rstrip().endswith("</html>"):
                    raise ValueError("truncated HTML")
        except Exception as error:
            problems[path.name] = f"{type(error).__name__}: {error}"
    return problems
