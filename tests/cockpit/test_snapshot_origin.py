"""A job started from a snapshot says so: under its Job screen's title and in the jobs table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import Static

from blut.cockpit.screens.job import JobScreen
from blut.cockpit.screens.jobs import JobsScreen
from blut.status.events import JobSubmitted
from tests.cockpit.conftest import make_app, static_text, wait_for
from tests.cockpit.fakejobs import T0, emit, make_job

SIZE = (80, 24)
BRANCH, CONTINUED = "20250615-120001-bbb1", "20250615-120002-bbb2"
SNAP = "ab" * 32


def from_snapshot(home: Path, job_id: str, changed: dict[str, list[float]]) -> None:
    job = make_job(home, job_id, name="quant-train")
    spec = json.loads(job.paths.spec.read_text())
    spec["snapshot"] = {
        "id": SNAP, "stage": "train", "epoch": 5, "branch": bool(changed), "changed": changed,
    }  # fmt: skip
    job.paths.spec.write_text(json.dumps(spec))
    emit(job, JobSubmitted(job=job_id, ts=T0, name="quant-train", recipe="quant-train"))


@pytest.mark.anyio
async def test_a_branch_shows_its_snapshot_and_what_it_changed(blut_home: Path) -> None:
    from_snapshot(blut_home, BRANCH, {"lr": [0.001, 0.01]})
    app = make_app(blut_home, open_job=BRANCH)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, JobScreen)
        await wait_for(pilot, lambda: screen.has_class("member"))
        line = screen.query_one("#sweep", Static)
        await wait_for(pilot, lambda: "snapshot" in static_text(line))
        text = static_text(line, width=80)
        assert f"branched from snapshot {SNAP[:12]} (epoch 5): lr 0.001 → 0.01" in text
        assert line.region.height == 1 and line.region.y < 3


@pytest.mark.anyio
async def test_the_jobs_table_marks_branches_and_continuations(blut_home: Path) -> None:
    from_snapshot(blut_home, BRANCH, {"lr": [0.001, 0.01]})
    from_snapshot(blut_home, CONTINUED, {})
    app = make_app(blut_home)
    async with app.run_test(size=(160, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await wait_for(pilot, lambda: len(app.state.jobs) == 2 and not app.state.loading)
        table = screen.query_one("DataTable")
        await wait_for(pilot, lambda: table.row_count == 2)
        names = {str(cell) for row in range(2) for cell in table.get_row_at(row)}
        assert f"quant-train (branch of {SNAP[:12]})" in names
        assert f"quant-train (from {SNAP[:12]})" in names
