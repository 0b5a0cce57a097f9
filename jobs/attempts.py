"""Resume across jobs: a stage starts from an earlier job's attempt at the same key.

A stage's resumable state — ``checkpoints/`` (blut's epochs, the HF Trainer's
steps) and ``work/`` (generate's per-sample parts) — lives in its job's folder,
so `blut plan resume` of that job finds it. A new job of the same recipe and
config (a new ``blut recipe run``) has the same cache key for the stage but a
new folder. Before the executor launches a cacheable stage whose own folder has
no such state, `take_over` looks for another job's stage of the same name whose
``key.json`` names the same key and which holds some, and moves the newest one
into this stage's folder (its metric parts are copied: the earlier job keeps
its curves). The payload then resumes as it does in its own job: it checks its
own fingerprint and starts over if that differs.

Moved, not copied or linked: checkpoints can be gigabytes, and some files in
them are rewritten in place (``best.pt``), which a hard link would share. The
earlier job gives its progress to the newest attempt at the key; once that one
commits, the earlier job's `blut plan resume` is a cache hit. The caller holds
the key's lock, so no other executor is computing the key; a stage unit of the
earlier job still running (its executor died) is left alone.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from blut.status.layout import StagePaths
from blut.status.private import private_dir

STATE = ("checkpoints", "work")
"""The stage folder's resumable state (see `StagePaths.checkpoints`, `StagePaths.work`)."""


@dataclass(frozen=True)
class Earlier:
    """An earlier attempt at a stage key, in another job's folder."""

    job: str
    files: StagePaths
    newest: float
    """The newest modification time in its resumable state."""


def _state(files: StagePaths) -> list[Path]:
    return [files.dir / name for name in STATE]


def has_state(files: StagePaths) -> bool:
    """Whether the stage folder holds anything a resume would use."""
    return any(d.is_dir() and any(d.iterdir()) for d in _state(files))


def _newest(files: StagePaths) -> float:
    times = [p.stat().st_mtime for d in _state(files) if d.is_dir() for p in (d, *d.iterdir())]
    return max(times, default=0.0)


def _key(files: StagePaths) -> str | None:
    try:
        data = json.loads(files.key.read_text())
    except (OSError, ValueError):
        return None
    key = data.get("key") if isinstance(data, dict) else None
    return key if isinstance(key, str) else None


def find_earlier(
    jobs_dir: Path, job_id: str, stage: str, key: str, running: Callable[[str], bool]
) -> Earlier | None:
    """The newest attempt at ``key`` by stage ``stage`` of a job other than ``job_id`` that
    holds resumable state and whose stage unit is not running (``running(job id)``)."""
    found: list[Earlier] = []
    try:
        folders = list(jobs_dir.iterdir())
    except FileNotFoundError:
        return None
    for folder in folders:
        if folder.name == job_id or folder.name.startswith("."):
            continue
        files = StagePaths(folder / "stages" / stage)
        if not has_state(files) or _key(files) != key or running(folder.name):
            continue
        found.append(Earlier(folder.name, files, _newest(files)))
    return max(found, key=lambda e: e.newest, default=None)


def take_over(earlier: Earlier, files: StagePaths) -> list[str]:
    """Move ``earlier``'s resumable state into ``files`` (whose own is empty) and copy its
    metric parts; the names of what was moved."""
    moved = []
    for source, dest in zip(_state(earlier.files), _state(files), strict=True):
        if not source.is_dir() or not any(source.iterdir()):
            continue
        if dest.exists():
            shutil.rmtree(dest)
        source.rename(dest)
        moved.append(dest.name)
    if earlier.files.metrics.is_dir():
        private_dir(files.metrics)
        for part in sorted(earlier.files.metrics.iterdir()):
            if part.is_file() and not (files.metrics / part.name).exists():
                shutil.copy2(part, files.metrics / part.name)
    return moved
