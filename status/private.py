"""File modes: whatever blut creates under ``$BLUT_HOME`` is 0600 (files) / 0700 (folders).

Every entry point (the CLI, the executor, the stage programs) calls
:func:`go_private` first, so files created by any library (sqlite, Parquet,
``write_text``) are private whatever the user's umask; blut's own files are
also created with explicit modes. The umask the process started with is kept
for the one thing that should honour it: a `blut run` command.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077
_started_with: int | None = None


def go_private() -> None:
    """Set this process's umask to 0o077, remembering the one it started with."""
    global _started_with
    previous = os.umask(PRIVATE_UMASK)
    if _started_with is None:
        _started_with = previous


def started_umask() -> int:
    """The umask this process started with (before :func:`go_private`)."""
    if _started_with is not None:
        return _started_with
    current = os.umask(PRIVATE_UMASK)
    os.umask(current)
    return current


def private_dir(path: Path) -> Path:
    """``mkdir -p path`` where every folder it creates is 0700; returns ``path``."""
    if not path.is_dir():
        private_dir(path.parent)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            if not path.is_dir():
                raise
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 unless it exists (for files others create,
    such as a unit's log that systemd opens); returns ``path``."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    return path
