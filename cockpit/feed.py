"""File I/O of the cockpit: every job's state, and the focused job's history and logs.

Runs in a worker thread only. A job enters the feed with the state its index
summary holds (`blut.status.summary`), so 1,000 jobs are on screen without
re-reading their histories; from then on :class:`JobFeed` reads only what is
appended to each status.jsonl (one byte offset per job) and turns it into
:class:`JobDelta` records that the app folds into its state on the UI thread.
The history before a job's summary is read only for the job the Job screen is
about (`focus`), for its plots, as are its stage logs; and for the jobs whose
outputs its cached stages reused (`borrowed`), whose logs and plots it shows for
those stages.

What it looks at: jobs that have not ended on every poll, jobs whose folder
the file watcher reports changed, and the others a slice at a time (a resumed
job is noticed even without a watcher), so an idle cockpit over 1,000 jobs
does almost nothing. Decoding is :func:`blut.status.fastdecode.decode_buffer`,
which parses only what the state can use and leaves plot-only lines for the
state to parse when a plot needs them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from blut.jobs.errors import JobsError
from blut.jobs.store import Job, JobSpec, JobStore
from blut.status.events import TERMINAL_JOB_EVENTS, Event, JobStarted, Metric, Resources
from blut.status.fastdecode import decode_buffer
from blut.status.jobstate import JobView
from blut.status.summary import read_summary
from blut.status.tailer import LineTailer

READ_BYTES = 1 << 20
"""Bytes of one job's stream decoded per step (a huge backlog comes in pieces)."""
LOG_TAIL_BYTES = 64 << 10
"""How much of a stage log is read when the cockpit starts watching it."""
LOG_LINE_CHARS = 400
"""Longer log lines are cut (the full text stays in the file and in $PAGER)."""
RECHECK_PER_POLL = 25
"""Ended jobs stat'ed per poll besides those the watcher names (a resume is noticed)."""


@dataclass(frozen=True)
class LogChunk:
    """New lines of a stage log; ``reset`` replaces what was shown (a fresh tail)."""

    lines: list[str]
    reset: bool = False


@dataclass(frozen=True)
class JobDelta:
    """What changed in one job since the last poll."""

    job_id: str
    spec: JobSpec | None = None
    """Set the first time the job is seen."""
    view: JobView | None = None
    """Set the first time the job is seen: its state as of its index summary (what
    ``events`` follow on from)."""
    events: list[Event] = field(default_factory=list)
    lines: int = 0
    garbage: int = 0
    logs: dict[str, LogChunk] = field(default_factory=dict)
    raw: list[bytes] = field(default_factory=list)
    """Plot-only lines, parsed when a plot needs them (see `Decoded`)."""
    history: bool = False
    """``events``/``raw`` come from before the job's summary: for its plots only."""
    backlog: bool = False
    """Events read from the history found at start (no toasts for old endings)."""
    caught_up: bool = True
    """Everything written so far has been read."""


def log_text(raw: bytes) -> str:
    """One stage log line as the log pane shows it (decoded, cut to LOG_LINE_CHARS)."""
    return raw.decode("utf-8", "replace")[:LOG_LINE_CHARS].rstrip("\r")


class _LogTail:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.tailer: LineTailer | None = None

    def read(self) -> LogChunk | None:
        reset = False
        if self.tailer is None:
            try:
                size = self.path.stat().st_size
            except OSError:
                return None
            start = max(0, size - LOG_TAIL_BYTES)
            if start:
                with open(self.path, "rb") as f:
                    f.seek(start)
                    head = f.read(LOG_TAIL_BYTES)
                nl = head.find(b"\n")
                start = start + nl + 1 if nl >= 0 else size
            self.tailer = LineTailer(self.path, start)
            reset = True
        restarts = self.tailer.restarts
        raw = self.tailer.read_lines(READ_BYTES)
        reset = reset or self.tailer.restarts != restarts
        if not raw and not reset:
            return None
        return LogChunk([log_text(line) for line in raw], reset)


class _JobTail:
    """One job: its stream read from its summary's offset on."""

    def __init__(self, job: Job, backlog: bool) -> None:
        self.job = job
        indexed = read_summary(job.paths, job.id)
        self.view = indexed.view if indexed is not None else JobView(job.id)
        """The state to start from, sent with the first delta."""
        self.history_end = indexed.offset if indexed is not None else 0
        """Bytes of stream the starting state already holds (read for plots when focused)."""
        self.tailer = LineTailer(job.status_path, self.history_end)
        self.history: LineTailer | None = None
        self.stat: tuple[int, int, int] | None = None
        self.sent_spec = False
        self.backlog = backlog
        self.terminal = self.view.terminal
        self.changed = time.monotonic()

    def stat_changed(self) -> bool:
        try:
            st = os.stat(self.job.status_path)  # noqa: PTH116 - hot path, 1,000 jobs
        except OSError:
            return False
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        if key == self.stat:
            return False
        self.stat = key
        self.changed = time.monotonic()
        return True

    def read_history(self) -> JobDelta | None:
        """The next piece of the history before the summary (plots only), or None when
        it has all been read."""
        if self.history is None:
            self.history = LineTailer(self.job.status_path)
        if self.history.offset >= self.history_end:
            return None
        block = self.history.read_block(min(READ_BYTES, self.history_end - self.history.offset))
        if not block:
            self.history_end = self.history.offset  # replaced or truncated: nothing to plot
            return None
        decoded = decode_buffer(block)
        plots: list[Event] = [e for e in decoded.events if isinstance(e, Metric | Resources)]
        return JobDelta(self.job.id, events=plots, raw=decoded.raw, history=True)


class JobFeed:
    """Reads what was appended to every job of a store; call from one thread only.

    ``focus`` (set by the UI) names the job whose history (for plots) and stage
    logs are read too; ``borrowed``, the jobs that computed the outputs its cached
    stages reused (read the same way).
    """

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.focus: str | None = None
        self.borrowed: frozenset[str] = frozenset()
        self._tails: dict[str, _JobTail] = {}
        self._pending: set[str] = set()
        self._to_stat: set[str] = set()
        self._rotation: list[str] = []
        self._logs: dict[tuple[str, str], _LogTail] = {}
        self._log_jobs: tuple[str, ...] = ()
        self._listed: tuple[int, int] | None = None
        self._incomplete: set[str] = set()
        self._on_disk = 0
        self._scanned = False
        self.known = 0

    def job(self, job_id: str) -> Job | None:
        """The store's job with that id, once the feed has seen it."""
        tail = self._tails.get(job_id)
        return tail.job if tail else None

    def behind(self) -> frozenset[str]:
        """Jobs with data written that the last :meth:`poll` has not read yet."""
        return frozenset(self._pending)

    def waiting(self) -> list[tuple[Job, float]]:
        """Non-terminal jobs and the monotonic time their stream last changed."""
        return [(t.job, t.changed) for t in self._tails.values() if not t.terminal]

    def notice(self, changed: Iterable[Path] | None) -> None:
        """The watcher's report: paths that changed (their jobs are looked at on the next
        poll). None (no watcher) adds nothing: every poll looks at the live jobs and a
        slice of the ended ones anyway."""
        if changed is None:
            return
        jobs_dir = self.store.jobs_dir
        for path in changed:
            try:
                rel = path.relative_to(jobs_dir)
            except ValueError:
                continue
            if len(rel.parts) == 1:
                self._listed = None  # a job folder came or went
            if rel.parts and rel.parts[0] in self._tails:
                self._to_stat.add(rel.parts[0])
            elif rel.parts:
                self._listed = None

    def scan(self, deadline: float | None = None) -> None:
        """Notice new job folders (a job appears once its job.json is readable), newest
        first; past ``deadline`` (monotonic) the rest waits for the next call."""
        try:
            st = os.stat(self.store.jobs_dir)  # noqa: PTH116
            listed = (st.st_mtime_ns, st.st_ino)
            if listed == self._listed and self._scanned:
                entries = list(self._incomplete)  # folders still without a job.json
            else:
                entries = os.listdir(self.store.jobs_dir)  # noqa: PTH208 - names only, fast
                self._on_disk = sum(
                    1
                    for name in entries
                    if not name.startswith(".") and self.store.paths(name).spec.exists()
                )
        except OSError:
            return
        self._listed = listed
        for name in sorted(entries, reverse=True):  # newest first: the top of the table
            if name in self._tails or name.startswith("."):
                continue
            if deadline is not None and time.monotonic() >= deadline:
                self._listed = None  # more to take in: list again next time
                break
            paths = self.store.paths(name)
            if not paths.spec.is_file():
                self._incomplete.add(name)  # being created (or left broken): look again
                continue
            self._incomplete.discard(name)
            job_dir = paths.dir
            try:
                job = self.store.load(job_dir)
            except JobsError:
                continue
            tail = self._tails[name] = _JobTail(job, backlog=not self._scanned)
            tail.stat_changed()  # what it is read up to now: later looks see only changes
            self._pending.add(name)
        else:
            self._scanned = True
        self.known = max(len(self._tails), self._on_disk)

    def _look(self) -> None:
        """Stat the jobs that may have changed: the live ones, those the watcher named,
        and a slice of the ended ones."""
        if not self._rotation:
            self._rotation = [j for j, t in self._tails.items() if t.terminal]
        look = {j for j, t in self._tails.items() if not t.terminal} | self._to_stat
        look.update(self._rotation[-RECHECK_PER_POLL:])
        del self._rotation[-RECHECK_PER_POLL:]
        self._to_stat.clear()
        for job_id in look:
            tail = self._tails.get(job_id)
            if tail is not None and tail.stat_changed():
                self._pending.add(job_id)

    def poll(self, budget: float = 0.08) -> tuple[list[JobDelta], bool]:
        """Deltas of changed jobs (newest first) read within ``budget`` s; True if more wait."""
        deadline = time.monotonic() + budget
        # The very first look takes in the newest jobs for half the budget, so the first
        # screen has rows at once; the next one takes in all the others.
        self.scan(deadline - budget / 2 if not self._tails else None)
        self._look()
        deltas: list[JobDelta] = []
        for job_id in sorted(self._pending, reverse=True):
            deltas.append(self._read(self._tails[job_id]))
            if time.monotonic() >= deadline:
                break
        deltas.extend(self._read_focus())
        more = bool(self._pending) or self._history_left() or self._listed is None
        return [d for d in deltas if d.spec or d.events or d.lines or d.logs or d.raw], more

    def _read(self, tail: _JobTail) -> JobDelta:
        decoded = decode_buffer(tail.tailer.read_block(READ_BYTES))
        if not tail.tailer.more:
            self._pending.discard(tail.job.id)
        for event in decoded.events:
            if event.event in TERMINAL_JOB_EVENTS:
                tail.terminal = True
            elif isinstance(event, JobStarted):  # resumed: reconcile it again if it dies
                tail.terminal = False
        first = not tail.sent_spec
        tail.sent_spec = True
        delta = JobDelta(
            tail.job.id,
            spec=tail.job.spec if first else None,
            view=tail.view if first else None,
            events=decoded.events,
            lines=decoded.lines,
            garbage=decoded.garbage,
            raw=decoded.raw,
            backlog=tail.backlog,
            caught_up=not tail.tailer.more,
        )
        if not tail.tailer.more:
            tail.backlog = False
        return delta

    def _focused(self) -> list[_JobTail]:
        """The focused job and the jobs it borrows from, once their first delta went out,
        so nothing read for them is for a job the state lacks."""
        if not self.focus:
            return []
        found = (self._tails.get(j) for j in (self.focus, *sorted(self.borrowed - {self.focus})))
        return [t for t in found if t is not None and t.sent_spec]

    def _history_left(self) -> bool:
        return any(t.history is None or t.history.offset < t.history_end for t in self._focused())

    def _read_focus(self) -> list[JobDelta]:
        """The history (a piece per poll) and new log lines of the focused job and of the
        jobs it borrows from."""
        jobs = (self.focus, *sorted(self.borrowed)) if self.focus else ()
        if jobs != self._log_jobs:
            self._logs = {k: v for k, v in self._logs.items() if k[0] in jobs}
            self._log_jobs = jobs
        out = []
        for tail in self._focused():
            history = tail.read_history()
            if history is not None:
                out.append(history)
            chunks = self._read_logs(tail.job)
            if chunks:
                out.append(JobDelta(tail.job.id, logs=chunks))
        return out

    def _read_logs(self, job: Job) -> dict[str, LogChunk]:
        stages_dir = job.paths.stages_dir
        try:
            stages = os.listdir(stages_dir)  # noqa: PTH208
        except OSError:
            stages = []
        chunks: dict[str, LogChunk] = {}
        for stage in sorted(stages):
            log = self._logs.get((job.id, stage))
            if log is None:
                path = job.paths.stage(stage).log
                if not path.is_file():
                    continue
                log = self._logs[job.id, stage] = _LogTail(path)
            chunk = log.read()
            if chunk is not None:
                chunks[stage] = chunk
        return chunks
