"""The one writer of files: every file the library leaves behind goes through `write_atomically`.

A file is written to a temporary name of its own in the same folder, flushed to disk, then
renamed over its target, so a crash (even SIGKILL) leaves the previous file or the new one,
never a half-written mix, and two writers never share a temporary file. Plain Python: no torch.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from superconverge._display import without_passwords

if sys.platform != "win32":
    import fcntl

LOCK_NAME = ".superconverge.lock"

# the writes that room would fix, in words: a full disk, a full quota (a shared cluster's usual
# "disk full"), and the process's file-size limit (`ulimit -f`: Python ignores SIGXFSZ, so the
# write fails with EFBIG); each is named with the file it stopped, not as a bare "[Errno 27]"
NO_ROOM = {
    errno.ENOSPC: "no space left on device",
    errno.EFBIG: "file too large for this process's file-size limit (ulimit -f)",
}
if hasattr(errno, "EDQUOT"):
    NO_ROOM[errno.EDQUOT] = "disk quota exceeded"


def write_atomically(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(handle)`` on a fresh temporary file beside `path`, fsync, rename over `path`.

    Raises:
        OSError: the write failed; a full disk, a full quota or the file-size limit says so
            and names the file. The previous file at `path`, if any, is left as it was.

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
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=prefix, suffix=".partial", dir=path.parent)
    except PermissionError as error:  # named by its temporary file, .losses.png.7803.x.partial
        raise PermissionError(
            error.errno, f"{path.parent} is not writable (writing {path.name})", str(path)
        ) from error
    try:
        if hasattr(os, "fchmod"):  # mkstemp's 0o600 would hide a report from the user's team
            os.fchmod(descriptor, _mode_for(path))
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _remove_leftovers(path)
    except OSError as error:
        if error.errno in NO_ROOM:
            raise OSError(error.errno, f"{NO_ROOM[error.errno]} while writing {path}") from error
        raise
    except RuntimeError as error:  # torch.save reports a failed write as a RuntimeError
        if "No space left" in str(error) or "enforce fail" in str(error):
            # the OSError of the write it failed on, when it kept one: the file-size limit was
            # reported as a full disk, with the wrong remedy (a user's check)
            failed = next((e for e in _causes(error) if isinstance(e, OSError)), None)
            if failed is not None and failed.errno is not None and failed.errno not in NO_ROOM:
                # an I/O error, say: named as such, not as a full disk
                raise OSError(failed.errno, f"{failed.strerror} while writing {path}") from error
            number = errno.ENOSPC if failed is None or failed.errno is None else failed.errno
            raise OSError(number, f"{NO_ROOM[number]} while writing {path}") from error
        raise
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def _causes(error: BaseException) -> list[BaseException]:
    """The exceptions `error` was raised from or while handling, nearest first."""
    chain, seen = [], {id(error)}
    cause = error.__cause__ or error.__context__
    while cause is not None and id(cause) not in seen:
        chain.append(cause)
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return chain


def _mode_for(path: Path) -> int:
    """The permissions a plain ``open(path, "w")`` would leave: the file's own when it exists
    (a user's chmod is kept), else 0o666 less the process's umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells (``os.umask`` sets
    it to read it, which races with other threads creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


class FolderBusyError(RuntimeError):
    """Another process is writing to the run folder."""


# folders this process holds, resolved path -> [open lock file, hold count]: a run folder is
# locked once per process however many writers (tune, its final Trainer) nest inside it
_HELD: dict[Path, list[Any]] = {}


def folder_holder(folder: str | Path) -> str | None:
    """Who is writing to `folder` (the pid and command its lock records), or None when no
    other live process holds its lock: a look only, nothing is taken or created.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> folder_holder(folder) is None
        True
    """
    path = Path(folder) / LOCK_NAME
    if sys.platform == "win32" or not path.is_file() or Path(folder).resolve() in _HELD:
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


class FolderLock:
    """One writer per run folder: an exclusive lock on ``FOLDER/.superconverge.lock``.

    The lock is the operating system's (``flock``), so it dies with its process: a run that
    crashed or was killed never leaves a stale lock behind, and the next run simply takes it.
    The lock file records the holder's pid and command line, for the message a second writer
    gets, and is emptied (not removed) when the holder releases it.
    Re-entrant within a process. Use as a context manager.

    Raises:
        FolderBusyError: another live process holds the folder.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> with FolderLock(folder):
        ...     with FolderLock(folder):  # the same process may nest
        ...         pass
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._key: Path | None = None

    def acquire(self) -> FolderLock:
        if self.folder.exists() and not self.folder.is_dir():  # was pathlib's bare "File exists"
            raise NotADirectoryError(
                f"out_dir {self.folder} is a file; out_dir names the folder a run writes its "
                "files into: choose another path"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        key = self.folder.resolve()
        if key in _HELD:
            _HELD[key][1] += 1
            self._key = key
            return self
        handle = open(key / LOCK_NAME, "a+")  # noqa: SIM115 - held open while the lock lives
        if sys.platform != "win32":  # Windows has no flock: there the lock guards nothing
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                raise FolderBusyError(
                    f"{self.folder} is being written by {holder}; wait for it to finish, "
                    "or choose another folder"
                ) from None
        handle.seek(0)
        handle.truncate()
        command = without_passwords(" ".join(sys.argv))[:200]
        handle.write(f"pid {os.getpid()} ({command}) since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        _HELD[key] = [handle, 1]
        self._key = key
        return self

    def release(self) -> None:
        if self._key is None:
            return
        entry = _HELD[self._key]
        entry[1] -= 1
        if entry[1] == 0:
            del _HELD[self._key]
            # the file stays (removing it would let a process that opened it before the
            # removal and one that creates it anew each lock a file of their own), emptied
            # while still held: a finished run leaves no pid and command that read as its
            # writer's, still at work
            with contextlib.suppress(OSError):
                entry[0].truncate(0)
            entry[0].close()  # closing the file releases the flock
        self._key = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()
