"""Advisory file locks (``flock``): the one lock blut takes on a file, anywhere.

A lock is held by an open file description, so it is released when its holder
exits or is killed, never left stale.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
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

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the lock; False when someone else holds it and we may not wait.

        ``blocking=False`` tries once; ``timeout`` waits at most that many seconds.
        """
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                wait = blocking and deadline is None
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                break
            except BlockingIOError:
                if not blocking or deadline is None or time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.05)
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


_THREAD = threading.local()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the lock at ``path`` for the block; re-entrant within one thread.

    A thread that already holds it (say, a submit that runs a fully cached job
    in-process) enters at once instead of deadlocking against itself.
    """
    held: set[Path] = _THREAD.__dict__.setdefault("held", set())
    if path in held:
        yield
        return
    with Flock(path):
        held.add(path)
        try:
            yield
        finally:
            held.discard(path)
