"""Cancel one stage from the Job screen (a real smoke job), the GPU(s) column, and the age of
the shown data when the feed cannot refresh it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from blut.cockpit.app import CockpitApp
from blut.cockpit.feed import JobDelta
from blut.cockpit.screens.dialogs import ConfirmScreen
from blut.cockpit.screens.job import JobScreen
from blut.cockpit.screens.jobs import JobsScreen
from blut.cockpit.state import CockpitState
from blut.jobs.api import submit_recipe
from blut.jobs.recipes import find
from blut.jobs.store import JobStore
from blut.status.events import (
    CancelRequested,
    JobStarted,
    JobSubmitted,
    StageDone,
    StageStarted,
)
from tests.cockpit.conftest import RUNNING, action_names, make_app, palette_titles, wait_for
from tests.cockpit.fakejobs import T0, emit, make_job

SIZE = (100, 30)
pytestmark = pytest.mark.anyio


def stage_state(app: CockpitApp, job_id: str, stage: str) -> str | None:
    job = app.state.jobs.get(job_id)
    found = job.view.stages.get(stage) if job is not None else None
    return found.state if found is not None else None


@pytest.mark.systemd
@pytest.mark.timeout(300)
async def test_cancel_the_selected_stage_with_confirm(
    blut_home: Path, manager_env: dict[str, str], no_config: Path
) -> None:
    recipe = find("smoke")
    (args,) = recipe.resolve(sets=["cube.sleep=30"], environ={})
    job, _ = submit_recipe(JobStore(blut_home), recipe, args)
    app = CockpitApp(blut_home, system=False, open_job=job.id)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        screen = app.screen
        assert isinstance(screen, JobScreen) and screen.recipe
        await wait_for(pilot, lambda: screen.plan is not None)
        await wait_for(pilot, lambda: stage_state(app, job.id, "cube") == "running", 60)
        assert "cancel_stage" in action_names(app)
        table = screen.query_one("#stages", DataTable)
        table.move_cursor(row=screen._stage_keys.index("cube"), animate=False)
        await pilot.pause()
        assert screen.cancel_target() == "cube"
        assert f"Cancel stage cube of {job.id}" in palette_titles(app)
        await pilot.press("C")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Cancel stage cube of job" in str(app.screen.question)  # type: ignore[attr-defined]
        await pilot.press("y")
        await wait_for(pilot, lambda: app.state.jobs[job.id].view.terminal, 60)
        view = app.state.jobs[job.id].view
        assert view.state == "failed" and view.reason == "cancelled"
        assert (view.stages["cube"].state, view.stages["cube"].reason) == ("failed", "cancelled")
        assert view.stages["total"].reason == "skipped"
        assert view.stages["square"].state == "succeeded"
        assert app.state.jobs[job.id].cancel_stages == {"cube"}
        await pilot.press("C")  # the job has ended: a warning, no dialog
        await pilot.pause()
        assert app.screen is screen


def recipe_job_with_gpus(home: Path, job_id: str) -> None:
    """A smoke job folder (display only) whose `cube` runs on GPUs 0 and 3."""
    recipe = find("smoke")
    job = make_job(home, job_id, name="smoke")
    recipe.build(recipe.defaults()).save(job.dir / "plan.json")
    emit(
        job,
        JobSubmitted(job=job_id, ts=T0, name="smoke", recipe="smoke"),
        JobStarted(job=job_id, ts=T0 + 1),
        StageStarted(job=job_id, stage="make", ts=T0 + 2, gpus=[1]),
        StageDone(job=job_id, stage="make", ts=T0 + 3),
        StageStarted(job=job_id, stage="cube", ts=T0 + 4, gpus=[0, 3]),
        StageStarted(job=job_id, stage="square", ts=T0 + 4),
        CancelRequested(job=job_id, stage="square", ts=T0 + 5),
    )


async def test_gpu_column_header_and_readonly(three_jobs: Path) -> None:
    gpu_job = "20250615-110000-dddd"
    recipe_job_with_gpus(three_jobs, gpu_job)
    app = make_app(three_jobs, readonly=True)
    async with app.run_test(size=(140, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.state.jobs) == 4 and not app.state.loading)
        jobs = app.screen
        assert isinstance(jobs, JobsScreen)
        await wait_for(pilot, lambda: len(jobs._keys) == 4)
        assert str(jobs.table.get_cell(gpu_job, "gpus")) == "0,3"  # make's GPU was given back
        assert str(jobs.table.get_cell(RUNNING, "gpus")) == "-"
        await wait_for(pilot, lambda: jobs.selected_job_id == gpu_job)
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, JobScreen)
        await wait_for(pilot, lambda: screen.plan is not None)
        title = str(screen.query_one("#title", Static).content)
        assert "gpu 0,3" in title
        assert "cancelling square…" in title and "cancelling…" not in title  # one stage only
        assert not app.state.jobs[gpu_job].view.cancel_requested
        assert "cancel_stage" not in action_names(app)  # readonly
        assert not any(t.startswith("Cancel") for t in palette_titles(app))
        screen.action_cancel_stage()  # refused even when called
        await pilot.pause()
        assert app.screen is screen


async def test_data_age_shows_when_the_feed_is_stuck(three_jobs: Path) -> None:
    now = [T0 + 60]
    app = make_app(three_jobs, clock=lambda: now[0], open_job=RUNNING)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: RUNNING in app.state.jobs and not app.state.loading)
        screen = app.screen
        assert isinstance(screen, JobScreen)
        job = app.state.jobs[RUNNING]
        await wait_for(pilot, lambda: app.state.data_age(job, T0 + 60) == 0.0)
        title = screen.query_one("#title", Static)
        screen.update_state()
        assert " old" not in str(title.content)

        entered, gate = threading.Event(), threading.Event()
        poll = app.feed.poll

        def slow_poll(budget: float = 0.08) -> tuple[list[JobDelta], bool]:
            entered.set()  # a file system that does not answer
            gate.wait(30)
            return poll(budget)

        app.feed.poll = slow_poll  # type: ignore[method-assign]
        entered.clear()
        await wait_for(pilot, entered.is_set)
        await pilot.pause(0.2)  # whatever was posted before the stall is handled
        now[0] += 12
        screen.update_state()
        assert "data 12.0s old" in str(title.content)
        assert app.state.data_age(job, now[0]) == 12.0
        app.pop_screen()
        await pilot.pause()
        jobs = app.screen
        assert isinstance(jobs, JobsScreen)
        jobs.update_state()
        assert "data 12.0s old" in str(jobs.query_one("#status", Static).content)

        gate.set()  # the feed answers again
        await wait_for(pilot, lambda: app.state.data_age(job, now[0]) == 0.0)
        jobs.update_state()
        assert " old" not in str(jobs.query_one("#status", Static).content)


def test_state_dates_each_job_by_the_feed_reports() -> None:
    from blut.jobs.store import JobSpec
    from blut.status.events import Resources

    state = CockpitState()
    specs = [
        JobSpec(id=i, name=i, argv=["x"], cwd="/", launcher="bare", created=0.0) for i in ("a", "b")
    ]
    state.apply([JobDelta(s.id, spec=s) for s in specs], now=10.0)
    state.mark_checked(10.0)
    assert [state.data_age(state.jobs[i], 15.0) for i in "ab"] == [5.0, 5.0]
    state.apply([JobDelta("a", events=[Resources(job="a", stage="main")], lines=1)], now=20.0)
    state.mark_checked(20.0, behind={"b"})  # b has unread lines (a slow or huge stream)
    assert [state.data_age(state.jobs[i], 21.0) for i in "ab"] == [1.0, 11.0]
    assert state.checked == 20.0
