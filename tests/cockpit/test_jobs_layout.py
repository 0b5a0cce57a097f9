"""The Jobs table at 80×24: the columns that matter, readable, no sideways scroll; wider
terminals add the rest (issue: values cut to their first-paint width, MEM/MAX off-screen)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable

from blut.cockpit.jobscolumns import columns_for
from blut.cockpit.screens.jobs import JobsScreen
from tests.cockpit.conftest import OOM, RUNNING, make_app, wait_for
from tests.cockpit.fakejobs import running_job

pytestmark = pytest.mark.anyio


def shown_text(table: DataTable[object]) -> str:
    return "\n".join(
        " ".join(str(cell) for cell in table.get_row_at(i)) for i in range(table.row_count)
    )


async def test_at_80_columns_the_core_columns_fit_and_reasons_show(three_jobs: Path) -> None:
    app = make_app(three_jobs)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.state.jobs) == 3 and not app.state.loading)
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        table = screen.table
        await wait_for(pilot, lambda: table.row_count == 3)
        labels = [str(c.label) for c in table.ordered_columns]
        assert labels == ["NAME", "STATE", "STAGE", "PROGRESS", "ELAPSED", "MEM/MAX"]
        assert table.virtual_size.width <= table.size.width  # nothing off-screen
        assert "failed (oom)" in shown_text(table)
        assert "220M/512M" in shown_text(table)  # the running stage against its ceiling

        for i in range(25):  # long names, and enough rows for the vertical scrollbar
            running_job(app.home, f"20250615-11{i:02d}00-dddd", name="a-very-long-job-name-" * 4)
        await wait_for(pilot, lambda: table.row_count == 28)
        for _ in range(6):  # every sort, its ▲/▼ marker included, fits with a long NAME
            await pilot.press("s")
            await wait_for(
                pilot,
                lambda: (
                    any("▲" in str(c.label) or "▼" in str(c.label) for c in table.ordered_columns)
                    or screen.sort in ("id", "peak")
                ),
            )
            visible = table.scrollable_content_region.width
            assert table.virtual_size.width <= visible, (screen.sort, table.virtual_size)

        await pilot.press("slash", *"oom", "enter")  # the reason is searchable
        await wait_for(pilot, lambda: table.row_count == 1)
        assert screen.selected_job_id == OOM
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.row_count == 28)

        await pilot.resize_terminal(160, 40)  # wider: the rest comes back
        await wait_for(pilot, lambda: len(table.ordered_columns) == 9)
        assert RUNNING in shown_text(table)  # the whole id at 160 columns


def test_columns_by_width() -> None:
    assert columns_for(80) == ("name", "state", "stage", "progress", "elapsed", "memory")
    assert columns_for(100)[0] == "id"
    assert columns_for(140)[-2:] == ("peak", "gpus")
    assert columns_for(170)[-1] == "node"  # where a job's stages run on a cluster


async def test_keys_fit_the_job_under_the_cursor(three_jobs: Path) -> None:
    app = make_app(three_jobs)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.state.jobs) == 3 and not app.state.loading)
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await wait_for(pilot, lambda: screen.table.row_count == 3)
        await pilot.press("home")
        assert screen.selected_job_id == RUNNING  # newest first: the running job on top
        assert screen.check_action("cancel", ()) is True
        await pilot.press("end")
        assert screen.selected_job_id == OOM
        assert screen.check_action("cancel", ()) is False  # it ended: nothing to cancel
        assert screen.check_action("resume", ()) is True
        await pilot.press("g")
        assert screen.selected_job_id == RUNNING
        assert screen.check_action("resume", ()) is None  # greyed while it runs


async def test_a_filter_that_drops_most_rows_and_its_undo_keep_the_order(blut_home: Path) -> None:
    ids = [f"20250615-{10 + i // 60:02d}{i % 60:02d}00-ffff" for i in range(40)]
    for i, job_id in enumerate(ids):
        running_job(
            blut_home, job_id, steps=2, name=f"job-{i:02d}" + ("-keep" if i % 10 == 0 else "")
        )
    app = make_app(blut_home)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        table = screen.table
        await wait_for(pilot, lambda: table.row_count == 40)
        newest_first = sorted(ids, reverse=True)
        assert screen._keys == newest_first
        await pilot.press("slash", *"keep")  # 36 rows leave at once
        await wait_for(pilot, lambda: table.row_count == 4)
        shown = [table.coordinate_to_cell_key((r, 0)).row_key.value for r in range(4)]
        assert shown == sorted(ids[::10], reverse=True)
        await pilot.press("enter", "down")  # back in the table, on the second kept job
        chosen = screen.selected_job_id
        assert chosen == shown[1]
        await pilot.press("escape")  # clears the filter: 36 rows come back
        await wait_for(pilot, lambda: table.row_count == 40)
        rows = [table.coordinate_to_cell_key((r, 0)).row_key.value for r in range(40)]
        assert rows == newest_first
        assert screen.selected_job_id == chosen  # the cursor stayed on its job
