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
    Event,
    Log,
    StageCached,
    StageDone,
    StageFailed,
    StageStarted,
)
from blut.status.jobstate import JobView
from blut.status.layout import job_paths
from blut.status.tailer import read_events

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


def read_stage_logs(job_dir: Path) -> dict[str, list[str]]:
    """Every stage log of a job folder (its last :data:`LOG_BYTES` each), as shown."""
    stages = job_dir / "stages"
    logs: dict[str, list[str]] = {}
    for folder in sorted(stages.iterdir()) if stages.is_dir() else []:
        path = folder / "log"
        try:
            with open(path, "rb") as f:
                size = f.seek(0, 2)
                f.seek(max(0, size - LOG_BYTES))
                data = f.read()
        except OSError:
            continue
        if size > LOG_BYTES:
            data = data[data.find(b"\n") + 1 :]
        logs[folder.name] = [log_text(line) for line in data.splitlines()]
    return logs


def load_timeline(store: JobStore, job_id: str) -> Timeline:
    """Read a job's stream and stage logs (worker thread) and fold them."""
    paths = job_paths(store.home, job_id)
    job = store.load(paths.dir)
    return Timeline(job.spec, read_events(paths.status), read_stage_logs(paths.dir))
