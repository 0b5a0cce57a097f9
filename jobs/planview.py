"""What `blut plan inspect` and `blut cache explain` show about a recipe job's stages."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from blut.jobs.cache import Cache
from blut.jobs.cacheexplain import explain as explain_key
from blut.jobs.cacheexplain import explain_reuse
from blut.jobs.errors import UsageError
from blut.jobs.keys import KeyParts
from blut.jobs.plan import Plan
from blut.jobs.store import Job
from blut.status.jobstate import JobView


@dataclass(frozen=True)
class StageRow:
    """One stage of a job: plan facts joined with its folded state."""

    name: str
    after: tuple[str, ...]
    output: str
    state: str
    key: str | None
    artifact: str | None
    started: float | None
    finished: float | None
    peak_memory: int | None
    memory_max: int | None
    unit: str | None
    reason: str | None
    detail: str
    producer: str | None = None
    """A cached stage: the job that computed the output it reused (None: not recorded)."""
    policy: str = ""
    """What the policy decided for the stage at submit (`blut.jobs.policy`)."""
    cpu: int = 1
    gpu: int = 0

    @property
    def seconds(self) -> float | None:
        """Run time, when the stage ran to an end."""
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``--format json``)."""
        return {**asdict(self), "after": list(self.after), "seconds": self.seconds}


def load_plan(job: Job) -> Plan:
    """The job's plan; a job without one is a `UsageError`."""
    if not job.plan_path.is_file():
        raise UsageError(f"job {job.id} has no plan (it is not a recipe job)")
    return Plan.load(job.plan_path)


def stage_key(job: Job, stage: str) -> KeyParts | None:
    """The cache key parts the executor computed for ``stage`` (None before it got there)."""
    try:
        data = json.loads(job.paths.stage(stage).key.read_text())
    except (OSError, ValueError):
        return None
    return KeyParts.from_dict(data)


def stage_rows(job: Job) -> list[StageRow]:
    """Every stage of ``job`` in topological order."""
    plan = load_plan(job)
    view = job.view()
    rows = []
    for name in plan.order():
        stage = plan.stages[name]
        state = view.stages.get(name)
        parts = stage_key(job, name)
        rows.append(
            StageRow(
                name=name,
                after=plan.deps[name],
                output=str(stage.output),
                state=state.state if state else "queued",
                key=parts.key if parts else None,
                artifact=state.artifact if state else None,
                started=state.started if state else None,
                finished=state.finished if state else None,
                peak_memory=state.peak_memory if state else None,
                memory_max=stage.memory_max,
                unit=state.unit if state else None,
                reason=state.reason if state else None,
                detail=state.detail if state else "",
                producer=state.producer if state else None,
                policy=job.spec.policy_notes.get(name, ""),
                cpu=stage.resources.cpu,
                gpu=stage.resources.gpu,
            )
        )
    return rows


def explain(cache: Cache, job: Job, stage: str) -> list[str]:
    """Why ``stage`` of ``job`` was (not) a cache hit, one line per finding."""
    plan = load_plan(job)
    if stage not in plan.stages:
        raise UsageError(f"job {job.id} has no stage {stage!r} (stages: {', '.join(plan.order())})")
    if not plan.stages[stage].cacheable:
        return [f"stage {stage}: runs a command for its effects, so it is never cached"]
    parts = stage_key(job, stage)
    view = job.view()
    state = view.stages.get(stage)
    if state is not None and state.state == "cached":
        if parts is None:  # its key record is gone: what the job's events say
            source = f"job {state.producer}" if state.producer else "an earlier job"
            return [f"stage {stage}: did not run; it reused the output of {source}"]
        return explain_reuse(cache, parts, state.producer, state.artifact)
    if parts is None:
        if not view.terminal:
            return [f"stage {stage}: not reached yet (job {view.state})"]
        return [f"stage {stage}: never reached (an upstream stage failed or the job was cancelled)"]
    return explain_key(cache, parts, job.id)


def reuse_line(job: Job, stage: str, producer: str | None) -> str:
    """What `blut log` says for a stage that reused a cached output instead of running."""
    if producer is None:
        return (
            f"stage {stage} did not run: its output was reused from the cache "
            f"(blut cache explain {job.id} {stage} says more)"
        )
    if job.dir.with_name(producer).is_dir():
        log = f"its log: blut log {producer} {stage}"
    else:
        log = "that job has been deleted since"
    return f"stage {stage} did not run: it reused the output of job {producer} ({log})"


def producers(view: JobView, job: Job, cache: Callable[[], Cache | None]) -> dict[str, str | None]:
    """Each cached stage of ``job`` (its ``view``) → the job that computed the output it
    reused: as the job recorded it, else (a job from before that was recorded) the job the
    cache entry of its key names, while that entry still holds the output; None when
    neither tells. ``cache`` is called only for such older stages (None: no cache)."""
    out: dict[str, str | None] = {}
    for name, state in view.stages.items():
        if state.state != "cached":
            continue
        found = state.producer
        parts = stage_key(job, name) if found is None else None
        opened = cache() if parts is not None else None
        if opened is not None and parts is not None:
            entry = opened.get(parts.key, touch=False)
            if entry is not None and entry.hash == state.artifact:
                found = entry.job
        out[name] = found
    return out
