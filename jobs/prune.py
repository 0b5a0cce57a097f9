"""`blut jobs prune`: remove the folders of finished jobs.

What a rule selects: finished jobs (succeeded, failed or cancelled; with
``failed`` only failed and cancelled ones), oldest first; the ``keep_last``
newest of those stay; with ``older_than`` only jobs that ended at least that
long ago go. Never removed:

- a job that is not finished, or of which anything runs (its executor, its
  unit starting, a stage unit: `blut.jobs.lifecycle.job_active`), or whose lock
  someone holds (a submit, a reconcile, a resume);
- a job folder holding a path that a cache entry's args or an unfinished job's
  args name (`blut.jobs.retention.paths_in_use`).

A folder is first renamed into ``jobs/.trash/`` under the job's lock, after the
checks are made again, so no listing ever sees half a job: the job index lives
inside each folder (``summary.json``), so it goes with it. The trash is then
deleted (and what an interrupted prune left there, by the next one). The
executor's liveness lock file goes too.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from blut.jobs.errors import JobsError
from blut.jobs.lifecycle import job_active
from blut.jobs.retention import paths_in_use
from blut.jobs.store import Job, JobStore
from blut.status.flock import Flock
from blut.status.jobstate import JobView
from blut.status.layout import executor_lock
from blut.status.private import private_dir
from blut.status.summary import current_view
from blut.status.usage import tree_size

if TYPE_CHECKING:
    from blut.containment.launcher import Launcher
    from blut.jobs.cache import Cache

TRASH = ".trash"
"""Under ``jobs/``: folders being deleted (hidden from every listing)."""


@dataclass(frozen=True)
class JobsPruneRule:
    """Which finished jobs go (see the module docstring)."""

    older_than: float | None = None
    """Seconds since the job ended."""
    keep_last: int | None = None
    failed: bool = False

    @property
    def empty(self) -> bool:
        """True when nothing was asked (prune refuses to remove every job unasked)."""
        return self.older_than is None and self.keep_last is None and not self.failed


@dataclass(frozen=True)
class PrunedJob:
    """One job folder removed (or that would be)."""

    id: str
    name: str
    state: str
    ended: float
    """When it ended (or, for a job that never recorded it, was last seen starting)."""
    size: int


@dataclass
class JobsPruneReport:
    """What `prune_jobs` removed, or would remove on a dry run, and what it left."""

    removed: list[PrunedJob] = field(default_factory=list)
    freed: int = 0
    total_before: int = 0
    """Bytes in every job folder before."""
    active: list[str] = field(default_factory=list)
    """Jobs left because they have not finished or something of them runs."""
    in_use: list[str] = field(default_factory=list)
    """Jobs left because the cache or an unfinished job names a path in their folder."""
    unreadable: list[str] = field(default_factory=list)
    dry_run: bool = False


def _ended(job: Job, view: JobView) -> float:
    return view.finished or view.started or view.submitted or job.spec.created


def _owners(in_use: set[Path], jobs_dir: Path) -> set[str]:
    """The job ids whose folders hold a path of ``in_use``."""
    return {p.relative_to(jobs_dir).parts[0] for p in in_use if jobs_dir in p.parents}


def prune_jobs(
    store: JobStore,
    rule: JobsPruneRule,
    launcher_for: Callable[[Job], Launcher],
    cache: Cache | None,
    *,
    dry_run: bool = False,
    now: float | None = None,
) -> JobsPruneReport:
    """Remove (or, ``dry_run``, list) the job folders ``rule`` selects; see the module
    docstring. ``cache`` None: there is no cache index (nothing in it names anything)."""
    now = time.time() if now is None else now
    report = JobsPruneReport(dry_run=dry_run)
    if not dry_run:
        _empty_trash(store)
    finished: list[tuple[Job, JobView]] = []
    for job_id in store.ids():
        view = current_view(store.paths(job_id), job_id)
        if not view.terminal:
            report.active.append(job_id)
            continue
        if rule.failed and view.state == "succeeded":
            continue
        try:
            finished.append((store.load(store.paths(job_id).dir), view))
        except JobsError as exc:
            report.unreadable.append(str(exc))
    if rule.keep_last:
        finished = finished[: -rule.keep_last]
    if rule.older_than is not None:
        cutoff = now - rule.older_than
        finished = [(job, view) for job, view in finished if _ended(job, view) <= cutoff]
    jobs_dir = store.jobs_dir.resolve()
    in_use = _owners(paths_in_use(store, cache), jobs_dir) if finished else set()
    report.total_before = tree_size(store.jobs_dir)
    for job, view in finished:
        if job.id in in_use:
            report.in_use.append(job.id)
            continue
        size = tree_size(job.dir)
        if not _remove(store, job, launcher_for(job), dry_run=dry_run):
            report.active.append(job.id)
            continue
        report.removed.append(PrunedJob(job.id, job.spec.name, view.state, _ended(job, view), size))
        report.freed += size
    return report


def _remove(store: JobStore, job: Job, launcher: Launcher, *, dry_run: bool) -> bool:
    """Move ``job``'s folder to the trash and delete it, if it is still finished and
    nothing of it runs (checked under its lock); False when it is busy."""
    lock = Flock(job.paths.lock)
    if not lock.acquire(blocking=False):
        return False
    try:
        if not job.view().terminal or job_active(job, launcher):
            return False
        if dry_run:
            return True
        trash = private_dir(store.jobs_dir / TRASH) / f"{job.id}.{os.getpid()}"
        job.dir.rename(trash)
    finally:
        lock.release()
    shutil.rmtree(trash, ignore_errors=True)
    executor_lock(store.home, job.id).unlink(missing_ok=True)
    return True


def _empty_trash(store: JobStore) -> None:
    """Delete what an interrupted prune left in the trash."""
    trash = store.jobs_dir / TRASH
    if trash.is_dir():
        for leftover in trash.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)
