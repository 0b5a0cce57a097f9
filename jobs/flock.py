"""Advisory file locks (``flock``) under ``$BLUT_HOME/locks/``.

A lock is held by an open file description, so it is released when its holder
exits or is killed, never left stale.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType


class Flock:
    """An exclusive lock on one file; ``acquire`` may block or just try."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; with ``blocking=False`` return False when someone else holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Flock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def is_held(path: Path) -> bool:
    """True when some process holds the lock at ``path`` (checked by trying it)."""
    if not path.exists():
        return False
    probe = Flock(path)
    if probe.acquire(blocking=False):
        probe.release()
        return False
    return True
