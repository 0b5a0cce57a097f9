"""One atomic file write for every file blut replaces whole (records, plans, summaries).

The data goes to a temp file with a unique name in the same folder, is fsynced,
and is renamed over the target; the folder is fsynced too, so after a crash the
target holds either the old or the new content, never a mix or nothing. Two
writers of one file never collide: each has its own temp name, the last rename wins.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO


@contextlib.contextmanager
def atomic_file(path: Path, *, mode: int = 0o600, durable: bool = True) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` when the block ends without an error.

    For writers that stream (a checkpoint, a Parquet part); on an error the temp
    file is removed and ``path`` is untouched. ``durable=False`` skips the fsyncs,
    for files that can be rebuilt (after a power loss such a file may be empty,
    never torn).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes | str, *, mode: int = 0o600, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically (unique temp name, fsync, rename)."""
    with atomic_file(path, mode=mode, durable=durable) as f:
        f.write(data.encode() if isinstance(data, str) else data)


def atomic_write_json(
    path: Path, data: Any, *, indent: int | None = 2, durable: bool = True
) -> None:
    """:func:`atomic_write` of ``data`` as JSON (with a final newline)."""
    atomic_write(path, json.dumps(data, indent=indent) + "\n", durable=durable)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: some filesystems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_temp_name(name: str) -> bool:
    """True for the name of an :func:`atomic_file` temp file (left by a crash)."""
    return name.startswith(".") and name.endswith(".tmp")
