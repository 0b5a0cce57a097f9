"""Turn a unit's `Outcome` into the stage and job events that record it."""

from __future__ import annotations

from blut.containment.spec import Outcome
from blut.status.events import (
    Event,
    FailureReason,
    JobCancelled,
    JobDone,
    JobFailed,
    StageDone,
    StageFailed,
)

_REASONS: dict[str, FailureReason] = {
    "exit": "exit",
    "signal": "signal",
    "oom": "oom",
    "timeout": "timeout",
    "cancelled": "cancelled",
    "error": "error",
}


def outcome_events(
    job: str,
    stage: str,
    outcome: Outcome,
    *,
    cancelled: bool,
    seconds: float | None,
    peak: int | None,
) -> list[Event]:
    """stage_done + job_done, or stage_failed + job_failed/job_cancelled.

    A stage that ended other than by success after someone asked to cancel is
    recorded as cancelled; a success is a success even if a cancel came late.
    """
    peak_mem = outcome.peak_memory or peak
    if outcome.ok:
        return [
            StageDone(job=job, stage=stage, seconds=seconds, peak_mem=peak_mem),
            JobDone(job=job),
        ]
    reason: FailureReason = "cancelled" if cancelled else _REASONS[outcome.kind]
    detail = "cancelled by request" if cancelled else outcome.detail
    failed = StageFailed(
        job=job,
        stage=stage,
        reason=reason,
        detail=detail,
        exit_code=outcome.exit_code,
        signal=outcome.signal,
        seconds=seconds,
        peak_mem=peak_mem,
    )
    if cancelled:
        return [failed, JobCancelled(job=job)]
    return [failed, JobFailed(job=job, reason=reason, detail=f"stage {stage}: {detail}")]
