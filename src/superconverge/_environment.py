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
