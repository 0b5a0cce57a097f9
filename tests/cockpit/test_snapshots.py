"""Pinned snapshots of the main screens: fixed size, fixed clock, fixed data.

Update after an intended change with `pytest tests/cockpit --snapshot-update`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import OptionList

from blut.cockpit.app import CockpitApp
from blut.cockpit.screens.cache import CacheScreen
from blut.cockpit.screens.recipes import RecipeFormScreen, RecipesScreen
from blut.cockpit.sysinfo import SystemSample
from blut.containment.nvml import GpuSample
from tests.cockpit.conftest import make_app, wait_for
from tests.cockpit.fakejobs import T0, emit, make_job, started, training


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
    job = make_job(blut_home, "20250615-100000-aaaa")
    first = started(job)
    first[2] = dataclasses.replace(first[2], gpus=[0])  # type: ignore[call-arg]
    emit(job, *first, *training(job, 40))
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
                gpus=[
                    GpuSample(
                        index=0,
                        name="NVIDIA H100",
                        utilisation=float(i * 3 % 100),
                        memory_used=20 << 30,
                        memory_total=80 << 30,
                        temperature=55.0,
                    )
                ],
                unit_cpu={f"blut-{job.id}-main": 97.0},
            )
        )
    assert snap_compare(app, press=["2"], terminal_size=(100, 30), run_before=loaded(app, jobs=1))


def test_recipes_screen(blut_home: Path, no_config: Path, snap_compare: Any) -> None:
    app = make_app(blut_home)

    async def run_before(pilot: Pilot[object]) -> None:
        await pilot.press("3")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipesScreen))
        screen = app.screen
        assert isinstance(screen, RecipesScreen)
        await wait_for(pilot, lambda: screen.selected_recipe is not None)
        options = screen.query_one(OptionList)  # smoke: the detail pane of a stable recipe
        options.highlighted = next(
            i for i in range(options.option_count) if options.get_option_at_index(i).id == "smoke"
        )
        await wait_for(pilot, lambda: screen.selected_recipe is not None)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


def test_smoke_recipe_form(blut_home: Path, no_config: Path, snap_compare: Any) -> None:
    app = make_app(blut_home)

    async def run_before(pilot: Pilot[object]) -> None:
        await pilot.press("3")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipesScreen))
        options = app.screen.query_one(OptionList)
        options.highlighted = next(
            i for i in range(options.option_count) if options.get_option_at_index(i).id == "smoke"
        )
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipeFormScreen))
        # the config layers are read by a worker: let it finish (nothing to apply here)
        await wait_for(
            pilot, lambda: not [w for w in app.screen.workers if w.group == "recipe-layers"]
        )

    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


HOUR = 3600.0


def fill_cache(home: Path) -> None:
    """Three entries committed through the real cache at pinned wall times."""
    from blut.jobs import cache as cache_module
    from blut.jobs.cache import Cache
    from blut.jobs.keys import KeyParts

    now = [0.0]
    entries = [("make", 4, T0 - 30 * HOUR), ("square", 64, T0 - 5 * HOUR), ("total", 1024, T0 - 90)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cache_module, "time", SimpleNamespace(time=lambda: now[0]))
        cache = Cache(home)
        try:
            keys = []
            for i, (stage, kib, created) in enumerate(entries):
                staging = home / f"staging-{i}"
                staging.mkdir()
                (staging / "out.bin").write_bytes(bytes([i + 1]) * (kib << 10))
                now[0] = created
                parts = KeyParts(stage, ("smoke-power",), 1, {}, {"i": i})
                job = f"20250614-0{i}0000-abc{i}"
                keys.append(cache.commit(parts, staging, job=job, stage=stage).key)
            now[0] = T0 - 2 * HOUR
            assert cache.get(keys[0]) is not None  # used again after it was made
        finally:
            cache.close()


def test_cache_screen(blut_home: Path, snap_compare: Any) -> None:
    fill_cache(blut_home)
    app = make_app(blut_home)

    async def run_before(pilot: Pilot[object]) -> None:
        await pilot.press("4")
        await wait_for(pilot, lambda: isinstance(app.screen, CacheScreen))
        screen = app.screen
        assert isinstance(screen, CacheScreen)
        await wait_for(pilot, lambda: screen.listing is not None)
        assert len(screen.listing.entries) == 3  # type: ignore[union-attr]

    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)
