"""The one row model of a job, for `blut jobs`, `blut --once` and the cockpit's table.

Memory is always paired per stage: MEM/MAX is the running (or failing) stage's
memory now against that stage's own ceiling, and PEAK/MAX is a stage's peak
against its own ceiling: the stage that failed, else the stage that came
closest to its ceiling (the highest peak when no stage had one).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from blut.jobs.snapshotorigin import origin_label
from blut.jobs.store import JobSpec
from blut.status.jobstate import JobView, StageView

T = TypeVar("T")

RECENT = 20
"""Finished jobs `blut jobs` shows besides every active one (``--all``: every job)."""


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class JobRow:
    """One job as every listing shows it (JSON-ready through :meth:`to_json`)."""

    id: str
    name: str
    state: str
    reason: str | None
    exit_code: int | None
    signal: str | None
    detail: str
    stage: str | None
    """The stage that runs now, or the one that failed, or the last one started (or
    reused from the cache)."""
    memory_bytes: int | None
    """Memory of that stage now (while it runs)."""
    memory_max_bytes: int | None
    """That stage's ceiling."""
    peak_stage: str | None
    peak_memory_bytes: int | None
    """The peak of ``peak_stage`` (see the module docstring)."""
    peak_max_bytes: int | None
    """``peak_stage``'s own ceiling."""
    progress: float | None
    """Fraction done of the current stage, when it reports a total."""
    submitted: float | None
    started: float | None
    finished: float | None
    elapsed_seconds: float | None
    command: list[str]
    contained: bool
    recipe: str | None = None
    sweep: str | None = None
    gpus: tuple[int, ...] = ()
    """The GPUs its running stages hold."""
    nodes: tuple[str, ...] = ()
    """The cluster nodes its running stages run on (`--launcher ray`; empty: this machine)."""
    origin: str | None = None
    """``branch of <snapshot>`` or ``from <snapshot>`` for a job started from a snapshot."""

    @property
    def active(self) -> bool:
        """True while the job is queued or running."""
        return self.state in ("queued", "running")

    def to_json(self) -> dict[str, Any]:
        """JSON object with ISO-8601 UTC times."""
        data = asdict(self)
        for key in ("submitted", "started", "finished"):
            data[key] = _iso(data[key])
        data["gpus"] = list(self.gpus)
        data["nodes"] = list(self.nodes)
        return data


def focus_stage(view: JobView) -> StageView | None:
    """The stage a one-line summary is about: the one that failed the job, else the newest
    running one, else the last one started, else (a job whose every stage was reused) the
    last one found cached."""
    stages = view.stages.values()
    if view.state == "failed":
        failed = [s for s in stages if s.state == "failed" and s.reason != "skipped"]
        if failed:
            return min(failed, key=lambda s: s.finished or 0.0)
    running = [s for s in stages if s.state == "running"]
    if running:
        return max(running, key=lambda s: s.started or 0.0)
    started = view.stages.get(view.current_stage or "")
    if started is not None:
        return started
    cached = [s for s in stages if s.state == "cached"]
    return cached[-1] if cached else None


def peak_stage(view: JobView) -> StageView | None:
    """The stage whose peak a row shows (see the module docstring)."""
    measured = [s for s in view.stages.values() if s.peak_memory]
    if not measured:
        return None
    focus = focus_stage(view)
    if view.state == "failed" and focus is not None and focus.peak_memory:
        return focus
    ceiled = [s for s in measured if s.memory_max]
    if ceiled:
        return max(ceiled, key=lambda s: ((s.peak_memory or 0) / (s.memory_max or 1), s.name))
    return max(measured, key=lambda s: (s.peak_memory or 0, s.name))


def stage_progress(stage: StageView | None) -> float | None:
    """Fraction done of ``stage``: 1 once it succeeded, its reported step/total while it runs."""
    if stage is None:
        return None
    if stage.state in ("succeeded", "cached"):
        return 1.0
    if stage.progress is None:
        return None
    step, total, _ = stage.progress
    return max(0.0, min(1.0, step / total)) if total else None


def job_row(spec: JobSpec, view: JobView, now: float | None = None) -> JobRow:
    """Combine a job's frozen spec with its current state."""
    focus = focus_stage(view)
    peak = peak_stage(view)
    gpus = sorted(
        {g for s in view.stages.values() if s.state == "running" and s.gpus for g in s.gpus}
    )
    memory_max = focus.memory_max if focus is not None else None
    if memory_max is None and spec.recipe is None:
        memory_max = spec.memory_max  # a command's ceiling is known before it starts
    return JobRow(
        id=spec.id,
        name=view.name or spec.name,
        state=view.state,
        reason=view.reason,
        exit_code=view.exit_code,
        signal=view.signal,
        detail=view.detail,
        stage=focus.name if focus is not None else None,
        memory_bytes=focus.memory_now if focus is not None and focus.state == "running" else None,
        memory_max_bytes=memory_max,
        peak_stage=peak.name if peak is not None else None,
        peak_memory_bytes=peak.peak_memory if peak is not None else None,
        peak_max_bytes=peak.memory_max if peak is not None else None,
        progress=stage_progress(focus),
        submitted=view.submitted or spec.created,
        started=view.started,
        finished=view.finished,
        elapsed_seconds=view.elapsed(time.time() if now is None else now),
        command=spec.argv,
        contained=focus.contained if focus is not None else spec.launcher == "systemd",
        recipe=view.recipe,
        sweep=view.sweep,
        origin=origin_label(spec.snapshot),
        gpus=tuple(gpus),
        nodes=tuple(
            sorted({s.node for s in view.stages.values() if s.state == "running" and s.node})
        ),
    )


def select(items: Sequence[T], active: Callable[[T], bool], show_all: bool) -> list[T]:
    """What `blut jobs` shows of ``items`` (oldest first): all of them with ``show_all``,
    else the active ones plus the :data:`RECENT` newest."""
    if show_all:
        return list(items)
    cut = len(items) - RECENT
    return [item for i, item in enumerate(items) if i >= cut or active(item)]
