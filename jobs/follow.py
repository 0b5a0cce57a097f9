"""Follow a job live: its events and its stage's log lines, in arrival order."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from blut.containment.launcher import Launcher
from blut.jobs.reconcile import reconcile
from blut.jobs.store import MAIN_STAGE, Job
from blut.status.events import Event
from blut.status.jobstate import JobView, fold
from blut.status.tailer import LineTailer, Tailer, watch_changes

RECONCILE_EVERY = 2.0


@dataclass(frozen=True)
class LogLine:
    """One line a stage printed."""

    stage: str
    text: str


def follow(
    job: Job,
    launcher: Launcher,
    *,
    stage: str = MAIN_STAGE,
    stop: threading.Event | None = None,
    from_start: bool = True,
) -> Iterator[Event | LogLine | JobView]:
    """Yield events and log lines as they arrive; the final item is the terminal JobView.

    With ``from_start`` False, the log starts at its current end.
    """
    stop = stop or threading.Event()
    events = Tailer(job.status_path)
    log_path = job.log_path(stage)
    log = LineTailer(
        log_path, offset=0 if from_start or not log_path.exists() else log_path.stat().st_size
    )
    view = fold(job.id, [])
    next_reconcile = time.monotonic() + RECONCILE_EVERY
    for _ in watch_changes([job.dir, job.stage_dir(stage)], stop, timeout=0.5):
        for raw in log.read_lines():
            yield LogLine(stage, raw.decode("utf-8", errors="replace"))
        for event in events.read():
            view.apply(event)
            yield event
        if not view.terminal and time.monotonic() >= next_reconcile:
            next_reconcile = time.monotonic() + RECONCILE_EVERY
            if reconcile(job, launcher).terminal:
                continue  # the recovered outcome arrives as events on the next pass
        if view.terminal:
            for raw in log.read_lines():
                yield LogLine(stage, raw.decode("utf-8", errors="replace"))
            yield view
            return
