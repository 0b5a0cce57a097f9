"""Job folders with real status events (written by EventWriter) for display tests."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from blut.jobs.store import Job, JobSpec, JobStore
from blut.status.events import (
    Event,
    JobDone,
    JobFailed,
    JobStarted,
    JobSubmitted,
    Metric,
    Progress,
    Resources,
    StageDone,
    StageFailed,
    StageStarted,
)
from blut.status.writer import EventWriter

T0 = 1_750_000_000.0
"""Fixed wall time of the fake jobs (2025-06-15)."""
MiB = 1 << 20


def make_job(
    home: Path,
    job_id: str,
    *,
    name: str = "train",
    memory_max: int | None = 512 * MiB,
    argv: list[str] | None = None,
) -> Job:
    """A job folder with job.json and an empty stream (no driver: display only)."""
    store = JobStore(home)
    job_dir = store.jobs_dir / job_id
    (job_dir / "stages" / "main").mkdir(parents=True)
    spec = JobSpec(
        id=job_id,
        name=name,
        argv=argv or ["python", "train.py", "--epochs", "3"],
        cwd="/tmp",
        launcher="systemd",
        created=T0,
        memory_max=memory_max,
    )
    (job_dir / "job.json").write_text(json.dumps(asdict(spec)))
    return Job(job_dir, spec)


def recipe_job(home: Path, job_id: str, recipe: str) -> Job:
    """A job folder of ``recipe`` run with its defaults: job.json, args.json, plan.json."""
    from blut.jobs.recipes import find

    found = find(recipe)
    job = make_job(home, job_id, name=recipe)
    (job.dir / "args.json").write_text(json.dumps(found.defaults()))
    found.build(found.defaults()).save(job.dir / "plan.json")
    return job


def emit(job: Job, *events: Event) -> None:
    """Append events with the real writer."""
    with EventWriter(job.status_path) as writer:
        for event in events:
            writer.emit(event)


def started(job: Job, t: float = T0) -> list[Event]:
    """Submitted, started, stage main started."""
    j = job.id
    return [
        JobSubmitted(
            job=j, ts=t, name=job.spec.name, argv=job.spec.argv, memory_max=job.spec.memory_max
        ),
        JobStarted(job=j, ts=t + 0.5, launcher="systemd"),
        StageStarted(
            job=j,
            stage="main",
            ts=t + 1,
            unit=f"blut-{j}-main",
            memory_max=job.spec.memory_max,
            log=str(job.log_path("main")),
        ),
    ]


def training(job: Job, steps: int, t: float = T0 + 1, total: int = 100) -> list[Event]:
    """Progress, loss metrics and memory samples for ``steps`` steps."""
    j, out = job.id, []
    for s in range(1, steps + 1):
        ts = t + s
        out.append(Progress(job=j, stage="main", ts=ts, step=s, total=total, unit="step"))
        out.append(
            Metric(
                job=j,
                stage="main",
                ts=ts,
                step=s,
                values={"loss": 2.0 / (1 + 0.1 * s), "val_loss": 2.2 / (1 + 0.08 * s)},
            )
        )
        out.append(
            Resources(
                job=j,
                stage="main",
                ts=ts,
                memory_bytes=(100 + 3 * s) * MiB,
                memory_max=job.spec.memory_max,
            )
        )
    return out


def write_log(job: Job, lines: list[str]) -> None:
    """Append lines to the main stage log."""
    with open(job.log_path("main"), "a") as f:
        f.write("".join(line + "\n" for line in lines))


def running_job(home: Path, job_id: str, steps: int = 40, name: str = "train") -> Job:
    """A job in the middle of training."""
    job = make_job(home, job_id, name=name)
    emit(job, *started(job), *training(job, steps))
    write_log(job, [f"step {s} loss {2.0 / (1 + 0.1 * s):.4f}" for s in range(1, steps + 1)])
    return job


def succeeded_job(home: Path, job_id: str, name: str = "prep") -> Job:
    """A job that finished."""
    job = make_job(home, job_id, name=name)
    emit(
        job,
        *started(job),
        *training(job, 100),
        StageDone(job=job.id, stage="main", ts=T0 + 102, seconds=101, peak_mem=400 * MiB),
        JobDone(job=job.id, ts=T0 + 102),
    )
    write_log(job, ["done"])
    return job


def oom_job(home: Path, job_id: str, name: str = "big") -> Job:
    """A job killed by its memory ceiling."""
    job = make_job(home, job_id, name=name, memory_max=256 * MiB)
    events = [*started(job), *training(job, 50)]
    events += [
        Resources(
            job=job.id, stage="main", ts=T0 + 52, memory_bytes=255 * MiB, memory_max=256 * MiB
        ),
        StageFailed(
            job=job.id,
            stage="main",
            ts=T0 + 53,
            reason="oom",
            detail="oom-kill",
            seconds=52,
            peak_mem=256 * MiB,
            signal="KILL",
        ),
        JobFailed(job=job.id, ts=T0 + 53, reason="oom", detail="stage main: out of memory"),
    ]
    emit(job, *events)
    write_log(job, [f"allocating block {i}" for i in range(1, 31)] + ["Killed"])
    return job
