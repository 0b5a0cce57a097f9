"""Rows for `blut jobs`: a job's spec and folded state as plain, JSON-ready data."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from blut.jobs.store import Job
from blut.status.jobstate import JobView

RECENT = 20


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class JobRow:
    """One job as `blut jobs` shows it."""

    id: str
    name: str
    state: str
    reason: str | None
    exit_code: int | None
    signal: str | None
    detail: str
    stage: str | None
    memory_max_bytes: int | None
    peak_memory_bytes: int | None
    submitted: float | None
    started: float | None
    finished: float | None
    elapsed_seconds: float | None
    command: list[str]
    contained: bool
    recipe: str | None = None
    sweep: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON object with ISO-8601 UTC times."""
        data = asdict(self)
        for key in ("submitted", "started", "finished"):
            data[key] = _iso(data[key])
        return data


def job_row(job: Job, view: JobView, now: float | None = None) -> JobRow:
    """Combine a job's frozen spec with its current state."""
    stage = view.stages.get(view.current_stage) if view.current_stage else None
    return JobRow(
        id=job.id,
        name=job.spec.name,
        state=view.state,
        reason=view.reason,
        exit_code=view.exit_code,
        signal=view.signal,
        detail=view.detail,
        stage=view.current_stage,
        memory_max_bytes=stage.memory_max if stage is not None else job.spec.memory_max,
        peak_memory_bytes=view.peak_memory,
        submitted=view.submitted or job.spec.created,
        started=view.started,
        finished=view.finished,
        elapsed_seconds=view.elapsed(time.time() if now is None else now),
        command=job.spec.argv,
        contained=stage.contained if stage is not None else job.spec.launcher == "systemd",
        recipe=view.recipe,
        sweep=view.sweep,
    )


def select_rows(rows: list[JobRow], show_all: bool) -> list[JobRow]:
    """Everything with ``show_all``; else active jobs plus the most recent ones."""
    if show_all:
        return rows
    recent = {r.id for r in rows[-RECENT:]}
    return [r for r in rows if r.id in recent or r.state in ("queued", "running")]
