"""Cancelling one stage of a recipe job, and the GPUs a stage holds, against the fake launcher
of tests/unit/test_engine_executor.py (the real thing: tests/integration/test_stage_cancel.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from blut.jobs.cache import Cache
from blut.jobs.cancel import cancel_stage
from blut.jobs.errors import UsageError
from blut.jobs.executor import Executor
from blut.jobs.slots import Gpu, GpuPool
from blut.status.events import CancelRequested, JobFailed, JobStarted, StageStarted, parse_line
from blut.status.jobstate import fold
from blut.status.tailer import read_events
from tests.unit.test_engine_executor import (
    FakeLauncher,
    execute,
    gpu_plan,
    make_job,
    smoke,
    write_output,
)


def test_cancel_one_running_stage_skips_its_dependents_and_lets_the_rest_finish(
    tmp_path: Path,
) -> None:
    plan = smoke()
    job = make_job(tmp_path, plan)
    cube = f"blut-{job.id}-cube"
    launcher = FakeLauncher(write_output, hold={cube})
    cache = Cache(tmp_path)
    ex = Executor(job, plan, lambda: launcher, cache, gpus=GpuPool(cache.locks, list))
    original = ex._poll

    def poll_then_cancel_cube() -> None:
        original()
        if cube in launcher.running and not launcher.stopped:
            job.emit(CancelRequested(job=job.id, stage="cube", by="test"))

    ex._poll = poll_then_cancel_cube  # type: ignore[method-assign]
    assert ex.run() == 1
    view = job.view()
    assert launcher.stopped == [cube]
    assert view.state == "failed" and view.reason == "cancelled"
    assert view.detail == "stage cube: cancelled by request"
    stages = view.stages
    assert (stages["cube"].state, stages["cube"].reason) == ("failed", "cancelled")
    assert (stages["total"].state, stages["total"].reason) == ("failed", "skipped")
    assert stages["total"].detail == "upstream stage cube failed"
    assert stages["square"].state == "succeeded" and stages["make"].state == "succeeded"
    assert [s.name.rsplit("-", 1)[1] for s in launcher.launched] == ["make", "square", "cube"]
    assert {e.stage for e in cache.entries()} == {"make", "square"}
    assert not (job.dir / "stages" / "cube" / "staging").exists()


def test_cancel_a_stage_that_has_not_started_drops_it(tmp_path: Path) -> None:
    plan = smoke()
    job = make_job(tmp_path, plan)
    job.emit(CancelRequested(job=job.id, stage="total", by="test"))
    launcher = FakeLauncher(write_output)
    _job, rc = execute(tmp_path, plan, launcher, job=job)
    view = job.view()
    assert rc == 1 and view.state == "failed" and view.detail == "stage total: cancelled by request"
    assert view.stages["total"].reason == "cancelled"
    assert [s.name.rsplit("-", 1)[1] for s in launcher.launched] == ["make", "square", "cube"]
    assert launcher.stopped == []


def test_a_resumed_job_does_not_cancel_its_stage_again(tmp_path: Path) -> None:
    plan = smoke()
    job = make_job(tmp_path, plan)
    job.emit(CancelRequested(job=job.id, stage="total", by="test"))
    execute(tmp_path, plan, FakeLauncher(write_output), job=job)
    assert job.view().state == "failed"
    again = FakeLauncher(write_output)
    _job, rc = execute(tmp_path, plan, again, job=job)
    assert rc == 0 and job.view().state == "succeeded"
    assert [s.name.rsplit("-", 1)[1] for s in again.launched] == ["total"]


def test_whole_job_cancel_event_still_cancels_the_job(tmp_path: Path) -> None:
    plan = smoke()
    job = make_job(tmp_path, plan)
    make = f"blut-{job.id}-make"
    launcher = FakeLauncher(write_output, hold={make})
    cache = Cache(tmp_path)
    ex = Executor(job, plan, lambda: launcher, cache, gpus=GpuPool(cache.locks, list))
    original = ex._poll

    def poll_then_cancel() -> None:
        original()
        if launcher.running and not launcher.stopped:
            job.emit(CancelRequested(job=job.id, by="test"))

    ex._poll = poll_then_cancel  # type: ignore[method-assign]
    assert ex.run() == 1
    view = job.view()
    assert view.state == "cancelled" and view.stages["make"].reason == "cancelled"
    assert launcher.stopped == [make]


def test_cancel_stage_refuses_unknown_and_finished_stages(tmp_path: Path) -> None:
    plan = smoke()
    job, _ = execute(tmp_path, plan, FakeLauncher(write_output))
    launcher = FakeLauncher(write_output)
    with pytest.raises(UsageError, match="has no stage 'nope' \\(its stages: make, square"):
        cancel_stage(job, launcher, "nope")
    with pytest.raises(UsageError, match="has already ended \\(succeeded\\)"):
        cancel_stage(job, launcher, "cube")
    # A running job whose stage finished: the stage is refused, not the job.
    job.emit(JobStarted(job=job.id))  # resumed: running again
    running = FakeLauncher(write_output, hold={job.spec.driver_unit})
    running.running.add(job.spec.driver_unit)
    with pytest.raises(UsageError, match=r"stage cube of job .* has already ended \(succeeded\)"):
        cancel_stage(job, running, "cube")
    assert not any(isinstance(e, CancelRequested) for e in read_events(job.status_path))


def test_gpus_of_a_stage_are_in_its_stage_started_event(tmp_path: Path) -> None:
    pool = GpuPool(tmp_path / "locks", lambda: [Gpu(1, 80), Gpu(0, 40)])
    job, rc = execute(tmp_path, gpu_plan(gpu=2), FakeLauncher(write_output), gpus=pool)
    assert rc == 0
    (started,) = [e for e in read_events(job.status_path) if isinstance(e, StageStarted)]
    assert started.gpus == [1, 0]
    assert job.view().stages["train"].gpus == [1, 0]
    cpu_job, _ = execute(tmp_path, smoke(), FakeLauncher(write_output))
    assert all(
        e.gpus is None for e in read_events(cpu_job.status_path) if isinstance(e, StageStarted)
    )


def test_stage_started_without_gpus_still_parses() -> None:
    old = (
        '{"v":1,"ts":1.0,"job":"j","stage":"s","event":"stage_started","unit":"u",'
        '"launcher":"systemd","memory_max":null,"contained":true,"log":null}'
    )
    event = parse_line(old)
    assert isinstance(event, StageStarted) and event.gpus is None and not event.extra
    new = StageStarted(job="j", stage="s", ts=2.0, gpus=[0, 3])
    assert parse_line(new.to_json()) == new
    view = fold("j", [event, new, JobFailed(job="j", ts=3.0)])
    assert view.stages["s"].gpus == [0, 3]
