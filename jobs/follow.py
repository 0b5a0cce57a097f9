"""Follow a job live: its events and its stage's log lines, in arrival order."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from blut.containment.launcher import Launcher
from blut.jobs.lifecycle import reconcile
from blut.jobs.store import Job
from blut.status.events import Event
from blut.status.jobstate import JobView, fold
from blut.status.tailer import LineTailer, Tailer, watch_changes

RECONCILE_EVERY = 2.0


@dataclass(frozen=True)
class LogLine:
    """One line a stage printed, as the bytes it wrote (without the newline)."""

    stage: str
    raw: bytes

    @property
    def text(self) -> str:
        """The line decoded as UTF-8 (undecodable bytes replaced)."""
        return self.raw.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Mark:
    """Where following starts: byte offsets into the job's stream and its stage logs."""

    events: int = 0
    logs: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def now(cls, job: Job) -> Mark:
        """The job's files as they end now: following from here shows only what comes next
        (a resumed run, not the history before it)."""
        return cls(_size(job.status_path), {s: _size(job.log_path(s)) for s in job.spec.stages})


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def follow(
    job: Job,
    launcher: Launcher,
    *,
    stages: Sequence[str] | None = None,
    stop: threading.Event | None = None,
    since: Mark | None = None,
) -> Iterator[Event | LogLine | JobView]:
    """Yield events and log lines as they arrive; the final item is the terminal JobView.

    ``stages`` whose logs to follow: default every stage of the job. ``since``:
    where to start (default: the beginning of everything).
    """
    stop = stop or threading.Event()
    start = since or Mark()
    events = Tailer(job.status_path, start.events)
    logs = {
        name: LineTailer(job.log_path(name), start.logs.get(name, 0))
        for name in stages or job.spec.stages
    }
    view = fold(job.id, [])
    next_reconcile = time.monotonic() + RECONCILE_EVERY
    # A first pass before any wait: a job that has ended already is reported at once.
    for _ in itertools.chain([True], watch_changes([job.dir], stop, timeout=0.5)):
        yield from _new_lines(logs)
        for event in events.read():
            view.apply(event)
            yield event
        if not view.terminal and time.monotonic() >= next_reconcile:
            next_reconcile = time.monotonic() + RECONCILE_EVERY
            if reconcile(job, launcher).terminal:
                continue  # the recovered outcome arrives as events on the next pass
        if view.terminal:
            yield from _new_lines(logs, final=True)
            yield view
            return


def _new_lines(logs: dict[str, LineTailer], *, final: bool = False) -> Iterator[LogLine]:
    """New lines of every log; ``final`` (the job ended) includes a last line without newline."""
    for stage, tailer in logs.items():
        for raw in tailer.read_final() if final else tailer.read_lines():
            yield LogLine(stage, raw)
