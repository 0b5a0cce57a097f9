"""Space held back on disk, so that a full disk can still be recorded as the cause.

A job folder holds ``reserve`` while the job is live (its executor deletes it to
make room for the outcome it records when the disk filled up, and when the job
ends), and each unit's result record is written over a pre-filled
``<record>.reserve`` in place, then renamed (``stoppost.sh``): overwriting
allocated bytes needs no free space. Both are real bytes, not holes (on
copy-on-write filesystems such as btrfs or ZFS an overwrite needs new blocks
anyway; there only the freed reserve helps).
"""

from __future__ import annotations

import os
from pathlib import Path

JOB_RESERVE = 64 << 10
"""Bytes a live job holds for recording its outcome on a full disk."""
RECORD_RESERVE = 4 << 10
"""Bytes pre-filled for a unit's result record (a record is ~300 bytes)."""


def hold(path: Path, size: int, fill: bytes = b"\0") -> None:
    """Create ``path`` (0600) holding ``size`` bytes of ``fill``, unless it holds them already.
    Raises `OSError` (``ENOSPC``) when they are not free; nothing is left behind then."""
    try:
        if path.stat().st_size >= size:
            return
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        data = fill * (size // len(fill))
        while data:
            data = data[os.write(fd, data) :]
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def release(path: Path) -> None:
    """Give the space of ``path`` back (delete it; gone already is fine)."""
    path.unlink(missing_ok=True)


def record_reserve(record: Path) -> Path:
    """The pre-filled file a result record is written over (``stoppost.sh`` knows the name)."""
    return record.with_name(record.name + ".reserve")
