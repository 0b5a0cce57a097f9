"""Reconcile a job's events with what its units report.

A driver that ended without recording an outcome (killed, OOM, host reboot)
leaves a non-terminal job; reconciling reads the stage's result record to
recover the outcome, or records the job as failed with the reason lost.
"""

from __future__ import annotations

from blut.containment.launcher import Launcher
from blut.containment.result import outcome_from_record, read_record
from blut.jobs.outcomes import outcome_events
from blut.jobs.store import Job
from blut.status.events import JobFailed
from blut.status.jobstate import JobView


def driver_running(job: Job, launcher: Launcher) -> bool:
    """True while the job's driver process is alive."""
    handle = launcher.find(job.spec.driver_unit, job.driver_result)
    return handle is not None and launcher.state(handle).phase == "running"


def reconcile(job: Job, launcher: Launcher) -> JobView:
    """The job's state, with a lost outcome recovered and recorded if its driver is gone."""
    view = job.view()
    if view.terminal or driver_running(job, launcher):
        return view
    with job.lock():
        view = job.view()
        if view.terminal:
            return view
        if job.is_recipe:
            job.emit(
                JobFailed(
                    job=job.id,
                    reason="error",
                    detail=f"executor ended without recording an outcome (see {job.driver_log}); "
                    f"continue with `blut plan resume {job.id}`",
                )
            )
            return job.view()
        for stage in job.spec.stages:
            if stage in view.stages and view.stages[stage].state in ("succeeded", "cached"):
                continue
            record = read_record(job.result_path(stage))
            if record is None:
                job.emit(
                    JobFailed(
                        job=job.id,
                        reason="error",
                        detail=f"driver ended without recording an outcome (see {job.driver_log})",
                    )
                )
                break
            outcome = outcome_from_record(record)
            for event in outcome_events(
                job.id, stage, outcome, cancelled=view.cancel_requested, seconds=None, peak=None
            ):
                job.emit(event)
            if not outcome.ok:
                break
        return job.view()
