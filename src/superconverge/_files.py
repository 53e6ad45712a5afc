"""The one writer of files: every file the library leaves behind goes through `write_atomically`.

A file is written to a temporary name of its own in the same folder, flushed to disk, then
renamed over its target, so a crash (even SIGKILL) leaves the previous file or the new one,
never a half-written mix, and two writers never share a temporary file. Plain Python: no torch.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def write_atomically(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(handle)`` on a fresh temporary file beside `path`, fsync, rename over `path`.

    Raises:
        OSError: the write failed; a full disk says so and names the file. The previous file
            at `path`, if any, is left as it was.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> write_atomically(folder / "a.txt", lambda f: f.write(b"hi")).read_text()
        'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the writer's pid in the name: a later write can tell a dead writer's leftovers
    prefix = f".{path.name}.{os.getpid()}."
    descriptor, temporary = tempfile.mkstemp(prefix=prefix, suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _remove_leftovers(path)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise OSError(errno.ENOSPC, f"no space left on device while writing {path}") from error
        raise
    except RuntimeError as error:  # torch.save reports a failed write as a RuntimeError
        if "No space left" in str(error) or "enforce fail" in str(error):
            raise OSError(errno.ENOSPC, f"no space left on device while writing {path}") from error
        raise
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def _remove_leftovers(path: Path) -> None:
    """Delete temporary files that writers of `path` killed mid-write left behind."""
    for leftover in path.parent.glob(f".{path.name}.*.partial"):
        pid = leftover.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            leftover.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def write_text_atomically(path: str | Path, text: str) -> Path:
    """`write_atomically` for UTF-8 text."""
    return write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))
