"""Follow a job in the terminal: its log lines and notable events, until it ends."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from blut.commands.common import err, note

if TYPE_CHECKING:
    from blut.jobs.follow import Mark
    from blut.jobs.store import Job
    from blut.status.events import Event


def follow_job(
    job: Job,
    *,
    since: Mark | None = None,
    stages: Sequence[str] | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> int:
    """Stream ``job`` until it ends: 0 succeeded, 1 failed or cancelled, 130 detached (Ctrl-C).

    Log lines go to stdout (prefixed with the stage when the job has several);
    stage events and the outcome go to stderr. ``on_event`` sees each event
    before its line is printed.
    """
    from blut.cockpit.render import describe_end
    from blut.jobs.api import Launchers, LogLine, follow
    from blut.status.jobstate import JobView

    followed = list(stages or job.spec.stages)
    prefixed = len(followed) > 1
    width = max(map(len, followed), default=0)
    stop = threading.Event()
    launchers = Launchers()
    try:
        launcher = launchers.for_job(job)
        for item in follow(job, launcher, stages=followed, stop=stop, since=since):
            if isinstance(item, LogLine):
                # The bytes the stage wrote, as they are: no decoding, so output that is not
                # UTF-8, or a terminal that is not, neither mangles nor crashes anything.
                prefix = f"{item.stage:<{width}} | ".encode() if prefixed else b""
                sys.stdout.buffer.write(prefix + item.raw + b"\n")
                sys.stdout.buffer.flush()
            elif isinstance(item, JobView):
                style = "green" if item.state == "succeeded" else "bold red"
                note(f"job {job.id} {describe_end(item, job.spec.memory_max)}", style)
                return 0 if item.state == "succeeded" else 1
            else:
                if on_event is not None:
                    on_event(item)
                if not _streamed(item, followed):
                    _announce(item)
    except KeyboardInterrupt:
        stop.set()
        err.print(
            f"\nblut: detached; job {job.id} keeps running. "
            f"Re-attach: blut log {job.id} -f   Cancel: blut cancel {job.id}",
            markup=False,
        )
        return 130
    finally:
        launchers.close()
    return 1


def _streamed(event: Event, followed: Sequence[str]) -> bool:
    """An error a followed stage reported: its log line, already on stdout, is the one report."""
    from blut.status.events import Log

    return isinstance(event, Log) and event.level == "error" and event.stage in followed


def _announce(event: Event) -> None:
    """One stderr line for the events a person following a job wants to see."""
    from blut.jobs.quantities import format_duration, format_size
    from blut.status.events import Log, StageCached, StageDone, StageFailed, StageStarted

    match event:
        case StageStarted():
            ceiling = (
                "" if event.memory_max is None else f", memory max {format_size(event.memory_max)}"
            )
            kind = "contained" if event.contained else "UNCONTAINED"
            note(f"stage {event.stage} started as {event.unit} ({kind}{ceiling})")
        case StageCached():
            source = f": reused the output of job {event.producer}" if event.producer else ""
            note(f"stage {event.stage} cached ({(event.artifact or '')[:12]}){source}")
        case StageDone():
            peak = f", peak {format_size(event.peak_mem)}" if event.peak_mem else ""
            note(f"stage {event.stage} done in {format_duration(event.seconds)}{peak}")
        case StageFailed():
            note(f"stage {event.stage} {event.reason}: {event.detail}", "yellow")
        case Log() if event.level in ("warning", "error"):
            note(f"{event.level}: {event.msg}", "yellow")
        case _:
            pass
