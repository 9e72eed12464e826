"""One writer per run folder: an OS lock (``flock``) on ``<run folder>/.lock``.

The lock is taken before anything is written to the folder and held until training returns.
The operating system releases it when its process ends in any way, a SIGKILL included, so a
killed run never leaves a lock behind; the file itself is removed by a holder that ends
normally. The holder writes its PID into the file, for the message a second writer gets.
Locks taken through two opens of the file exclude each other within one process too (the
app's training threads).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK = ".lock"
_HELD: set[int] = set()  # descriptors of the locks this process holds


def _close_inherited() -> None:
    """In a forked child (a DataLoader worker): close the copies of the lock descriptors, so that
    a killed run's lock ends with it, not with its last worker (the lock stays with the parent)."""
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_inherited)


class RunFolderBusy(RuntimeError):
    """Another process (or thread) is writing to this run folder; nothing was changed."""


def _holder(file: Path) -> str:
    try:
        pid = file.read_text().strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"


def _acquire(file: Path) -> int:
    """An open descriptor of ``file`` holding its exclusive lock; RunFolderBusy if another holds it."""
    while True:
        fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            message = (f"{file.parent} is being written by {_holder(file)} (a training run); nothing was "
                       "changed. Wait for it to end, stop it, or choose another --out")
            raise RunFolderBusy(message) from None
        try:  # a holder that ended may have removed the file between our open and our lock
            if os.stat(file).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextlib.contextmanager
def run_folder_lock(run_dir: str | Path, enabled: bool = True) -> Iterator[None]:
    """Hold ``run_dir``'s writer lock for the ``with`` block (creating the folder if needed).

    A folder made here and left empty (a start that failed) is removed again. A path that is a
    file or cannot be written is not locked: the caller's own checks refuse it, writing nothing.
    """
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    file = run_dir / LOCK
    fd = None
    if enabled and (run_dir.is_dir() or not run_dir.exists()):
        with contextlib.suppress(OSError):
            run_dir.mkdir(parents=True, exist_ok=True)
            fd = _acquire(file)
    if fd is None:
        yield
        return
    try:
        with contextlib.suppress(OSError):  # the PID is only for the message; a full disk may refuse it
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        _HELD.add(fd)
        yield
    finally:
        _HELD.discard(fd)
        file.unlink(missing_ok=True)
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                run_dir.rmdir()
