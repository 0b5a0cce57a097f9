"""Replay's model: a job's stream folded up to any moment, by the cockpit's own state.

A :class:`Timeline` holds a job's events (status.jsonl, in stream order) and its
stage logs. Moving it feeds a private :class:`~blut.cockpit.state.CockpitState`
the same :class:`~blut.cockpit.feed.JobDelta` records the live feed delivers,
so the Job screen drawn from it shows what a live viewer saw at that moment:
stage table, plots (metric and resources events, by their timestamps) and log.
Going back restores the nearest checkpoint (a copy of the job's state every
:data:`CHECKPOINT_EVERY` events, at most :data:`MAX_CHECKPOINTS`) and folds forward.

Stage log lines carry no time. Each is placed by anchors: the stage's start, its
log events (each one is also printed as a line of the log) and its end; the
lines between two anchors appear evenly over the time between them.

A running job's timeline grows: a :class:`StreamReader` (worker thread) reads what
was appended to the stream and the logs, and :meth:`Timeline.extend` takes it in.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from blut.cockpit.feed import JobDelta, LogChunk, log_text
from blut.cockpit.state import LOG_LINES, CockpitState, JobState
from blut.jobs.store import JobSpec, JobStore
from blut.status.events import (
    TERMINAL_JOB_EVENTS,
    Event,
    JobStarted,
    Log,
    StageCached,
    StageDone,
    StageFailed,
    StageStarted,
)
from blut.status.jobstate import JobView
from blut.status.layout import JobPaths, job_paths
from blut.status.tailer import LineTailer, parse_block

CHECKPOINT_EVERY = 1000
"""A copy of the job's state is kept every this many events (any position folds fast)..."""
MAX_CHECKPOINTS = 100
"""...or fewer, further apart, for a very long stream (memory stays bounded)."""
LOG_BYTES = 16 << 20
"""Most bytes of a stage log read for a replay (its end; older lines are left out)."""
_ENDS = (StageDone.kind, StageFailed.kind, StageCached.kind)


@dataclass(frozen=True)
class StageLog:
    """One stage's log lines and when they were written: ``anchors`` are (time, lines
    written by then), increasing in both."""

    lines: list[str]
    anchors: list[tuple[float, int]]

    def count_at(self, t: float) -> int:
        """How many lines were written at time ``t`` (evenly between two anchors)."""
        times = [a[0] for a in self.anchors]
        i = bisect.bisect_right(times, t) - 1
        if i < 0:
            return 0
        ts, n = self.anchors[i]
        if i + 1 == len(self.anchors):
            return n
        ts2, n2 = self.anchors[i + 1]
        return n + int((t - ts) / (ts2 - ts) * (n2 - n)) if ts2 > ts else n


def stage_log(lines: list[str], events: Sequence[Event], stage: str, end: float) -> StageLog:
    """Anchor ``lines`` (the whole log of ``stage``) in ``events``: its first start (0
    lines), each log event (the line printing it), and its last end, or ``end`` when it
    had not ended (every line)."""
    anchors: list[tuple[float, int]] = []

    def anchor(ts: float, count: int) -> None:
        if anchors:
            ts, count = max(ts, anchors[-1][0]), max(count, anchors[-1][1])
        anchors.append((ts, count))

    mine = [e for e in events if e.stage == stage]
    cursor = 0
    for event in mine:
        if isinstance(event, StageStarted) and not anchors:
            anchor(event.ts, 0)
        elif isinstance(event, Log) and event.msg.strip():
            text = event.msg.splitlines()[-1] if event.msg.splitlines() else event.msg
            found = next((i for i in range(cursor, len(lines)) if lines[i].endswith(text)), None)
            if found is not None:
                cursor = found + 1
                anchor(event.ts, cursor)
    last = next((e for e in reversed(mine) if e.event in _ENDS or e.event == "stage_started"), None)
    anchor(last.ts if last is not None and last.event in _ENDS else end, len(lines))
    return StageLog(lines, anchors)


class Timeline:
    """A job's events and its state at any position (0: before the first event)."""

    def __init__(
        self, spec: JobSpec, events: Sequence[Event], logs: Mapping[str, list[str]]
    ) -> None:
        """Fold every event once (keeping checkpoints), then stand at the start."""
        self.spec = spec
        self.events = list(events)
        self.times: list[float] = []
        for event in self.events:
            self.times.append(max(event.ts, self.times[-1]) if self.times else event.ts)
        self.logs = {
            stage: stage_log(lines, self.events, stage, self.end) for stage, lines in logs.items()
        }
        self.state = CockpitState()
        self.state.apply([JobDelta(spec.id, spec=spec, view=JobView(spec.id))], self.start)
        self.position = 0
        self.time = self.start
        self._shown: dict[str, int] = {}
        self._checkpoints: dict[int, JobState] = {}
        self._every = max(CHECKPOINT_EVERY, -(-len(self.events) // MAX_CHECKPOINTS))
        self.seek(len(self.events))
        self.ended = self.job.view.terminal
        """The stream ends the job (nothing more will be appended, unless it is resumed)."""
        self.seek(0)

    def __len__(self) -> int:
        return len(self.events)

    @property
    def job(self) -> JobState:
        """The job as it was at :attr:`position`."""
        return self.state.jobs[self.spec.id]

    @property
    def start(self) -> float:
        """The time of the first event."""
        return self.times[0] if self.times else 0.0

    @property
    def end(self) -> float:
        """The time of the last event."""
        return self.times[-1] if self.times else 0.0

    def position_at(self, t: float) -> int:
        """How many events had been written at time ``t``."""
        return bisect.bisect_right(self.times, t)

    def time_of(self, position: int) -> float:
        """The time of the ``position``-th event (the start for 0)."""
        return self.times[position - 1] if position > 0 and self.times else self.start

    def extend(self, events: Sequence[Event], logs: Mapping[str, list[str]]) -> None:
        """Take in what a running job appended; standing at the end, stay at the end."""
        at_end = self.position == len(self.events)
        for event in events:
            self.events.append(event)
            self.times.append(max(event.ts, self.times[-1]) if self.times else event.ts)
            if event.event in TERMINAL_JOB_EVENTS:
                self.ended = True
            elif isinstance(event, JobStarted):
                self.ended = False
        lines = {stage: log.lines for stage, log in self.logs.items()}
        for stage, new in logs.items():
            lines.setdefault(stage, []).extend(new)
        self.logs = {
            stage: stage_log(kept, self.events, stage, self.end) for stage, kept in lines.items()
        }
        if at_end:
            self.seek(len(self.events))

    def go_to_time(self, t: float) -> None:
        """Stand at time ``t`` (plays: the clock may sit between two events)."""
        t = max(self.start, min(t, self.end))
        self.seek(self.position_at(t), t)

    def seek(self, position: int, at: float | None = None) -> None:
        """Stand after ``position`` events (at time ``at``, default that event's)."""
        position = max(0, min(position, len(self.events)))
        current = self.position
        base = max((k for k in self._checkpoints if k <= position), default=0)
        if position < current or base > current:  # restore: fold from the nearest copy
            restored = copy.deepcopy(self._checkpoints[base])
            restored.logs = self.job.logs  # the shown tails go on (their resets count up)
            self.state.jobs[self.spec.id] = restored
            current = base
        self.time = at if at is not None else self.time_of(position)
        while True:
            if current % self._every == 0 and current not in self._checkpoints:
                saved = copy.copy(self.job)
                saved.logs = {}
                self._checkpoints[current] = copy.deepcopy(saved)
            if current >= position:
                break
            stop = min(position, (current // self._every + 1) * self._every)
            chunk = self.events[current:stop]
            self.state.apply([JobDelta(self.spec.id, events=chunk, lines=len(chunk))], self.time)
            current = stop
        self.position = position
        self._show_logs()

    def _show_logs(self) -> None:
        chunks: dict[str, LogChunk] = {}
        for stage, log in self.logs.items():
            count, shown = log.count_at(self.time), self._shown.get(stage, 0)
            if count < shown:
                chunks[stage] = LogChunk(log.lines[max(0, count - LOG_LINES) : count], reset=True)
            elif count > shown:
                chunks[stage] = LogChunk(log.lines[max(shown, count - LOG_LINES) : count])
            self._shown[stage] = count
        if chunks:
            self.state.apply([JobDelta(self.spec.id, logs=chunks)], self.time)


class StreamReader:
    """A job's stream and stage logs, read from where the last read stopped (worker
    thread): whole at first (each log's last :data:`LOG_BYTES`), then what was appended."""

    def __init__(self, paths: JobPaths) -> None:
        self.paths = paths
        self._status = LineTailer(paths.status)
        self._logs: dict[str, LineTailer] = {}

    def read(self) -> tuple[list[Event], dict[str, list[str]]]:
        """New events, and new lines of each stage log (stages with none left out)."""
        events = parse_block(self._status.read_block())
        logs: dict[str, list[str]] = {}
        stages = self.paths.stages_dir
        for folder in sorted(stages.iterdir()) if stages.is_dir() else []:
            tailer = self._logs.get(folder.name)
            if tailer is None:
                tailer = self._logs[folder.name] = LineTailer(folder / "log", _tail_start(folder))
            lines = [log_text(line) for line in tailer.read_lines()]
            if lines:
                logs[folder.name] = lines
        return events, logs


def _tail_start(stage_dir: Path) -> int:
    """Where the last :data:`LOG_BYTES` of a stage log begin (a line start), 0 if shorter."""
    path = stage_dir / "log"
    try:
        size = path.stat().st_size
        if size <= LOG_BYTES:
            return 0
        with open(path, "rb") as f:
            f.seek(size - LOG_BYTES)
            head = f.read(LOG_BYTES)
    except OSError:
        return 0
    newline = head.find(b"\n")
    return size - LOG_BYTES + newline + 1 if newline >= 0 else size


def load_timeline(store: JobStore, job_id: str) -> tuple[Timeline, StreamReader]:
    """Read a job's stream and stage logs (worker thread), fold them, and keep reading
    from there (a running job's timeline grows through the reader)."""
    paths = job_paths(store.home, job_id)
    job = store.load(paths.dir)
    reader = StreamReader(paths)
    events, logs = reader.read()
    return Timeline(job.spec, events, logs), reader
