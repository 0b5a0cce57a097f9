"""Job state as a fold over its events (event sourcing).

``queued`` (submitted) → ``running`` (driver or a stage started) → one of
``succeeded`` | ``failed`` | ``cancelled``. Terminal states are sticky: later
events still update stage details but never the job's outcome — except a new
``job_started``, which only a driver (re)starting on purpose writes: a resumed
job is running again, and its earlier outcome is cleared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from blut.status.events import (
    CancelRequested,
    Event,
    FailureReason,
    JobCancelled,
    JobDone,
    JobFailed,
    JobStarted,
    JobSubmitted,
    Log,
    Progress,
    Resources,
    StageCached,
    StageDone,
    StageFailed,
    StagePlaced,
    StageQueued,
    StageStarted,
)

JobPhase: TypeAlias = Literal["queued", "running", "succeeded", "failed", "cancelled"]
StagePhase: TypeAlias = Literal["queued", "running", "cached", "succeeded", "failed"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
JOB_PHASES: tuple[JobPhase, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
STAGE_PHASES: tuple[StagePhase, ...] = ("queued", "running", "cached", "succeeded", "failed")
WARNINGS_KEPT = 20
"""Most warning messages a view keeps (the newest; the stream has them all)."""


@dataclass
class StageView:
    """What is known about one stage."""

    name: str
    state: StagePhase = "queued"
    unit: str | None = None
    log: str | None = None
    contained: bool = True
    started: float | None = None
    finished: float | None = None
    memory_max: int | None = None
    memory_now: int | None = None
    peak_memory: int | None = None
    progress: tuple[float, float | None, str | None] | None = None
    reason: FailureReason | None = None
    exit_code: int | None = None
    signal: str | None = None
    detail: str = ""
    artifact: str | None = None
    gpus: list[int] | None = None
    """The GPUs its latest launch was given (kept after it ends; see ``state``)."""
    node: str | None = None
    """The cluster node it runs or ran on (`StagePlaced`; None: this machine)."""
    producer: str | None = None
    """A cached stage: the job that computed the output it reused (None: not recorded)."""


@dataclass
class JobView:
    """What is known about one job, built by :meth:`apply` on each event in order."""

    id: str
    name: str | None = None
    state: JobPhase = "queued"
    reason: FailureReason | None = None
    detail: str = ""
    exit_code: int | None = None
    signal: str | None = None
    argv: list[str] | None = None
    recipe: str | None = None
    sweep: str | None = None
    memory_max: int | None = None
    submitted: float | None = None
    started: float | None = None
    finished: float | None = None
    cancel_requested: bool = False
    cancel_stages: list[str] = field(default_factory=list)
    """Stages whose own cancel was requested in this run (the job goes on without them)."""
    stages: dict[str, StageView] = field(default_factory=dict)
    current_stage: str | None = None
    warnings: list[str] = field(default_factory=list)
    events: int = 0

    @property
    def terminal(self) -> bool:
        """True once the job succeeded, failed or was cancelled."""
        return self.state in TERMINAL

    @property
    def peak_memory(self) -> int | None:
        """The highest peak of any stage."""
        peaks = [s.peak_memory for s in self.stages.values() if s.peak_memory is not None]
        return max(peaks) if peaks else None

    def elapsed(self, now: float) -> float | None:
        """Seconds from start to finish (or to ``now`` while it runs)."""
        if self.started is None:
            return None
        return (self.finished if self.finished is not None else now) - self.started

    def _stage(self, name: str) -> StageView:
        view = self.stages.get(name)
        if view is None:
            view = self.stages[name] = StageView(name)
        return view

    def _run(self, ts: float) -> None:
        if self.state == "queued":
            self.state = "running"
        if self.started is None:
            self.started = ts

    def _end(self, state: JobPhase, ts: float) -> None:
        if not self.terminal:
            self.state = state
            self.finished = ts

    def _reopen(self) -> None:
        self.state = "running"
        self.reason = None
        self.detail = ""
        self.exit_code = None
        self.signal = None
        self.finished = None
        self.cancel_requested = False
        self.cancel_stages = []

    def apply(self, event: Event) -> None:
        """Fold one event into the view."""
        self.events += 1
        stage = self._stage(event.stage) if event.stage is not None else None
        match event:
            case JobSubmitted():
                self.name = event.name
                self.argv = event.argv
                self.recipe = event.recipe
                self.sweep = event.sweep
                self.memory_max = event.memory_max
                self.submitted = event.ts
            case JobStarted():
                if self.terminal:
                    self._reopen()
                self._run(event.ts)
            case StageQueued():
                pass
            case StageCached() if stage is not None:
                stage.state = "cached"
                stage.artifact = event.artifact
                stage.producer = event.producer
            case StageStarted() if stage is not None:
                self._run(event.ts)
                stage.state = "running"
                stage.producer = None
                stage.started = event.ts
                stage.unit = event.unit
                stage.log = event.log
                stage.contained = event.contained
                stage.memory_max = event.memory_max
                stage.gpus = event.gpus or None
                stage.node = None
                self.current_stage = stage.name
            case StagePlaced() if stage is not None:
                stage.node = event.node
                stage.contained = event.contained
            case Progress() if stage is not None:
                stage.progress = (event.step, event.total, event.unit)
            case Resources() if stage is not None:
                stage.memory_now = event.memory_bytes
                if event.memory_bytes is not None:
                    stage.peak_memory = max(stage.peak_memory or 0, event.memory_bytes)
            case StageDone() if stage is not None:
                stage.state = "succeeded"
                stage.finished = event.ts
                stage.artifact = event.artifact
                stage.memory_now = None
                stage.peak_memory = event.peak_mem if event.peak_mem else stage.peak_memory
            case StageFailed() if stage is not None:
                stage.state = "failed"
                stage.finished = event.ts
                stage.memory_now = None
                stage.reason = event.reason
                stage.exit_code = event.exit_code
                stage.signal = event.signal
                stage.detail = event.detail
                stage.peak_memory = event.peak_mem if event.peak_mem else stage.peak_memory
                if not self.terminal and event.reason != "skipped":
                    self.exit_code = event.exit_code
                    self.signal = event.signal
            case CancelRequested() if event.stage is None:  # one stage's cancel is not the job's
                self.cancel_requested = True
            case CancelRequested() if event.stage not in self.cancel_stages:
                self.cancel_stages.append(event.stage or "")
            case Log() if event.level in ("warning", "error"):
                self.warnings.append(event.msg)
                del self.warnings[:-WARNINGS_KEPT]
            case JobDone():
                if not self.terminal:
                    self.exit_code = 0
                self._end("succeeded", event.ts)
            case JobFailed():
                if not self.terminal:
                    self.reason = event.reason
                    self.detail = event.detail
                self._end("failed", event.ts)
            case JobCancelled():
                if not self.terminal:
                    self.reason = "cancelled"
                self._end("cancelled", event.ts)
            case _:
                pass


def fold(job_id: str, events: Iterable[Event]) -> JobView:
    """The state of ``job_id`` after ``events``."""
    view = JobView(job_id)
    for event in events:
        view.apply(event)
    return view
