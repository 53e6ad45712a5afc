"""The one writer of files: atomic writes, a full disk named, one writer per run folder."""

import errno
import os
import re
import stat
import subprocess
import sys
import textwrap

import pytest

from superconverge import _files
from superconverge._files import (
    FolderBusyError,
    FolderLock,
    write_atomically,
    write_text_atomically,
)


def test_write_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "a.json"
    write_text_atomically(target, "one")
    write_text_atomically(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "a.txt"
    write_text_atomically(target, "good")

    def fail(handle):
        handle.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match=f"no space left on device while writing {target}"):
        write_atomically(target, fail)
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


@pytest.mark.parametrize(
    ("code", "named"),
    [
        ("EDQUOT", "disk quota exceeded"),  # a shared cluster's "disk full"
        ("EFBIG", "file too large for this process's file-size limit (ulimit -f)"),
    ],
)
def test_a_full_quota_and_the_file_size_limit_are_named_with_the_file(tmp_path, code, named):
    # they were "[Errno 122] Disk quota exceeded" with no file, and the CLI said to check
    # the path's permissions
    from superconverge.cli._common import explain
    from superconverge.cli.main import build_parser

    number = getattr(errno, code, None)
    if number is None:
        pytest.skip(f"no {code} on this platform")
    target = tmp_path / "a.txt"
    write_text_atomically(target, "good")

    def fail(handle):
        raise OSError(number, os.strerror(number))

    with pytest.raises(OSError, match=f"{re.escape(named)} while writing ") as failed:
        write_atomically(target, fail)
    assert failed.value.errno == number and str(target) in str(failed.value)
    assert target.read_text() == "good"
    status, message = explain(failed.value, build_parser())
    room = "raise the file-size limit" if code == "EFBIG" else "free some space"
    assert status == 1 and f"{target}; {room}" in message, message
    assert "permissions" not in message


def test_torch_saves_failure_is_named_by_the_write_it_failed_on(tmp_path):
    # torch.save turns the OSError of its write into "enforce fail ... unexpected pos": the
    # file-size limit was reported as a full disk (a user's check, ulimit -f 100)
    target = tmp_path / "a.pt"

    def fail(handle, number):
        try:
            raise OSError(number, os.strerror(number))
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704")  # noqa: B904 - as torch: the OSError only its context

    with pytest.raises(OSError, match="file-size limit") as failed:
        write_atomically(target, lambda handle: fail(handle, errno.EFBIG))
    assert failed.value.errno == errno.EFBIG
    with pytest.raises(OSError, match="no space left on device") as failed:
        write_atomically(target, lambda handle: fail(handle, errno.ENOSPC))
    assert failed.value.errno == errno.ENOSPC
    with pytest.raises(OSError, match="Input/output error while writing") as failed:
        write_atomically(target, lambda handle: fail(handle, errno.EIO))  # not a full disk
    assert failed.value.errno == errno.EIO
    with pytest.raises(OSError, match="no space left on device"):  # no OSError kept: a full disk
        write_atomically(target, lambda handle: (_ for _ in ()).throw(RuntimeError("enforce fail")))
    assert not target.exists()


def test_a_folder_that_is_not_writable_is_named_not_the_temporary_file(tmp_path, monkeypatch):
    # a user's check: "Permission denied: .../.losses.png.7803.37v2omw0.partial"
    import tempfile

    def refused(**kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", "x/.losses.png.7803.q.partial")

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(PermissionError) as failed:
        write_atomically(tmp_path / "losses.png", lambda handle: None)
    assert str(failed.value) == (
        f"[Errno 13] {tmp_path} is not writable (writing losses.png): '{tmp_path / 'losses.png'}'"
    )


def test_a_dead_writers_leftover_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    leftover = tmp_path / f".a.txt.{dead.stdout.strip()}.xyz.partial"
    leftover.write_text("half")
    alive = tmp_path / f".a.txt.{os.getpid()}.abc.partial"  # a live writer's: kept
    alive.write_text("in progress")
    write_text_atomically(tmp_path / "a.txt", "whole")
    assert not leftover.exists()
    assert alive.exists()


def test_second_process_is_refused_while_the_first_holds_the_folder(tmp_path):
    with FolderLock(tmp_path):
        code = textwrap.dedent(f"""
            from superconverge._files import FolderLock, FolderBusyError
            try:
                FolderLock({str(tmp_path)!r}).acquire()
            except FolderBusyError as error:
                print("busy:", error)
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "busy:" in out.stdout, out.stderr
    assert f"pid {os.getpid()}" in out.stdout  # names the holder


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    code = textwrap.dedent(f"""
        import os, signal
        from superconverge._files import FolderLock
        FolderLock({str(tmp_path)!r}).acquire()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == -9
    assert (tmp_path / _files.LOCK_NAME).exists()  # the file stays; the lock died with it
    with FolderLock(tmp_path):
        pass


def test_a_released_lock_names_no_writer(tmp_path):
    # a finished run left "pid 5180 (superconverge tune ...) since ..." in its folder, which
    # read as a writer still at work; the file itself stays (flock on a file that is removed
    # and made anew would let two writers in)
    with FolderLock(tmp_path):
        assert f"pid {os.getpid()}" in (tmp_path / _files.LOCK_NAME).read_text()
    assert (tmp_path / _files.LOCK_NAME).read_text() == ""
    with FolderLock(tmp_path):  # and the next holder records itself again
        assert f"pid {os.getpid()}" in (tmp_path / _files.LOCK_NAME).read_text()


def test_lock_is_reentrant_and_released(tmp_path):
    outer = FolderLock(tmp_path).acquire()
    with FolderLock(tmp_path):
        pass
    outer.release()
    assert not _files._HELD
    with FolderLock(tmp_path):
        assert len(_files._HELD) == 1


def test_busy_error_is_a_runtime_error():
    assert issubclass(FolderBusyError, RuntimeError)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_files_get_the_permissions_a_plain_open_gives_not_mkstemps_private_ones(tmp_path):
    # a user's check: every file of a run folder (report.html, plan.json) was 0o600, unreadable
    # by the team or a web server, where torch.save and open() leave 0o666 less the umask
    previous = os.umask(0o022)
    try:
        written = write_text_atomically(tmp_path / "report.md", "x")
        assert stat.S_IMODE(written.stat().st_mode) == 0o644
        written.chmod(0o640)  # the user's own choice survives a rewrite
        assert stat.S_IMODE(write_text_atomically(written, "y").stat().st_mode) == 0o640
        os.umask(0o077)  # a private umask is honoured
        private = write_text_atomically(tmp_path / "plan.json", "{}")
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    finally:
        os.umask(previous)


def test_the_lock_names_its_holder_without_a_url_password(tmp_path):
    # the holder's command line is shown to a second writer, and was left in the folder
    code = textwrap.dedent(f"""
        from superconverge._files import FolderLock, LOCK_NAME
        from pathlib import Path
        with FolderLock({str(tmp_path)!r}):
            print(Path({str(tmp_path)!r}, LOCK_NAME).read_text())
    """)
    url = "postgresql://ann:s3cret@db/runs"
    out = subprocess.run([sys.executable, "-c", code, "tune", "--study", url],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert "tune --study postgresql://ann:***@db/runs" in out.stdout
    assert "s3cret" not in out.stdout


def test_an_out_dir_that_is_a_file_is_named(tmp_path):
    # a user's check: pathlib's bare "FileExistsError: [Errno 17] File exists: '/tmp/...'"
    import torch
    from torch import nn

    from superconverge.training import Trainer

    path = tmp_path / "notes.txt"
    path.write_text("mine")
    data = (torch.randn(16, 4), torch.arange(16) % 3)
    trainer = Trainer(nn.Linear(4, 3), nn.functional.cross_entropy, data, batch_size=8,
                      out_dir=path, progress=False)  # fmt: skip
    with pytest.raises(NotADirectoryError, match=f"out_dir {path} is a file; out_dir names the"):
        trainer.fit_one_cycle(2, 0.1)
    assert path.read_text() == "mine"
