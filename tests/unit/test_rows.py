"""One row model: memory always pairs a stage with its own ceiling."""

from __future__ import annotations

from blut.jobs.rows import JobRow, job_row, select
from blut.jobs.store import JobSpec
from blut.status.events import (
    Event,
    JobDone,
    JobFailed,
    JobStarted,
    JobSubmitted,
    Progress,
    Resources,
    StageCached,
    StageDone,
    StageFailed,
    StageStarted,
)
from blut.status.jobstate import fold

J = "20261201-000000-abcd"
M = 1 << 20
RECIPE = JobSpec(J, "quant-train", ["python"], "/", "systemd", 0.0, recipe="quant-train")


def stage(name: str, ts: float, ceiling: int, peak: int, *, ok: bool = True) -> list[Event]:
    end: Event = (
        StageDone(job=J, stage=name, ts=ts + 1, peak_mem=peak)
        if ok
        else StageFailed(job=J, stage=name, ts=ts + 1, reason="oom", peak_mem=peak)
    )
    return [StageStarted(job=J, stage=name, ts=ts, memory_max=ceiling), end]


def test_peak_is_paired_with_the_stages_own_ceiling() -> None:
    # encode peaks highest in bytes, but train came closest to its own ceiling.
    events = [
        JobSubmitted(job=J, ts=0, recipe="quant-train"),
        JobStarted(job=J, ts=0),
        *stage("encode", 1, 1 << 30, 292 * M),
        *stage("train", 3, 2 << 30, 1900 * M),
        *stage("evaluate", 5, 64 * M, 20 * M),
    ]
    row = job_row(RECIPE, fold(J, events))
    assert (row.peak_stage, row.peak_memory_bytes, row.peak_max_bytes) == (
        "train",
        1900 * M,
        2 << 30,
    )


def test_a_running_stage_shows_its_memory_against_its_ceiling() -> None:
    events = [
        JobSubmitted(job=J, ts=0, recipe="quant-train"),
        *stage("encode", 1, 1 << 30, 81 * M),
        StageStarted(job=J, stage="train", ts=3, memory_max=2 << 30),
        Resources(job=J, stage="train", ts=4, memory_bytes=300 * M, memory_max=2 << 30),
        Progress(job=J, stage="train", ts=4, step=1, total=4),
    ]
    row = job_row(RECIPE, fold(J, events))
    assert (row.stage, row.memory_bytes, row.memory_max_bytes) == ("train", 300 * M, 2 << 30)
    assert row.progress == 0.25


def test_a_failed_job_is_about_the_stage_that_failed() -> None:
    events = [
        JobSubmitted(job=J, ts=0, recipe="smoke"),
        *stage("make", 1, 256 * M, 81 * M),
        *stage("square", 3, 64 * M, 64 * M, ok=False),
        JobFailed(job=J, ts=5, reason="oom", detail="stage square: out of memory"),
    ]
    row = job_row(RECIPE, fold(J, events))
    assert (row.stage, row.memory_max_bytes) == ("square", 64 * M)
    assert (row.peak_stage, row.peak_memory_bytes, row.peak_max_bytes) == (
        "square",
        64 * M,
        64 * M,
    )


def test_a_queued_command_shows_its_ceiling() -> None:
    spec = JobSpec(J, "sleep", ["sleep", "9"], "/", "systemd", 0.0, memory_max=512 * M)
    row = job_row(spec, fold(J, [JobSubmitted(job=J, ts=0, memory_max=512 * M)]))
    assert (row.state, row.memory_max_bytes, row.peak_memory_bytes) == ("queued", 512 * M, None)


def test_selection_keeps_active_jobs_and_the_newest() -> None:
    def row(n: int, running: bool) -> JobRow:
        spec = JobSpec(f"j{n:03d}", "x", ["x"], "/", "systemd", 0.0)
        end: list[Event] = [] if running else [JobDone(job=spec.id, ts=n + 1)]
        return job_row(spec, fold(spec.id, [JobStarted(job=spec.id, ts=n), *end]))

    rows = [row(n, running=n == 0) for n in range(30)]
    shown = select(rows, lambda r: r.active, show_all=False)
    assert [r.id for r in shown] == ["j000", *(f"j{n:03d}" for n in range(10, 30))]
    assert select(rows, lambda r: r.active, show_all=True) == rows


def test_a_fully_cached_job_is_about_its_last_stage_done() -> None:
    events = [
        JobSubmitted(job=J, ts=0, recipe="smoke"),
        JobStarted(job=J, ts=1),
        *(StageCached(job=J, stage=s, ts=2, artifact="a", producer="p") for s in ("make", "total")),
        JobDone(job=J, ts=3),
    ]
    row = job_row(RECIPE, fold(J, events))
    assert (row.stage, row.progress) == ("total", 1.0)
