"""File I/O of the cockpit: every job's status.jsonl and the focused job's stage logs.

Runs in a worker thread only. :class:`JobFeed` keeps one byte offset per job
(so nothing is read twice) and turns what was appended into :class:`JobDelta`
records that the app folds into its state on the UI thread.

Decoding is the hot path when the cockpit opens on a large history (1,000 jobs,
1M events). :func:`decode_lines` therefore skips what the state cannot use:
of a run of consecutive high-volume events (progress, metric) only the newest
progress per stage and an evenly spaced sample of at most
:data:`METRIC_SAMPLE` metric lines per run are parsed; of resource samples an
evenly spaced sample plus the highest per stage (peak memory stays exact). Every
other event is parsed and kept in order. Lines are recognised cheaply by the writer's
canonical prefix (``{"v":1,"ts":…,"job":…,"stage":…,"event":"…"``); lines in
any other shape take the full parser.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from blut.jobs.errors import JobsError
from blut.jobs.store import Job, JobSpec, JobStore
from blut.status.errors import SchemaError
from blut.status.events import TERMINAL_JOB_EVENTS, Event, parse_line
from blut.status.tailer import LineTailer

READ_BYTES = 1 << 20
"""Bytes of one job's stream decoded per step (a huge backlog comes in pieces)."""
METRIC_SAMPLE = 64
"""Most metric lines parsed out of one run of consecutive progress/metric lines."""
RESOURCE_SAMPLE = 32
"""Most resource samples (besides the peak) parsed out of one run, on the fast path."""
LOG_TAIL_BYTES = 64 << 10
"""How much of a stage log is read when the cockpit starts watching it."""
LOG_LINE_CHARS = 400
"""Longer log lines are cut (the full text stays in the file and in $PAGER)."""

_CANONICAL = b'{"v":1,"ts":'
_EVENT_KEY = b',"event":"'
_STAGE_KEY = b',"stage":'
_MEMORY_KEY = b'"memory_bytes":'
_SKIPPABLE = frozenset({b"progress", b"metric", b"resources"})


@dataclass
class Decoded:
    """Events decoded from some lines, and how many lines were not events."""

    events: list[Event] = field(default_factory=list)
    garbage: int = 0
    lines: int = 0
    raw: list[bytes] = field(default_factory=list)
    """Sampled metric/resources lines for the plots only, left unparsed (lazy)."""


def _parse(line: bytes, out: Decoded) -> None:
    try:
        out.events.append(parse_line(line))
    except SchemaError:
        out.garbage += 1


def _sample(lines: list[bytes], keep: int) -> list[bytes]:
    if len(lines) <= keep:
        return lines
    step = len(lines) / keep
    picked = [lines[int(i * step)] for i in range(keep - 1)]
    picked.append(lines[-1])
    return picked


def decode_lines(lines: Iterable[bytes]) -> Decoded:
    """Decode status lines into events, skipping superseded progress and excess metrics.

    Order is kept between every event that is parsed; a skipped line is never
    validated (a garbage line in a skipped run is not counted).
    """
    out = Decoded()
    progress: dict[bytes, bytes] = {}
    metrics: list[bytes] = []
    resources: list[bytes] = []
    peaks: dict[bytes, tuple[int, bytes]] = {}

    def flush() -> None:
        for line in _sample(metrics, METRIC_SAMPLE):
            _parse(line, out)
        kept = _sample(resources, METRIC_SAMPLE)
        extra = [line for _, line in peaks.values() if line not in kept]
        for line in extra + kept:  # peaks first: the newest sample stays "memory now"
            _parse(line, out)
        for line in progress.values():
            _parse(line, out)
        metrics.clear()
        resources.clear()
        peaks.clear()
        progress.clear()

    for line in lines:
        if not line.strip():
            continue
        out.lines += 1
        if line.startswith(_CANONICAL):
            at = line.find(_EVENT_KEY)
            if at > 0:
                start = at + len(_EVENT_KEY)
                kind = line[start : line.find(b'"', start)]
                if kind in _SKIPPABLE:
                    s = line.find(_STAGE_KEY)
                    stage = line[s + len(_STAGE_KEY) : at] if 0 < s < at else b"null"
                    if kind == b"progress":
                        progress.pop(stage, None)
                        progress[stage] = line
                    elif kind == b"metric":
                        metrics.append(line)
                    else:
                        resources.append(line)
                        m = line.find(_MEMORY_KEY)
                        end = line.find(b",", m) if m > 0 else -1
                        digits = line[m + len(_MEMORY_KEY) : end if end > 0 else -1]
                        if digits.isdigit():
                            value = int(digits)
                            if stage not in peaks or value > peaks[stage][0]:
                                peaks[stage] = (value, line)
                    continue
        if progress or metrics:
            flush()
        _parse(line, out)
    flush()
    return out


_FAST_MARKERS = {
    b"progress": b',"event":"progress"',
    b"metric": b',"event":"metric"',
    b"resources": b',"event":"resources"',
}
_IMPORTANT = re.compile(rb',"event":"(?!(?:progress|metric|resources)")')
_MEMORY = re.compile(rb',"event":"resources","memory_bytes":(\d+)')


def _line_at(buf: bytes, at: int, lo: int) -> tuple[int, int]:
    """(start, end) of the line holding byte ``at`` (``end`` at its newline)."""
    start = buf.rfind(b"\n", lo, at) + 1 or lo
    end = buf.find(b"\n", at)
    return start, (len(buf) if end < 0 else end)


def _one_stage(buf: bytes, lo: int, hi: int, marker: bytes, count: int) -> bytes | None:
    """The stage token (``"main"``/``null``) if every ``marker`` line of the run has it."""
    last = buf.rfind(marker, lo, hi)
    start, _ = _line_at(buf, last, lo)
    s = buf.find(_STAGE_KEY, start, last)
    if s < 0:
        return None
    stage = buf[s + len(_STAGE_KEY) : last]
    return stage if buf.count(_STAGE_KEY + stage + marker, lo, hi) == count else None


def _spread(buf: bytes, lo: int, hi: int, marker: bytes, count: int, keep: int) -> list[int]:
    """Start offsets of up to ``keep`` evenly spread ``marker`` lines (the last included)."""
    starts: list[int] = []
    if count <= keep:
        at = buf.find(marker, lo, hi)
        while at >= 0:
            starts.append(_line_at(buf, at, lo)[0])
            at = buf.find(marker, at + 1, hi)
        return starts
    span = hi - lo
    seen: set[int] = set()
    for i in range(keep - 1):
        at = buf.find(marker, lo + span * i // keep, hi)
        if at >= 0:
            start = _line_at(buf, at, lo)[0]
            if start not in seen:
                seen.add(start)
                starts.append(start)
    last = _line_at(buf, buf.rfind(marker, lo, hi), lo)[0]
    if last not in seen:
        starts.append(last)
    return starts


def _fast_run(buf: bytes, lo: int, hi: int, out: Decoded) -> bool:
    """Decode a run of progress/metric/resources lines without visiting each line.

    Only for runs in the writer's canonical shape where each kind comes from one
    stage (the common case: one stage streaming); returns False (nothing done)
    otherwise, and the caller takes the line-by-line path.
    """
    lines = buf.count(b"\n", lo, hi)
    if lines == 0:
        return False
    counts = {kind: buf.count(marker, lo, hi) for kind, marker in _FAST_MARKERS.items()}
    if sum(counts.values()) != lines:
        return False
    stages = {}
    for kind, n in counts.items():
        if n:
            stage = _one_stage(buf, lo, hi, _FAST_MARKERS[kind], n)
            if stage is None:
                return False
            stages[kind] = stage
    lazy: list[int] = []
    eager: list[int] = []
    if counts[b"metric"]:
        marker = _FAST_MARKERS[b"metric"]
        lazy += _spread(buf, lo, hi, marker, counts[b"metric"], METRIC_SAMPLE)
    if counts[b"resources"]:
        marker = _FAST_MARKERS[b"resources"]
        kept = _spread(buf, lo, hi, marker, counts[b"resources"], RESOURCE_SAMPLE)
        peak = max(((int(m[1]), m.start()) for m in _MEMORY.finditer(buf, lo, hi)), default=None)
        if peak is not None:
            start = _line_at(buf, peak[1], lo)[0]
            if start != kept[-1]:
                eager.append(start)  # the peak first: the newest sample stays "memory now"
        lazy += kept[:-1]
        eager.append(kept[-1])
    if counts[b"progress"]:
        last = buf.rfind(_FAST_MARKERS[b"progress"], lo, hi)
        eager.append(_line_at(buf, last, lo)[0])
    for start in lazy:
        end = buf.find(b"\n", start, hi)
        out.raw.append(buf[start : hi if end < 0 else end])
    for start in eager:
        end = buf.find(b"\n", start, hi)
        _parse(buf[start : hi if end < 0 else end], out)
    out.lines += lines
    return True


def decode_buffer(buf: bytes) -> Decoded:
    """:func:`decode_lines` over a buffer of whole lines, much faster on long runs.

    Lines other than progress/metric/resources are found with one regex scan and
    parsed in order; each run between them is decoded by :func:`_fast_run` when
    it has the canonical shape, else line by line.
    """
    out = Decoded()
    pos = 0
    size = len(buf)

    def run(lo: int, hi: int) -> None:
        if hi <= lo:
            return
        if not _fast_run(buf, lo, hi, out):
            part = decode_lines(buf[lo:hi].split(b"\n"))
            out.events.extend(part.events)
            out.raw.extend(part.raw)
            out.garbage += part.garbage
            out.lines += part.lines

    for match in _IMPORTANT.finditer(buf):
        start, end = _line_at(buf, match.start(), 0)
        if start < pos:
            continue  # a second match on a line already taken
        run(pos, start)
        line = buf[start:end]
        if line.strip():
            out.lines += 1
            _parse(line, out)
        pos = end + 1
    run(pos, size)
    return out


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
