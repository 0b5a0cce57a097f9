"""File I/O of the cockpit: every job's status.jsonl and the focused job's stage logs.

Runs in a worker thread only. :class:`JobFeed` keeps one byte offset per job
(so nothing is read twice) and turns what was appended into :class:`JobDelta`
records that the app folds into its state on the UI thread.

Decoding is :func:`blut.status.fastdecode.decode_buffer`, which parses only what
the state can use (newest progress, sampled metrics, peak memory) and leaves the
plot-only lines for the state to parse when a plot needs them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from blut.jobs.errors import JobsError
from blut.jobs.store import Job, JobSpec, JobStore
from blut.status.events import TERMINAL_JOB_EVENTS, Event
from blut.status.fastdecode import decode_buffer
from blut.status.tailer import LineTailer

READ_BYTES = 1 << 20
"""Bytes of one job's stream decoded per step (a huge backlog comes in pieces)."""
LOG_TAIL_BYTES = 64 << 10
"""How much of a stage log is read when the cockpit starts watching it."""
LOG_LINE_CHARS = 400
"""Longer log lines are cut (the full text stays in the file and in $PAGER)."""


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
    events: list[Event] = field(default_factory=list)
    lines: int = 0
    garbage: int = 0
    logs: dict[str, LogChunk] = field(default_factory=dict)
    raw: list[bytes] = field(default_factory=list)
    """Plot-only lines, parsed when a plot needs them (see :class:`Decoded`)."""
    backlog: bool = False
    """Events read from the history found at start (no toasts for old endings)."""
    caught_up: bool = True
    """Everything written so far has been read."""


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
        lines = [line.decode("utf-8", "replace")[:LOG_LINE_CHARS].rstrip("\r") for line in raw]
        return LogChunk(lines, reset)


class _JobTail:
    def __init__(self, job: Job, backlog: bool) -> None:
        self.job = job
        self.tailer = LineTailer(job.status_path)
        self.stat: tuple[int, int, int] | None = None
        self.sent_spec = False
        self.backlog = backlog
        self.terminal = False
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


class JobFeed:
    """Reads what was appended to every job of a store; call from one thread only.

    ``focus`` (set by the UI) names the job whose stage logs are tailed too.
    """

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.focus: str | None = None
        self._tails: dict[str, _JobTail] = {}
        self._pending: set[str] = set()
        self._logs: dict[str, _LogTail] = {}
        self._log_job: str | None = None
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

    def scan(self) -> None:
        """Notice new job folders (a job appears once its job.json is readable)."""
        try:
            entries = os.listdir(self.store.jobs_dir)  # noqa: PTH208 - names only, fast
        except OSError:
            return
        for name in entries:
            if name in self._tails or name.startswith("."):
                continue
            job_dir = self.store.jobs_dir / name
            if not (job_dir / "job.json").is_file():
                continue
            try:
                job = self.store.load(job_dir)
            except JobsError:
                continue
            self._tails[name] = _JobTail(job, backlog=not self._scanned)
            self._pending.add(name)
        self._scanned = True
        self.known = len(self._tails)

    def poll(self, budget: float = 0.08) -> tuple[list[JobDelta], bool]:
        """Deltas of changed jobs (newest first) read within ``budget`` s; True if more wait."""
        deadline = time.monotonic() + budget
        self.scan()
        for job_id, tail in self._tails.items():
            if tail.stat_changed():
                self._pending.add(job_id)
        deltas: list[JobDelta] = []
        logs = self._read_logs()
        for job_id in sorted(self._pending, reverse=True):
            tail = self._tails[job_id]
            decoded = decode_buffer(tail.tailer.read_block(READ_BYTES))
            if not tail.tailer.more:
                self._pending.discard(job_id)
            for event in decoded.events:
                if event.event in TERMINAL_JOB_EVENTS:
                    tail.terminal = True
                elif event.event == "job_started":  # resumed: reconcile it again if it dies
                    tail.terminal = False
            chunks = logs.pop(job_id, {})
            if not tail.sent_spec or decoded.lines or chunks:
                deltas.append(
                    JobDelta(
                        job_id,
                        spec=None if tail.sent_spec else tail.job.spec,
                        events=decoded.events,
                        lines=decoded.lines,
                        garbage=decoded.garbage,
                        logs=chunks,
                        raw=decoded.raw,
                        backlog=tail.backlog,
                        caught_up=not tail.tailer.more,
                    )
                )
            tail.sent_spec = True
            if not tail.tailer.more:
                tail.backlog = False
            if time.monotonic() >= deadline:
                break
        for job_id, chunks in logs.items():
            deltas.append(JobDelta(job_id, logs=chunks))
        return deltas, bool(self._pending)

    def _read_logs(self) -> dict[str, dict[str, LogChunk]]:
        focus = self.focus
        if focus != self._log_job:
            self._logs.clear()
            self._log_job = focus
        tail = self._tails.get(focus) if focus else None
        if focus is None or tail is None:
            return {}
        stages_dir = tail.job.dir / "stages"
        try:
            stages = os.listdir(stages_dir)  # noqa: PTH208
        except OSError:
            stages = []
        chunks: dict[str, LogChunk] = {}
        for stage in sorted(stages):
            log = self._logs.get(stage)
            if log is None:
                path = stages_dir / stage / "log"
                if not path.is_file():
                    continue
                log = self._logs[stage] = _LogTail(path)
            chunk = log.read()
            if chunk is not None:
                chunks[stage] = chunk
        return {focus: chunks} if chunks else {}
