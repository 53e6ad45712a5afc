"""What a run ran on: the versions of superconverge, Python and torch, and the device."""

from __future__ import annotations

import platform


def versions() -> dict[str, str]:
    """``superconverge``, ``python``, ``torch`` and ``device`` as short strings.

    ``device`` is what ``device="auto"`` picks: the CUDA device's name with the CUDA version
    (``"cuda: NVIDIA H200 (CUDA 13.0)"``), else ``"cpu"`` with why (no CUDA build, or no device).
    """
    import torch

    from superconverge import __version__

    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        more = f", {count} devices" if count > 1 else ""
        device = f"cuda: {torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}{more})"
    elif torch.version.cuda is None:
        device = "cpu (this torch was built without CUDA)"
    else:
        device = f"cpu (no CUDA device found; torch built for CUDA {torch.version.cuda})"
    return {
        "superconverge": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
    }


def machine_memory(proc: str = "/proc", cgroup: str = "/sys/fs/cgroup") -> int | None:
    """The memory this process may use, in bytes: the machine's (``MemTotal``), capped by the
    memory limits of the process's own control group and its parents (cgroup v2 ``memory.max``,
    v1 ``memory.limit_in_bytes``: a container's, a Slurm job's, a systemd unit's); None where
    none can be read (not Linux). The total, not what is free now: a decision sized by it is the
    same on an idle and on a busy machine. `proc` and `cgroup` are the file systems' roots."""
    from pathlib import Path, PurePosixPath

    sizes = []
    try:
        for line in Path(proc, "meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                sizes.append(int(line.split()[1]) * 1024)
                break
    except (OSError, ValueError, IndexError):
        pass
    try:
        groups = Path(proc, "self", "cgroup").read_text().splitlines()
    except OSError:
        groups = ["0::/"]  # the root's limits, where they can be read
    for line in groups:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[1] == "":  # cgroup v2's unified hierarchy
            base, name = Path(cgroup), "memory.max"
        elif "memory" in parts[1].split(","):
            base, name = Path(cgroup, "memory"), "memory.limit_in_bytes"
        else:
            continue
        group = PurePosixPath(parts[2].lstrip("/"))
        for folder in (group, *group.parents):  # the group, then each parent up to the root
            try:
                text = (base / folder / name).read_text().strip()
            except OSError:
                continue
            if text.isdigit() and int(text) > 0:
                sizes.append(int(text))  # v1's "no limit" is a huge number: the minimum drops it
    return min(sizes) if sizes else None
