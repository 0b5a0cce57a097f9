"""The Job screen follows the job's running (or failing) stage until the user moves the
cursor, and says which it shows (issue: it stayed on the first stage for the whole run)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable

from blut.cockpit.followlog import FollowLog
from blut.cockpit.screens.job import JobScreen
from blut.status.events import (
    Event,
    JobStarted,
    JobSubmitted,
    StageDone,
    StageFailed,
    StageStarted,
)
from tests.cockpit.conftest import make_app, wait_for
from tests.cockpit.fakejobs import T0, emit, make_job

pytestmark = pytest.mark.anyio

JOB = "20250615-110000-dddd"
M = 1 << 20


def recipe_job(home: Path) -> None:
    """A recipe job whose first stage has just started."""
    job = make_job(home, JOB, name="quant-train", memory_max=None)
    emit(
        job,
        JobSubmitted(job=JOB, ts=T0, name="quant-train", recipe="quant-train"),
        JobStarted(job=JOB, ts=T0),
        StageStarted(job=JOB, stage="encode", ts=T0, memory_max=256 * M),
    )
    for stage in ("encode", "label", "train"):
        job.stage_dir(stage)
        job.log_path(stage).write_text(f"{stage} says hello\n")


def later_stages() -> list[Event]:
    """encode and label finish, train starts (seen live by the open screen)."""
    return [
        StageDone(job=JOB, stage="encode", ts=T0 + 1, peak_mem=80 * M),
        StageStarted(job=JOB, stage="label", ts=T0 + 1, memory_max=256 * M),
        StageDone(job=JOB, stage="label", ts=T0 + 2, peak_mem=80 * M),
        StageStarted(job=JOB, stage="train", ts=T0 + 3, memory_max=2048 * M),
    ]


async def test_the_job_screen_follows_the_running_stage_until_the_user_moves(
    blut_home: Path,
) -> None:
    recipe_job(blut_home)
    app = make_app(blut_home, open_job=JOB)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, JobScreen)
        log = screen.query_one("#log", FollowLog)
        table = screen.query_one("#stages", DataTable)
        await wait_for(pilot, lambda: "encode says hello" in "\n".join(log.lines))
        emit(app.stored_job(JOB), *later_stages())
        await wait_for(pilot, lambda: "train says hello" in "\n".join(log.lines))
        assert screen.selected_stage() == "train"
        assert str(log.border_title).startswith("log: train (the job's current stage)")
        assert table.cursor_row == 2

        await pilot.press("up")  # the user looks at label: it stays there
        await wait_for(pilot, lambda: "label says hello" in "\n".join(log.lines))
        assert screen.pinned == "label"
        assert "chosen · f follows the job" in str(log.border_title)

        await pilot.press("f")  # and back to following the job
        await wait_for(pilot, lambda: screen.selected_stage() == "train")
        await wait_for(pilot, lambda: table.cursor_row == 2)

        emit(  # train fails: the screen moves to it and stays on the failure
            app.stored_job(JOB),
            StageFailed(job=JOB, stage="train", ts=T0 + 9, reason="oom", peak_mem=2048 * M),
        )
        await wait_for(pilot, lambda: app.state.jobs[JOB].view.stages["train"].state == "failed")
        assert screen.selected_stage() == "train"


def test_a_recipe_oom_is_explained_against_the_stages_own_ceiling() -> None:
    from rich.console import Console

    from blut.cockpit.screens.job import explanation
    from blut.cockpit.state import JobState
    from blut.jobs.store import JobSpec
    from blut.status.events import JobFailed
    from blut.status.jobstate import fold

    events = [
        JobSubmitted(job=JOB, ts=T0, name="smoke", recipe="smoke"),
        StageStarted(job=JOB, stage="make", ts=T0, memory_max=256 * M),
        StageDone(job=JOB, stage="make", ts=T0 + 1, peak_mem=200 * M),
        StageStarted(job=JOB, stage="square", ts=T0 + 1, memory_max=64 * M),
        StageFailed(job=JOB, stage="square", ts=T0 + 2, reason="oom", peak_mem=64 * M),
        JobFailed(job=JOB, ts=T0 + 2, reason="oom", detail="stage square: out of memory"),
    ]
    spec = JobSpec(JOB, "smoke", ["python"], "/", "systemd", T0, recipe="smoke")
    console = Console(width=120, record=True)
    console.print(explanation(JobState(spec, fold(JOB, events)), recipe=True))
    text = console.export_text()
    assert "64M of 64M (100%)" in text  # not the 200M peak of another stage
    assert "--set square.memory_max=" in text and "--memory-max" not in text
