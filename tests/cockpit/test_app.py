"""Pilot tests: the cockpit driven from the keyboard, against real job folders."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from textual.widgets import DataTable, Log, Static

from blut.cockpit.app import CockpitApp
from blut.cockpit.screens.dialogs import ConfirmScreen, HelpScreen
from blut.cockpit.screens.job import JobScreen
from blut.cockpit.screens.jobs import JobsScreen
from blut.cockpit.screens.replay import ReplayScreen
from blut.cockpit.screens.system import SystemScreen
from blut.jobs.store import JobStore
from blut.status.events import JobFailed, Progress, StageFailed
from tests.cockpit.conftest import DONE, OOM, RUNNING, make_app, static_text, wait_for
from tests.cockpit.fakejobs import T0, emit, running_job, write_log

SIZE = (100, 30)
pytestmark = pytest.mark.anyio


def header_labels(app: CockpitApp) -> list[str]:
    table = app.screen.query_one("#jobs", DataTable)
    return [column.label.plain for column in table.ordered_columns]


def table_ids(app: CockpitApp) -> list[str]:
    screen = app.screen
    assert isinstance(screen, JobsScreen)
    return list(screen._keys)


async def test_navigation_jobs_job_system_help(three_jobs: Path) -> None:
    app = make_app(three_jobs)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(table_ids(app)) == 3)
        assert table_ids(app) == [RUNNING, DONE, OOM]  # newest first
        await pilot.press("enter")
        assert isinstance(app.screen, JobScreen) and app.screen.job_id == RUNNING
        await wait_for(pilot, lambda: app.feed.focus == RUNNING)
        await pilot.press("escape")
        assert isinstance(app.screen, JobsScreen)
        await pilot.press("down", "enter")
        assert isinstance(app.screen, JobScreen) and app.screen.job_id == DONE
        await pilot.press("escape", "question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape", "2")
        assert isinstance(app.screen, SystemScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, JobsScreen)
        await pilot.press("q")
    assert app.return_code in (0, None)


async def test_help_lists_the_keys_of_the_screen_it_was_opened_from(three_jobs: Path) -> None:
    app = make_app(three_jobs)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(table_ids(app)) == 3)
        await pilot.press("question_mark")
        jobs_help = static_text(app.screen.query_one(Static))
        assert "filter" in jobs_help and "Everywhere" in jobs_help
        assert "prune" not in jobs_help and "launch" not in jobs_help
        await pilot.press("escape", "4", "question_mark")
        cache_help = static_text(app.screen.query_one(Static))
        assert "prune" in cache_help and "filter" not in cache_help
        await pilot.press("escape", "escape", "enter", "question_mark")
        job_help = static_text(app.screen.query_one(Static))
        assert "follow the running" in job_help and "prune" not in job_help


async def test_system_screen_says_no_gpu_cleanly(blut_home: Path) -> None:
    app = make_app(blut_home, system=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: len(app.system_history) > 0)
        await pilot.pause(0.1)
        app.screen.update_state()
        text = static_text(app.screen.query_one("#numbers", Static))
        sample = app.system_history[-1]
        if not sample.gpus:
            assert "no NVIDIA GPU" in text
        assert "memory" in text and str(blut_home) in text


async def test_filter_and_sort(three_jobs: Path) -> None:
    app = make_app(three_jobs)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(table_ids(app)) == 3)
        await pilot.press("slash", *"fail|succ")
        await wait_for(pilot, lambda: table_ids(app) == [DONE, OOM])
        await pilot.press("enter")  # leaves the box, keeps the filter
        assert isinstance(app.focused, DataTable)
        assert table_ids(app) == [DONE, OOM]
        await pilot.press("escape")  # clears it
        await wait_for(pilot, lambda: len(table_ids(app)) == 3)
        await pilot.press("s")  # id -> name, a to z
        await wait_for(pilot, lambda: table_ids(app) == [OOM, DONE, RUNNING])
        assert header_labels(app)[1] == "NAME ▲"
        await pilot.press("r")  # reverse: z to a
        await wait_for(pilot, lambda: table_ids(app) == [RUNNING, DONE, OOM])
        assert header_labels(app)[1] == "NAME ▼"
        await pilot.press("s")  # state: running first, failed before succeeded
        await wait_for(pilot, lambda: table_ids(app) == [RUNNING, OOM, DONE])
        assert "STATE ▲" in header_labels(app) and "NAME" in header_labels(app)
        await pilot.press("s")  # elapsed: longest first
        await wait_for(pilot, lambda: "ELAPSED ▼" in header_labels(app))
        await pilot.press("slash", *"[bad")  # not a regex: literal, no crash
        await wait_for(pilot, lambda: table_ids(app) == [])


async def test_readonly_hides_and_refuses_cancel(three_jobs: Path) -> None:
    app = make_app(three_jobs, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(table_ids(app)) == 3)
        assert "cancel" not in {b.binding.action for b in app.screen.active_bindings.values()}
        await pilot.press("c")
        assert not isinstance(app.screen, ConfirmScreen)
        commands = [c.title for c in app.get_system_commands(app.screen)]
        assert not any(t.startswith("Cancel") for t in commands)
        await pilot.press("enter")
        assert isinstance(app.screen, JobScreen)
        assert "cancel" not in {b.binding.action for b in app.screen.active_bindings.values()}
        await pilot.press("c")
        assert isinstance(app.screen, JobScreen)
    writable = make_app(three_jobs)
    async with writable.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(table_ids(writable)) == 3)
        actions = {b.binding.action for b in writable.screen.active_bindings.values()}
        assert "cancel" in actions


async def test_oom_job_shows_the_explanation_panel(three_jobs: Path) -> None:
    app = make_app(three_jobs)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(table_ids(app)) == 3)
        await pilot.press("down", "down", "enter")
        screen = app.screen
        assert isinstance(screen, JobScreen) and screen.job_id == OOM
        await wait_for(pilot, lambda: app.state.jobs[OOM].log("main").total > 0)
        screen.update_state()
        assert screen.has_class("failed")
        text = static_text(screen.query_one("#explain-body", Static))
        assert "out of memory" in text
        assert "256M of 256M (100%)" in text
        assert "Killed" in text and "allocating block 12" in text
        assert "allocating block 11" not in text  # the last 20 lines only
        assert "blut run --name big --memory-max 256M" in text
        assert not screen.query_one("#log", Log).display


async def test_open_job_starts_on_its_job_screen(three_jobs: Path) -> None:
    app = make_app(three_jobs, open_job=OOM)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        assert isinstance(app.screen, JobScreen) and app.screen.job_id == OOM
        await pilot.press("escape")
        assert isinstance(app.screen, JobsScreen)


async def test_live_update_when_events_are_appended(three_jobs: Path) -> None:
    app = make_app(three_jobs)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(table_ids(app)) == 3)
        job = JobStore(three_jobs).get(RUNNING)
        emit(job, Progress(job=RUNNING, stage="main", ts=T0 + 50, step=90, total=100))
        await wait_for(pilot, lambda: app.state.jobs[RUNNING].progress() == 0.9)
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        assert "90%" in screen._cells[RUNNING][4].plain  # type: ignore[union-attr]
        # a new job appears without a restart
        running_job(three_jobs, "20250615-120000-ffff", steps=3, name="late")
        await wait_for(pilot, lambda: table_ids(app)[:1] == ["20250615-120000-ffff"])
        # the cursor stayed on its job; the log tail of the job on screen follows,
        # and an ending elsewhere is a toast
        assert app.screen.selected_job_id == RUNNING
        await pilot.press("up", "enter")
        assert app.screen.selected_job_id == "20250615-120000-ffff"
        await wait_for(pilot, lambda: app.state.jobs["20250615-120000-ffff"].log("main").total == 3)
        write_log(JobStore(three_jobs).get("20250615-120000-ffff"), ["fresh line"])
        await wait_for(pilot, lambda: "fresh line" in app.screen.query_one("#log", Log).lines)
        emit(
            job,
            StageFailed(job=RUNNING, stage="main", reason="exit", exit_code=3),
            JobFailed(job=RUNNING, reason="exit"),
        )
        await wait_for(pilot, lambda: app.state.jobs[RUNNING].view.state == "failed")
        await wait_for(pilot, lambda: any(RUNNING in n.message for n in app._notifications))


async def test_replay_scrubs_through_history(three_jobs: Path) -> None:
    app = make_app(three_jobs, replay=OOM)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        await wait_for(pilot, lambda: screen.timeline is not None)
        assert screen.position == 0
        await pilot.press("right", "right", "right")
        assert screen.position == 3
        assert screen.timeline is not None
        assert screen.timeline.view_at(screen.position).state == "running"
        await pilot.press("end")
        assert screen.position == len(screen.timeline)
        assert "failed" in static_text(screen.query_one("#snapshot", Static))
        await pilot.press("home", "pagedown")
        assert screen.position == len(screen.timeline) // 10
        await pilot.press("escape")
        assert isinstance(app.screen, JobsScreen)


@pytest.mark.systemd
@pytest.mark.timeout(120)
async def test_cancel_a_real_job_with_confirm(blut_home: Path, manager_env: dict[str, str]) -> None:
    from blut.jobs.api import submit_command

    store = JobStore(blut_home)
    job, warning = submit_command(store, ["sleep", "60"], name="sleeper", contained=True)
    assert warning is None
    app = CockpitApp(blut_home, system=False)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: job.id in app.state.jobs, timeout=20)
            await wait_for(
                pilot, lambda: app.state.jobs[job.id].view.state == "running", timeout=30
            )
            await pilot.press("c")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")
            assert isinstance(app.screen, JobsScreen)
            assert app.state.jobs[job.id].view.state == "running"
            await pilot.press("c", "y")
            await wait_for(
                pilot, lambda: app.state.jobs[job.id].view.state == "cancelled", timeout=40
            )
    finally:
        if not job.view().terminal:
            from blut.containment.select import launcher_for
            from blut.jobs.cancel import cancel

            cancel(job, launcher_for(job.spec.launcher))
    assert job.view().state == "cancelled"
    assert sys.executable  # the job's driver ran with this interpreter
