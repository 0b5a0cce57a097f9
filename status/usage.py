"""Bytes on disk: of one tree, and of ``$BLUT_HOME``'s job folders against its cache.

Sizes are the files' own (``st_size``, as the cache index counts them), symlinks
not followed. A file that vanishes while it is counted (a running job's temp
file) counts as nothing.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from blut.status.layout import JOBS_DIR

CACHE_DIR = "cache"
"""Where the stage cache lives under ``$BLUT_HOME``."""


def tree_size(path: Path) -> int:
    """Bytes in a file, or in every regular file under a directory (0 when it is gone)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(info.st_mode):
        return info.st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                entry = (Path(dirpath) / name).lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISREG(entry.st_mode):
                total += entry.st_size
    return total


@dataclass(frozen=True)
class HomeUsage:
    """What ``$BLUT_HOME`` holds: job folders (and how many) against the stage cache."""

    jobs: int
    job_count: int
    cache: int

    @property
    def total(self) -> int:
        """Bytes of both."""
        return self.jobs + self.cache


def home_usage(home: Path) -> HomeUsage:
    """Bytes under ``home``'s ``jobs/`` and ``cache/`` (a walk of both; no index is read)."""
    jobs_dir = home / JOBS_DIR
    try:
        count = sum(1 for e in os.scandir(jobs_dir) if e.is_dir() and not e.name.startswith("."))
    except FileNotFoundError:
        count = 0
    return HomeUsage(tree_size(jobs_dir), count, tree_size(home / CACHE_DIR))
