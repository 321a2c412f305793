"""An exclusive, inter-process lock on what a run writes (its output, journal and state beside them).

:class:`OutputLock` takes ``fcntl.flock`` on ``<path>.lock`` without waiting: a second run on the
same path is refused at once with one line naming the run that holds it (pid, start time and
command, which the holder writes into the lock file). The operating system releases a flock when
its holder exits, however it exits, so a lock file left by a killed run does not block; the holder
removes the file when it releases the lock normally. POSIX only (``fcntl``).
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import sys
import time
from pathlib import Path

from spikenas.errors import SpikeNASError


def lock_path(path: str | Path) -> Path:
    """The lock file guarding ``path``: ``<path>.lock`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


class OutputLock:
    """Exclusive lock on ``path`` held from :meth:`acquire` (or ``with``) to :meth:`release`.

    :param path: the file (results.json, a journal) whose writers must exclude each other.
    :raises SpikeNASError: from :meth:`acquire`, one line naming the running holder, if another
        process (or another lock object in this process) holds it.
    """

    def __init__(self, path: str | Path) -> None:
        self.target = Path(path)
        self.path = lock_path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> OutputLock:
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise SpikeNASError(f"{self.target} is in use by another run ({holder}); wait for it to finish "
                                    "or choose another output") from None
            # The previous holder may have removed the file between our open and our flock: then we
            # locked an orphan inode that a third run cannot see, and must start again on the new file.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = {"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                "command": shlex.join([sys.executable, *sys.argv])}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and release the lock (in that order, so no one locks a removed file unseen)."""
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __getstate__(self) -> dict:
        raise TypeError("an OutputLock belongs to the process that holds it and cannot be pickled")


def _read_holder(fd: int) -> str:
    """``pid N, started T, command C`` from a held lock file (what the holder wrote), or why it is unknown."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode())
        return f"pid {info['pid']}, started {info['started']}, command: {info['command']}"
    except (ValueError, KeyError, TypeError, OSError):
        return "holder not yet recorded"


__all__ = ["OutputLock", "lock_path"]
