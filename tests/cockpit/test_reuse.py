"""A fully cached job in the cockpit, at 80×24, against REAL jobs (systemd units): its
stages say whose output they reused, the log and plots are that run's, `o` opens it and
`x` explains a stage (also once the job has ended)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from blut.cockpit.app import CockpitApp
from blut.cockpit.followlog import FollowLog
from blut.cockpit.plot import Plot
from blut.cockpit.screens.dialogs import TextScreen
from blut.cockpit.screens.job import JobScreen
from blut.jobs.api import submit_recipe
from blut.jobs.recipes import find
from blut.jobs.store import Job, JobStore
from tests.cockpit.conftest import action_names, static_text, wait_for
from tests.conftest import wait_for_job

pytestmark = pytest.mark.anyio
SIZE = (80, 24)
STAGES = ("make", "square", "cube", "total")


def smoke(home: Path) -> Job:
    recipe = find("smoke")
    job, warning = submit_recipe(JobStore(home), recipe, recipe.defaults())
    assert warning is None, warning
    wait_for_job(job)
    return job


def plain(cell: object) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


async def explained(app: CockpitApp, pilot: Pilot[Any]) -> str:
    """Press `x`, read the dialog, close it."""
    await pilot.press("x")
    await wait_for(pilot, lambda: isinstance(app.screen, TextScreen))
    text = static_text(app.screen.query_one("#text-body", Static))
    await pilot.press("escape")
    return text


@pytest.mark.systemd
@pytest.mark.timeout(300)
async def test_a_cached_job_shows_its_producer_and_explains_its_stages(
    blut_home: Path, manager_env: dict[str, str], no_config: Path
) -> None:
    first = smoke(blut_home)
    second = smoke(blut_home)
    assert {s.state for s in second.view().stages.values()} == {"cached"}

    app = CockpitApp(blut_home, system=False, open_job=second.id)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        screen = app.screen
        assert isinstance(screen, JobScreen)
        await wait_for(pilot, lambda: screen.plan is not None and first.id in app.state.jobs)
        table = screen.query_one("#stages", DataTable)
        await wait_for(pilot, lambda: table.row_count == len(STAGES))
        for name in STAGES:
            cells = [plain(c) for c in table.get_row(name)]
            assert cells[2] == "cached" and cells[-1] == first.id[9:], cells

        # the Jobs row and the screen are about its last stage, not blank
        row = app.state.row(app.state.jobs[second.id], time.time())
        assert row.stage == "total" and row.progress == 1.0
        assert screen.selected_stage() == "total"
        # ... whose log and plots are those of the run that computed it, and say so
        log = screen.query_one("#log", FollowLog)
        await wait_for(pilot, lambda: any(line.startswith("total ") for line in log.lines))
        assert f"from job {first.id}" in str(log.border_title)
        metrics = screen.query_one("#metrics", Plot)
        await wait_for(pilot, lambda: [c.label for c in metrics.curves] == ["total"])
        assert f"from job {first.id[9:]}" in metrics.note
        status = static_text(screen.query_one("#logstatus", Static))
        assert f"1 line of job {first.id}'s run" in status
        assert {"explain", "open_producer"} <= action_names(app)
        # p pages the producer's log of the stage (headless: the app names the file)
        notes: list[str] = []
        app.notify = lambda message, **_: notes.append(str(message))  # type: ignore[method-assign]
        await pilot.press("p")
        await wait_for(pilot, lambda: notes)
        assert notes[-1].endswith(str(first.log_path("total"))), notes
        del app.notify

        await pilot.press("question_mark")  # the screen's keys name x and o
        keys = static_text(app.screen.query_one(Static))
        assert "which job's output it reused" in keys and "open the job that computed" in keys
        await pilot.press("escape")
        # x on the selected stage, after the job ended: whose output it reused
        text = await explained(app, pilot)
        assert f"stage total: did not run; it reused the output of job {first.id}" in text
        assert f"blut log {first.id} total" in text
        # another row: that stage's explanation
        table.focus()
        await pilot.press("up", "up", "up")
        await wait_for(pilot, lambda: screen.selected_stage() == "make")
        assert "stage make: did not run" in await explained(app, pilot)

        # o opens the producer, whose own stages ran: x says why
        await pilot.press("o")
        await wait_for(
            pilot, lambda: isinstance(app.screen, JobScreen) and app.screen.job_id == first.id
        )
        producer = app.screen
        assert isinstance(producer, JobScreen)
        await wait_for(pilot, lambda: producer.plan is not None)
        await wait_for(pilot, lambda: producer.selected_stage() == "total")
        assert "open_producer" not in action_names(app)  # nothing of it was reused
        assert "stage total: computed by this job" in await explained(app, pilot)
        await pilot.press("escape")
        assert app.screen is screen


@pytest.mark.systemd
@pytest.mark.timeout(300)
async def test_a_job_from_before_producers_were_recorded_finds_them_in_the_cache(
    blut_home: Path, manager_env: dict[str, str], no_config: Path
) -> None:
    first = smoke(blut_home)
    second = smoke(blut_home)
    lines = []
    for line in second.status_path.read_text().splitlines():
        event = json.loads(line)
        event.pop("producer", None)  # as written before stage_cached named its producer
        lines.append(json.dumps(event, separators=(",", ":")))
    second.status_path.write_text("\n".join(lines) + "\n")
    second.paths.summary.unlink()

    app = CockpitApp(blut_home, system=False, open_job=second.id)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        screen = app.screen
        assert isinstance(screen, JobScreen)
        table = screen.query_one("#stages", DataTable)
        await wait_for(
            pilot,
            lambda: (
                table.row_count == len(STAGES) and plain(table.get_row("total")[-1]) == first.id[9:]
            ),
        )
        log = screen.query_one("#log", FollowLog)
        await wait_for(pilot, lambda: any(line.startswith("total ") for line in log.lines))
        assert f"from job {first.id}" in str(log.border_title)
