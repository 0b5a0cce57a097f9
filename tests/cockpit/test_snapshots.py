"""Pinned snapshots of the main screens: fixed size, fixed clock, fixed data.

Update after an intended change with `pytest tests/cockpit --snapshot-update`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from blut.cockpit.app import CockpitApp
from blut.cockpit.sysinfo import GpuSample, SystemSample
from tests.cockpit.conftest import make_app, wait_for
from tests.cockpit.fakejobs import T0


def loaded(app: CockpitApp, jobs: int = 3) -> Any:
    async def run_before(pilot: Pilot[object]) -> None:
        await wait_for(pilot, lambda: len(app.state.jobs) == jobs and not app.state.loading)
        await wait_for(pilot, lambda: len(getattr(app.screen, "_keys", [])) == jobs)

    return run_before


def test_jobs_screen_80x24(three_jobs: Path, snap_compare: Any) -> None:
    app = make_app(three_jobs)
    assert snap_compare(app, terminal_size=(80, 24), run_before=loaded(app))


def test_running_job_screen(three_jobs: Path, snap_compare: Any) -> None:
    app = make_app(three_jobs)

    async def run_before(pilot: Pilot[object]) -> None:
        await loaded(app)(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.state.jobs[app.screen.job_id].log("main").total == 40)  # type: ignore[attr-defined]
        app.screen.update_state()  # type: ignore[attr-defined]

    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


def test_oom_job_screen_80x24(three_jobs: Path, snap_compare: Any) -> None:
    app = make_app(three_jobs)

    async def run_before(pilot: Pilot[object]) -> None:
        await loaded(app)(pilot)
        await pilot.press("down", "down", "enter")
        await wait_for(pilot, lambda: app.state.jobs[app.screen.job_id].log("main").total == 31)  # type: ignore[attr-defined]
        app.screen.update_state()  # type: ignore[attr-defined]

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_system_screen(blut_home: Path, snap_compare: Any) -> None:
    app = make_app(blut_home)
    for i in range(30):
        app.system_history.append(
            SystemSample(
                ts=T0 + i,
                cpu_percent=20 + (i * 7) % 60,
                cpu_count=2,
                load=(0.5, 0.4, 0.3),
                memory_used=(8 + i % 5) << 30,
                memory_total=24 << 30,
                swap_used=0,
                disk_path="/home/me/.local/share/blut",
                disk_used=40 << 30,
                disk_total=100 << 30,
                gpus=[GpuSample(0, "NVIDIA H100", float(i * 3 % 100), 20 << 30, 80 << 30, 55.0)],
            )
        )
    assert snap_compare(app, press=["2"], terminal_size=(100, 30))
