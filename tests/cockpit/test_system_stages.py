"""System lists every running stage with its CPU, memory against its own ceiling and GPUs
(like htop's process list), and its memory plot is on the scale of the whole memory
(issue: 10 % of 24G filled the plot)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from blut.cockpit.app import CockpitApp
from blut.cockpit.plot import Plot
from blut.cockpit.screens.system import SystemScreen
from blut.jobs.quantities import short_size
from blut.jobs.store import JobStore
from blut.status.events import Resources, StagePlaced
from tests.cockpit.conftest import DONE, RUNNING, make_app, wait_for
from tests.cockpit.fakejobs import T0, emit, running_job, succeeded_job

pytestmark = pytest.mark.anyio
HOT = "20250615-100500-ffff"
M = 1 << 20


def stage_rows(screen: SystemScreen) -> dict[str, list[str]]:
    table = screen.query_one("#stages", DataTable)
    return {str(key.value): [str(c) for c in table.get_row(key)] for key in table.rows}


async def system_screen(app: CockpitApp, pilot: Pilot[None], jobs: int) -> SystemScreen:
    """Once ``jobs`` jobs are read, the System screen (key 2) with two samples taken."""
    await wait_for(pilot, lambda: len(app.state.jobs) == jobs)
    await pilot.press("2")
    screen = app.screen
    assert isinstance(screen, SystemScreen)
    await wait_for(pilot, lambda: len(app.system_history) > 1)
    screen.update_state()
    return screen


async def test_system_lists_running_stages_against_their_ceilings(blut_home: Path) -> None:
    running_job(blut_home, RUNNING)  # main at 220M of 512M
    hot = running_job(blut_home, HOT)
    emit(hot, Resources(job=HOT, stage="main", ts=T0 + 50, memory_bytes=470 * M))  # 92 %
    succeeded_job(blut_home, DONE)
    app = make_app(blut_home, system=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await system_screen(app, pilot, jobs=3)
        rows = stage_rows(screen)
        assert list(rows) == [f"{HOT}/main", f"{RUNNING}/main"]  # not the finished job
        job, stage, cpu, mem, gpu, unit = rows[f"{RUNNING}/main"]
        assert (job, stage, unit) == (RUNNING, "main", f"blut-{RUNNING}-main")
        assert mem.endswith("43% 220M/512M")
        assert cpu == "-"  # no such unit under systemd: no figure, not a made-up one
        assert gpu == "-"  # no GPU held (and none on this machine)
        assert rows[f"{HOT}/main"][3].endswith("92% 470M/512M")
        table = screen.query_one("#stages", DataTable)
        assert "red" in str(table.get_cell(f"{HOT}/main", "mem").style)
        assert "red" not in str(table.get_cell(f"{RUNNING}/main", "mem").style)
        assert app.measured_units == {f"blut-{RUNNING}-main", f"blut-{HOT}-main"}

        total = app.system_history[-1].memory_total
        plot = screen.query_one("#mem", Plot)
        assert [m.y for m in plot.marks] == [float(total)]
        top = plot.render().plain.splitlines()[0]
        assert top.split("│")[0].strip() == short_size(total)  # the y axis ends at total

        await pilot.press("escape")
        assert app.measured_units == frozenset()  # nothing is measured off the System screen


async def test_a_stage_on_a_cluster_node_shows_its_node(blut_home: Path) -> None:
    running_job(blut_home, RUNNING)  # on this machine: no node
    placed = running_job(blut_home, HOT)
    emit(placed, StagePlaced(job=HOT, stage="main", ts=T0 + 50, node="gpu-node-7"))
    app = make_app(blut_home, system=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await system_screen(app, pilot, jobs=2)
        table = screen.query_one("#stages", DataTable)
        assert [str(c.label) for c in table.columns.values()][:3] == ["JOB", "STAGE", "NODE"]
        rows = stage_rows(screen)
        assert rows[f"{HOT}/main"][:3] == [HOT, "main", "gpu-node-7"]
        assert rows[f"{RUNNING}/main"][2] == "-"
        assert rows[f"{RUNNING}/main"][4].endswith("43% 220M/512M")  # the columns line up
        await pilot.pause()
        shown = [table.render_line(y).text for y in range(table.size.height)]
        assert any("gpu-node-7" in line for line in shown), shown  # in view at 80 columns


@pytest.mark.systemd
@pytest.mark.timeout(120)
async def test_a_real_running_stage_shows_its_cpu_and_ceiling(
    blut_home: Path, manager_env: dict[str, str]
) -> None:
    from blut.containment.select import launcher_for
    from blut.jobs.api import submit_command
    from blut.jobs.cancel import cancel

    busy = [
        sys.executable,
        "-c",
        "import time\nend = time.time() + 60\nwhile time.time() < end: pass",
    ]
    job, warning = submit_command(
        JobStore(blut_home), busy, name="spin", memory_max=256 * M, contained=True
    )
    assert warning is None
    app = CockpitApp(blut_home, reconcile=False)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(
                pilot,
                lambda: job.id in app.state.jobs and app.state.running_stages() != [],
                timeout=40,
            )
            await pilot.press("2")
            screen = app.screen
            assert isinstance(screen, SystemScreen)
            _, stage = app.state.running_stages()[0]
            assert stage.unit
            await wait_for(pilot, lambda: stage.unit in app.system_history[-1].unit_cpu, timeout=20)
            screen.update_state()
            job_id, name, cpu, mem, gpu, unit = stage_rows(screen)[f"{job.id}/{stage.name}"]
            assert (job_id, name, unit) == (job.id, stage.name, stage.unit)
            assert 0 < int(cpu.rstrip("%")) <= 100  # a busy loop: one core at most (shared here)
            assert mem.endswith("/256M")
            assert gpu == "-"
    finally:
        cancel(job, launcher_for(job.spec.launcher))
