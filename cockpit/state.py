"""The cockpit's state: plain typed classes fed by :class:`~blut.cockpit.feed.JobDelta`s.

Nothing here touches a file or a widget, so it is tested without a terminal.
Per job: the spec, the event fold (:class:`~blut.status.jobstate.JobView`),
bounded and downsampled metric and memory series, and a capped log tail per
stage. :meth:`CockpitState.rows` gives the Jobs table, filtered and sorted.
"""

from __future__ import annotations

import dataclasses
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from blut.cockpit.feed import JobDelta
from blut.jobs.rows import JobRow, focus_stage, job_row, stage_progress
from blut.jobs.store import JobSpec
from blut.status.events import CancelRequested, Event, JobStarted, Metric, Resources
from blut.status.jobstate import JobView

SERIES_POINTS = 256
"""Most points kept per plotted series (older points are thinned, never unbounded)."""
LOG_LINES = 1000
"""Most log lines kept per stage."""

SortKey: TypeAlias = Literal["id", "name", "state", "elapsed", "memory", "peak"]
SORT_KEYS: tuple[SortKey, ...] = ("id", "name", "state", "elapsed", "memory", "peak")
NATURAL_REVERSE: dict[SortKey, bool] = {
    "id": True,  # newest first
    "name": False,  # a to z
    "state": False,  # running, queued, failed, cancelled, succeeded
    "elapsed": True,  # longest first
    "memory": True,  # largest first
    "peak": True,
}
"""The direction each sort key starts in: what a user looks for first comes first."""
_STATE_ORDER = {"running": 0, "queued": 1, "failed": 2, "cancelled": 3, "succeeded": 4}


@dataclass
class Series:
    """A bounded series: past ``capacity`` points every other one is dropped and the
    sampling stride doubles, so memory stays bounded however long a job runs.
    ``last`` is always the newest point, sampled or not."""

    capacity: int = SERIES_POINTS
    points: list[tuple[float, float]] = field(default_factory=list)
    stride: int = 1
    seen: int = 0
    last: tuple[float, float] | None = None

    def add(self, x: float, y: float) -> None:
        """Offer one point."""
        self.last = (x, y)
        self.seen += 1
        if (self.seen - 1) % self.stride:
            return
        self.points.append((x, y))
        if len(self.points) > self.capacity:
            self.points = self.points[::2]
            self.stride *= 2

    def values(self) -> list[tuple[float, float]]:
        """The kept points plus the newest one."""
        if self.last is not None and (not self.points or self.points[-1] != self.last):
            return [*self.points, self.last]
        return list(self.points)


@dataclass
class LogTail:
    """The last :data:`LOG_LINES` lines of a stage log; ``total`` counts every line seen."""

    lines: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    total: int = 0
    resets: int = 0

    def extend(self, lines: Iterable[str], *, reset: bool = False) -> None:
        """Append lines (``reset``: start over)."""
        if reset:
            self.lines.clear()
            self.resets += 1
        new = list(lines)
        self.lines.extend(new)
        self.total += len(new)


@dataclass
class JobState:
    """Everything the cockpit knows about one job."""

    spec: JobSpec
    view: JobView
    metric_series: dict[str, Series] = field(default_factory=dict)
    memory_series: dict[str, Series] = field(default_factory=dict)
    pending: list[bytes] = field(default_factory=list)
    """Sampled metric/resources lines not parsed yet: only plots need them, so they are
    parsed when a plot asks (:attr:`metrics`, :attr:`memory`), not while loading."""
    logs: dict[str, LogTail] = field(default_factory=dict)
    lines: int = 0
    garbage: int = 0
    loaded: bool = False
    """False while its history is still being read."""
    updated: float | None = None
    """Clock time of the last delta with events."""
    checked: float | None = None
    """While the feed reports it behind: the clock time its data was last confirmed
    (see :meth:`CockpitState.data_age`)."""
    cancel_stages: set[str] = field(default_factory=set)
    """Stages whose own cancel was requested (the job goes on without them)."""
    version: int = 0
    """Bumped by every delta (the Jobs table reuses a row while it is unchanged)."""
    row_cache: tuple[tuple[int, int], JobRow] | None = None

    @property
    def id(self) -> str:
        """The job id."""
        return self.spec.id

    @property
    def metrics(self) -> dict[str, Series]:
        """Metric name → its bounded series (parses what is pending first)."""
        self._drain()
        return self.metric_series

    @property
    def memory(self) -> dict[str, Series]:
        """Stage → its memory series (parses what is pending first)."""
        self._drain()
        return self.memory_series

    def _drain(self) -> None:
        if not self.pending:
            return
        from blut.status.errors import SchemaError
        from blut.status.events import parse_line

        lines, self.pending = self.pending, []
        events = []
        for line in lines:
            try:
                events.append(parse_line(line))
            except SchemaError:
                continue
        self._plot_older(events)

    def _plot_older(self, events: Iterable[Event]) -> None:
        """Plot points that may be older than some already plotted (lazily parsed samples,
        history read after live events): series stay sorted, ``last`` the newest."""
        lasts = {
            id(s): s.last for s in (*self.metric_series.values(), *self.memory_series.values())
        }
        touched: dict[int, Series] = {}
        for event in events:
            touched.update((id(s), s) for s in self._plot(event))
        for key, series in touched.items():
            series.points.sort()
            newest = [p for p in (lasts.get(key), series.last) if p is not None]
            series.last = max(newest) if newest else None

    def _plot(self, event: Event) -> list[Series]:
        touched = []
        if isinstance(event, Metric):
            x = float(event.step if event.step is not None else self.view.events)
            for name, value in event.values.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    series = self.metric_series.get(name)
                    if series is None:
                        series = self.metric_series[name] = Series()
                    series.add(x, float(value))
                    touched.append(series)
        elif isinstance(event, Resources) and event.memory_bytes is not None:
            name = event.stage or ""
            series = self.memory_series.get(name)
            if series is None:
                series = self.memory_series[name] = Series()
            series.add(event.ts, float(event.memory_bytes))
            touched.append(series)
        return touched

    @property
    def memory_max(self) -> int | None:
        """The ceiling of the stage the job is about now (running or failing), else the
        job's (a command's)."""
        stage = focus_stage(self.view)
        if stage is not None and stage.memory_max is not None:
            return stage.memory_max
        return self.spec.memory_max if self.spec.memory_max is not None else self.view.memory_max

    @property
    def gpus(self) -> tuple[int, ...]:
        """The GPUs its running stages hold (sorted; empty when none)."""
        held = {
            g
            for s in self.view.stages.values()
            if s.state == "running" and s.gpus
            for g in s.gpus
            if isinstance(g, int)
        }
        return tuple(sorted(held))

    @property
    def memory_now(self) -> int | None:
        """Memory of the running stage, from its last resources sample."""
        stage = focus_stage(self.view)
        return stage.memory_now if stage is not None and stage.state == "running" else None

    def apply(self, event: Event) -> None:
        """Fold one event in (and feed the plots)."""
        ended = self.view.terminal
        self.view.apply(event)
        if isinstance(event, Metric | Resources):
            self._plot(event)
        elif isinstance(event, CancelRequested) and event.stage is not None:
            self.cancel_stages.add(event.stage)
        elif isinstance(event, JobStarted) and ended:  # resumed: a new run
            self.cancel_stages.clear()

    def plot_history(self, events: Iterable[Event], raw: Iterable[bytes]) -> None:
        """Plot points from before the job's summary (its state already holds them)."""
        self._plot_older(events)
        self.pending.extend(raw)

    def log(self, stage: str) -> LogTail:
        """The log tail of ``stage`` (empty until read)."""
        tail = self.logs.get(stage)
        if tail is None:
            tail = self.logs[stage] = LogTail()
        return tail

    def progress(self) -> float | None:
        """Fraction done of the current stage, when it reports a total."""
        return stage_progress(focus_stage(self.view))


@dataclass(frozen=True)
class JobEnded:
    """A job reached a terminal state while the cockpit was watching."""

    job_id: str
    name: str
    state: str
    reason: str | None


def _sort_value(row: JobRow, key: SortKey) -> tuple[float | str, ...]:
    match key:
        case "id":
            return (row.id,)
        case "name":
            return (row.name.lower(), row.id)
        case "state":
            return (_STATE_ORDER.get(row.state, 9), row.id)
        case "elapsed":
            return (row.elapsed_seconds or 0.0, row.id)
        case "memory":
            return (row.memory_bytes or 0, row.id)
        case "peak":
            return (row.peak_memory_bytes or 0, row.id)


def compile_filter(text: str) -> tuple[re.Pattern[str] | None, str | None]:
    """A case-insensitive pattern for ``text``; an invalid regex matches literally."""
    if not text:
        return None, None
    try:
        return re.compile(text, re.IGNORECASE), None
    except re.error as exc:
        return re.compile(
            re.escape(text), re.IGNORECASE
        ), f"not a regex ({exc}); matching literally"


class CockpitState:
    """All jobs, as the app knows them. Fed by :meth:`apply` on the UI thread."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobState] = {}
        self.known = 0
        """Jobs found on disk so far (some may still be loading)."""
        self.updated: float | None = None
        """Clock time of the last applied batch."""
        self.checked: float | None = None
        """Clock time of the feed's last report (:meth:`mark_checked`)."""
        self._lagging: set[str] = set()
        """Jobs the feed reported behind (data written, not read yet)."""
        self.version = 0

    @property
    def active(self) -> int:
        """How many jobs are queued or running."""
        return sum(1 for j in self.jobs.values() if not j.view.terminal)

    @property
    def loading(self) -> int:
        """How many jobs still have history to read."""
        return sum(1 for j in self.jobs.values() if not j.loaded) + max(
            0, self.known - len(self.jobs)
        )

    def apply(self, deltas: Iterable[JobDelta], now: float) -> list[JobEnded]:
        """Fold ``deltas`` in; returns jobs that ended live (not while reading history)."""
        ended: list[JobEnded] = []
        for delta in deltas:
            job = self.jobs.get(delta.job_id)
            if job is None:
                if delta.spec is None:
                    continue
                view = delta.view if delta.view is not None else JobView(delta.job_id)
                job = self.jobs[delta.job_id] = JobState(delta.spec, view)
            if delta.history:
                job.plot_history(delta.events, delta.raw)
                continue
            was_terminal = job.view.terminal
            job.version += 1
            for event in delta.events:
                job.apply(event)
            if delta.raw:
                job.pending.extend(delta.raw)
            job.lines += delta.lines
            job.garbage += delta.garbage
            if delta.lines:
                job.updated = now
            if not delta.backlog and not was_terminal and job.view.terminal:
                ended.append(JobEnded(job.id, job.spec.name, job.view.state, job.view.reason))
            if delta.caught_up:
                job.loaded = True
            for stage, chunk in delta.logs.items():
                job.log(stage).extend(chunk.lines, reset=chunk.reset)
        self.updated = now
        self.version += 1
        return ended

    def mark_checked(self, now: float, behind: Iterable[str] = ()) -> None:
        """The feed has read everything written so far, except for the jobs ``behind``.

        Only jobs that fall behind remember when they were last confirmed; every other
        job's data is as old as the feed's last report (no loop over 1,000 jobs).
        """
        lagging = {j for j in behind if j in self.jobs}
        for job_id in lagging - self._lagging:
            self.jobs[job_id].checked = self.checked
        self._lagging = lagging
        self.checked = now

    def data_age(self, job: JobState, now: float) -> float | None:
        """Seconds since the feed last confirmed ``job``'s data (None: never yet)."""
        if not job.loaded:
            return None
        checked = job.checked if job.id in self._lagging else self.checked
        return None if checked is None else max(0.0, now - checked)

    def row(self, job: JobState, now: float) -> JobRow:
        """The table row of one job (the same object while nothing it shows changed)."""
        key = (job.version, 0 if job.view.terminal else int(now))
        cached = job.row_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        row = self._row(job, now)
        job.row_cache = (key, row)
        return row

    def _row(self, job: JobState, now: float) -> JobRow:
        row = job_row(job.spec, job.view, now)
        if not job.loaded and not job.view.events:
            row = dataclasses.replace(row, state="loading")
        return row

    def rows(
        self,
        now: float,
        *,
        pattern: re.Pattern[str] | None = None,
        sort: SortKey = "id",
        reverse: bool = True,
    ) -> list[JobRow]:
        """The Jobs table: rows matching ``pattern`` (over id, name, state, stage), sorted."""
        rows = [self.row(job, now) for job in self.jobs.values()]
        if pattern is not None:
            rows = [
                r
                for r in rows
                if pattern.search(
                    f"{r.id} {r.name} {r.state} {r.reason or ''} {r.stage or ''} {r.sweep or ''}"
                )
            ]
        key: Callable[[JobRow], tuple[float | str, ...]] = lambda r: _sort_value(r, sort)  # noqa: E731
        rows.sort(key=key, reverse=reverse)
        return rows


@dataclass(frozen=True)
class SweepGroup:
    """The jobs of one sweep, summarised for the group row of the Jobs table."""

    sweep: str
    members: list[JobRow]

    @property
    def key(self) -> str:
        """The table row key of the group."""
        return GROUP_PREFIX + self.sweep

    @property
    def state(self) -> str:
        """running while any member runs, else queued, failed, cancelled, succeeded."""
        states = {r.state for r in self.members}
        for state in ("loading", "running", "queued", "failed", "cancelled"):
            if state in states:
                return state
        return "succeeded"

    def counts(self) -> str:
        """``2 succeeded, 1 running``."""
        tally: dict[str, int] = {}
        for row in self.members:
            tally[row.state] = tally.get(row.state, 0) + 1
        order = sorted(tally, key=lambda s: _STATE_ORDER.get(s, 9))
        return ", ".join(f"{tally[s]} {s}" for s in order)

    @property
    def progress(self) -> float | None:
        """Mean progress (finished members count as done)."""
        fractions = [
            1.0 if r.state == "succeeded" else (r.progress or 0.0)
            for r in self.members
            if r.progress is not None or r.state == "succeeded"
        ]
        return sum(fractions) / len(self.members) if fractions else None

    @property
    def elapsed(self) -> float | None:
        """The longest member's elapsed time."""
        values = [r.elapsed_seconds for r in self.members if r.elapsed_seconds is not None]
        return max(values) if values else None

    @property
    def peak(self) -> int | None:
        """The highest member peak."""
        values = [r.peak_memory_bytes for r in self.members if r.peak_memory_bytes is not None]
        return max(values) if values else None


GROUP_PREFIX = "sweep:"


def group_rows(rows: list[JobRow]) -> list[JobRow | SweepGroup]:
    """``rows`` with the members of each sweep gathered under one group, placed where its
    first member (in the current sort) was."""
    members: dict[str, list[JobRow]] = {}
    for row in rows:
        if row.sweep is not None:
            members.setdefault(row.sweep, []).append(row)
    out: list[JobRow | SweepGroup] = []
    for row in rows:
        if row.sweep is None:
            out.append(row)
        elif members[row.sweep] and members[row.sweep][0] is row:
            out.append(SweepGroup(row.sweep, members[row.sweep]))
    return out
