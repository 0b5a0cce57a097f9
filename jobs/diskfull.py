"""A full disk under ``$BLUT_HOME``: telling it from other errors, and saying so.

Every write blut makes (events, records, the cache index, a commit) can fail
because the filesystem is full: ``ENOSPC``/``EDQUOT`` from the kernel, or
sqlite's ``SQLITE_FULL`` ("database or disk is full"; an ``SQLITE_IOERR`` such
as a shared-memory file that cannot grow counts too when little is free).
Such a failure becomes :class:`DiskFull`, whose message is the reason jobs
record: ``disk full (84.0 KiB free under BLUT_HOME)``.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from blut.jobs.errors import JobsError
from blut.jobs.quantities import format_size

DISK_FULL = "disk full ("
"""How the reason of a failure for want of room starts."""
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
SQLITE_FULL = 13
SQLITE_IOERR = 10
NEARLY_FULL = 1 << 20
"""Below this many free bytes an I/O error of the cache index is taken for a full disk."""
OUT_OF_SPACE_WORDS = (
    "No space left on device",
    "Disk quota exceeded",
    "database or disk is full",
)
"""What a program that ran out of space prints (strerror, sqlite's message)."""


def free_bytes(where: Path) -> int | None:
    """Bytes an unprivileged writer may still use on the filesystem of ``where``; None when
    it cannot be told."""
    try:
        return shutil.disk_usage(where).free
    except OSError:
        return None


def disk_full_detail(where: Path) -> str:
    """``disk full (84.0 KiB free under BLUT_HOME)``, measured now at ``where``."""
    free = free_bytes(where)
    return f"{DISK_FULL}{'?' if free is None else format_size(free)} free under BLUT_HOME)"


def disk_full_cause(detail: str | None) -> str | None:
    """The ``disk full (…)`` a recorded failure's detail starts with, if it does."""
    if detail is None or not detail.startswith(DISK_FULL):
        return None
    return detail[: detail.index(")") + 1] if ")" in detail else detail


def _full(exc: BaseException, where: Path) -> bool:
    if isinstance(exc, DiskFull):
        return True
    if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
        return True
    code = getattr(exc, "sqlite_errorcode", None)  # sqlite3.Error, without importing sqlite3
    if not isinstance(code, int):
        return False
    if code & 0xFF == SQLITE_FULL:
        return True
    free = free_bytes(where)
    return code & 0xFF == SQLITE_IOERR and free is not None and free < NEARLY_FULL


def is_disk_full(exc: BaseException, where: Path) -> bool:
    """True when ``exc``, or an error it was raised from, says the filesystem of ``where``
    is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _full(current, where):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def ran_out_of_space(log_tail: str) -> bool:
    """True when a program's last output says it ran out of space."""
    return any(words in log_tail for words in OUT_OF_SPACE_WORDS)


class DiskFull(JobsError):
    """A write under BLUT_HOME failed because its filesystem is full.

    ``detail`` is the reason a job records; the message adds what was being done.
    """

    def __init__(self, where: Path, doing: str = "") -> None:
        self.detail = disk_full_detail(where)
        super().__init__(f"{self.detail}: {doing}" if doing else self.detail)


def full_or_raise(exc: BaseException, where: Path, doing: str = "") -> DiskFull:
    """``exc`` as a :class:`DiskFull` when it says the disk is full; ``exc`` itself is
    raised otherwise (call it in an ``except`` block: ``raise full_or_raise(...) from exc``)."""
    if isinstance(exc, DiskFull):
        return exc
    if is_disk_full(exc, where):
        return DiskFull(where, doing)
    raise exc
