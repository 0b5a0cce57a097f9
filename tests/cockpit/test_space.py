"""Pilot: the Cache and System screens show the space job folders take against the cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from blut.cockpit.screens.cache import CacheScreen
from blut.cockpit.screens.system import SystemScreen
from tests.cockpit.conftest import make_app, static_text, wait_for
from tests.cockpit.fakejobs import succeeded_job

pytestmark = pytest.mark.anyio
SIZE = (80, 24)
MiB = 1 << 20


def fill(home: Path) -> None:
    """Two finished jobs holding 30 MiB of checkpoints each, 1 MiB in the cache."""
    for job_id in ("20250615-090000-aaaa", "20250615-100000-bbbb"):
        job = succeeded_job(home, job_id)
        folder = job.paths.stage("main").checkpoints
        folder.mkdir()
        (folder / "epoch-0001.pt").write_bytes(b"w" * (30 * MiB))
    objects = home / "cache" / "objects" / "abc"
    objects.mkdir(parents=True)
    (objects / "model.pt").write_bytes(b"m" * MiB)


async def test_cache_screen_shows_jobs_against_cache(blut_home: Path) -> None:
    fill(blut_home)
    app = make_app(blut_home)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await wait_for(pilot, lambda: isinstance(app.screen, CacheScreen))
        screen = app.screen
        assert isinstance(screen, CacheScreen)
        await wait_for(pilot, lambda: screen.listing is not None)
        text = static_text(screen.query_one("#space", Static))
        assert "jobs 60M in 2 folders · cache 1.0M" in text, text


async def test_system_screen_shows_jobs_against_cache(blut_home: Path) -> None:
    fill(blut_home)
    app = make_app(blut_home, system=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        assert isinstance(app.screen, SystemScreen)
        await wait_for(
            pilot, lambda: bool(app.system_history) and app.system_history[-1].space is not None
        )
        app.screen.update_state()
        await pilot.pause()
        text = static_text(app.screen.query_one("#numbers", Static))
        assert "space" in text and "jobs 60M in 2 folders · cache 1.0M" in text, text
