"""Cancel a job (record the request, stop its stage units, wait for the outcome), or
one stage of a recipe job (its executor stops it and skips what depends on it)."""

from __future__ import annotations

import time

from blut.containment.launcher import Launcher
from blut.jobs.errors import UsageError
from blut.jobs.lifecycle import executor_alive, reconcile
from blut.jobs.store import Job
from blut.status.events import CancelRequested, JobCancelled
from blut.status.jobstate import JobView


def cancel(job: Job, launcher: Launcher, *, wait: float = 20.0, by: str = "cli") -> JobView:
    """Cancel ``job`` and return its final state.

    The stage units are stopped directly (SIGTERM to their whole cgroup, SIGKILL
    after 10 s); the executor sees the request and records ``cancelled``. If the
    executor is gone, reconcile records it (an adopting executor, here or as a unit).
    """
    view = reconcile(job, launcher)
    if view.terminal:
        raise UsageError(f"job {job.id} has already ended ({view.state})")
    job.emit(CancelRequested(job=job.id, by=by))
    for stage in job.spec.stages:
        handle = launcher.find(job.spec.stage_unit(stage), job.result_path(stage))
        if handle is not None:
            launcher.stop(handle)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        view = reconcile(job, launcher)
        if view.terminal:
            return view
        time.sleep(0.05)
    if not executor_alive(job, launcher):
        with job.lock():
            if not job.view().terminal:
                job.emit(JobCancelled(job=job.id))
                job.save_summary()
    return reconcile(job, launcher)


CANCELLABLE = ("queued", "running")
"""Stage states a stage cancel applies to (a stage not seen yet counts as queued)."""


def cancel_stage(
    job: Job, launcher: Launcher, stage: str, *, wait: float = 20.0, by: str = "cli"
) -> JobView:
    """Cancel one ``stage`` of ``job`` and return the job's state once that stage ended.

    The job's executor stops the stage's unit (or drops it if it has not started),
    records it failed with reason ``cancelled`` and skips its dependents; independent
    branches finish and the job ends failed, the cancelled stage its first cause.
    A command job has one stage, so cancelling it cancels the job. Raises
    :class:`UsageError` for an unknown stage or one that has already ended.
    """
    if stage not in job.spec.stages:
        known = ", ".join(job.spec.stages)
        raise UsageError(f"job {job.id} has no stage {stage!r} (its stages: {known})")
    view = reconcile(job, launcher)
    if view.terminal:
        raise UsageError(f"job {job.id} has already ended ({view.state})")
    if len(job.spec.stages) == 1:
        return cancel(job, launcher, wait=wait, by=by)
    state = _stage_state(view, stage)
    if state not in CANCELLABLE:
        raise UsageError(f"stage {stage} of job {job.id} has already ended ({state})")
    job.emit(CancelRequested(job=job.id, stage=stage, by=by))
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        view = reconcile(job, launcher)
        if view.terminal or _stage_state(view, stage) not in CANCELLABLE:
            break
        time.sleep(0.05)
    return reconcile(job, launcher)


def _stage_state(view: JobView, stage: str) -> str:
    found = view.stages.get(stage)
    if found is None:
        return "queued"
    if found.state == "failed" and found.reason == "skipped":
        return "skipped"
    return found.state
