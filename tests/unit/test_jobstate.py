"""Job state is a fold over events: every transition, terminal states sticky."""

from __future__ import annotations

from blut.status.events import (
    CancelRequested,
    Event,
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
    StageStarted,
)
from blut.status.jobstate import fold

J = "job1"


def submitted() -> list[Event]:
    return [JobSubmitted(job=J, ts=1.0, name="train", argv=["x"], memory_max=1000)]


def test_submitted_is_queued() -> None:
    view = fold(J, submitted())
    assert (view.state, view.name, view.memory_max, view.submitted) == (
        "queued",
        "train",
        1000,
        1.0,
    )
    assert not view.terminal


def test_job_started_is_running() -> None:
    view = fold(J, [*submitted(), JobStarted(job=J, ts=2.0)])
    assert view.state == "running"
    assert view.started == 2.0


def test_stage_started_is_running_with_stage_details() -> None:
    view = fold(
        J,
        [*submitted(), StageStarted(job=J, stage="main", ts=3.0, unit="blut-x", memory_max=1000)],
    )
    assert view.state == "running"
    assert view.current_stage == "main"
    stage = view.stages["main"]
    assert (stage.state, stage.unit, stage.memory_max, stage.started) == (
        "running",
        "blut-x",
        1000,
        3.0,
    )


def test_progress_and_resources_update_the_stage() -> None:
    view = fold(
        J,
        [
            *submitted(),
            StageStarted(job=J, stage="main", ts=3.0),
            Progress(job=J, stage="main", step=5, total=10, unit="step"),
            Resources(job=J, stage="main", memory_bytes=700),
            Resources(job=J, stage="main", memory_bytes=500),
        ],
    )
    stage = view.stages["main"]
    assert stage.progress == (5, 10, "step")
    assert (stage.memory_now, stage.peak_memory) == (500, 700)


def test_done_is_succeeded() -> None:
    view = fold(
        J,
        [
            *submitted(),
            StageStarted(job=J, stage="main", ts=3.0),
            StageDone(job=J, stage="main", ts=5.0, peak_mem=900, seconds=2.0),
            JobDone(job=J, ts=5.0),
        ],
    )
    assert (view.state, view.reason, view.finished, view.peak_memory) == (
        "succeeded",
        None,
        5.0,
        900,
    )
    assert view.exit_code == 0
    assert view.elapsed(now=100.0) == 2.0


def test_failed_carries_reason_and_exit_code() -> None:
    view = fold(
        J,
        [
            *submitted(),
            StageStarted(job=J, stage="main", ts=3.0),
            StageFailed(job=J, stage="main", reason="exit", exit_code=3, ts=4.0),
            JobFailed(job=J, reason="exit", detail="stage main: exited with code 3", ts=4.0),
        ],
    )
    assert (view.state, view.reason, view.exit_code) == ("failed", "exit", 3)
    assert view.stages["main"].state == "failed"


def test_oom_failure() -> None:
    view = fold(
        J,
        [
            *submitted(),
            StageStarted(job=J, stage="main", ts=3.0),
            StageFailed(job=J, stage="main", reason="oom", signal="KILL", peak_mem=1000),
            JobFailed(job=J, reason="oom"),
        ],
    )
    assert (view.state, view.reason, view.signal, view.peak_memory) == (
        "failed",
        "oom",
        "KILL",
        1000,
    )


def test_cancel_request_then_cancelled() -> None:
    events = [*submitted(), StageStarted(job=J, stage="main", ts=3.0), CancelRequested(job=J)]
    view = fold(J, events)
    assert view.cancel_requested and view.state == "running"
    view = fold(J, [*events, JobCancelled(job=J, ts=9.0)])
    assert (view.state, view.reason, view.finished) == ("cancelled", "cancelled", 9.0)


def test_cancelled_while_queued() -> None:
    view = fold(J, [*submitted(), JobCancelled(job=J, ts=2.0)])
    assert view.state == "cancelled"


def test_terminal_states_are_sticky() -> None:
    view = fold(
        J,
        [
            *submitted(),
            JobDone(job=J, ts=5.0),
            JobFailed(job=J, reason="error", ts=6.0),
            JobCancelled(job=J, ts=7.0),
            StageFailed(job=J, stage="main", reason="exit", exit_code=9),
        ],
    )
    assert (view.state, view.reason, view.finished, view.exit_code) == ("succeeded", None, 5.0, 0)


def test_warnings_are_collected() -> None:
    view = fold(
        J, [*submitted(), Log(job=J, level="warning", msg="uncontained"), Log(job=J, msg="hi")]
    )
    assert view.warnings == ["uncontained"]
    assert view.events == 3


def test_a_new_job_started_reopens_a_failed_job() -> None:
    view = fold(
        J,
        [
            *submitted(),
            JobStarted(job=J, ts=2.0),
            StageFailed(job=J, stage="train", ts=3.0, reason="signal", signal="SIGKILL"),
            JobFailed(job=J, ts=3.0, reason="error", detail="driver died"),
            CancelRequested(job=J, ts=3.5),
            JobStarted(job=J, ts=4.0),
        ],
    )
    assert (view.state, view.reason, view.detail, view.finished) == ("running", None, "", None)
    assert (view.signal, view.cancel_requested, view.started) == (None, False, 2.0)
    view.apply(JobDone(job=J, ts=5.0))
    assert (view.state, view.exit_code, view.finished) == ("succeeded", 0, 5.0)


def test_cancelling_one_stage_is_not_cancelling_the_job() -> None:
    view = fold(J, [*submitted(), JobStarted(job=J, ts=2.0), CancelRequested(job=J, stage="cube")])
    assert not view.cancel_requested and view.state == "running"


def test_a_cached_stage_keeps_the_job_whose_output_it_reused() -> None:
    events = [
        *submitted(),
        StageCached(job=J, stage="make", ts=2.0, artifact="abc", producer="job0"),
        StageCached(job=J, stage="old", ts=2.0, artifact="def"),  # written before producers
    ]
    view = fold(J, events)
    assert (view.stages["make"].state, view.stages["make"].producer) == ("cached", "job0")
    assert view.stages["old"].producer is None
    # run again (a resumed job whose entry was gone): it is no longer someone else's output
    view.apply(StageStarted(job=J, stage="make", ts=3.0))
    assert view.stages["make"].producer is None
