"""Cancel a job: record the request, stop its stage units, wait for the outcome."""

from __future__ import annotations

import time

from blut.containment.launcher import Launcher
from blut.jobs.errors import UsageError
from blut.jobs.reconcile import driver_running, reconcile
from blut.jobs.store import Job
from blut.status.events import CancelRequested, JobCancelled
from blut.status.jobstate import JobView


def cancel(job: Job, launcher: Launcher, *, wait: float = 20.0, by: str = "cli") -> JobView:
    """Cancel ``job`` and return its final state.

    The stage units are stopped directly (SIGTERM to their whole cgroup, SIGKILL
    after 10 s); the driver sees the request and records ``cancelled``. If the
    driver is gone, the outcome is recorded here instead.
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
    if not driver_running(job, launcher):
        with job.lock():
            if not job.view().terminal:
                job.emit(JobCancelled(job=job.id))
    return reconcile(job, launcher)
