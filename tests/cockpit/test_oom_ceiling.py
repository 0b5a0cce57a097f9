"""After a stage ran out of memory, the cockpit's post-mortem offers the ceiling the policy
suggests: the larger of the peak it was killed at and the peaks of earlier successful
runs of its program (real job folders, real Textual)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from blut.cockpit.screens.job import JobScreen
from blut.status.events import JobDone, StageDone, StageStarted
from tests.cockpit.conftest import make_app, static_text, wait_for
from tests.cockpit.fakejobs import T0, emit, recipe_job
from tests.cockpit.test_rerun_focus import JOB, failed_quant_job

pytestmark = pytest.mark.anyio
EARLIER = "20250615-110000-dddd"
M = 1 << 20


def succeeded_quant_job(home: Path, train_peak: int) -> None:
    """An earlier quant-train job whose train stage succeeded at ``train_peak``."""
    job = recipe_job(home, EARLIER, "quant-train")
    emit(
        job,
        StageStarted(job=EARLIER, stage="train", ts=T0 - 9, memory_max=2048 * M),
        StageDone(job=EARLIER, stage="train", ts=T0 - 8, peak_mem=train_peak),
        JobDone(job=EARLIER, ts=T0 - 8),
    )


async def offered(home: Path) -> str:
    app = make_app(home, open_job=JOB)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        screen = app.screen
        assert isinstance(screen, JobScreen)
        body = screen.query_one("#explain-body", Static)
        await wait_for(pilot, lambda: "suggested" in static_text(body))
        return next(x for x in static_text(body).splitlines() if "suggested" in x)


async def test_the_post_mortem_offers_the_learned_ceiling(blut_home: Path) -> None:
    succeeded_quant_job(blut_home, 300 * M)
    failed_quant_job(blut_home, "train", "oom")  # killed at its 64M ceiling
    line = await offered(blut_home)
    assert "--set train.memory_max=450M" in line  # max(64M, 300M) × 1.5
    assert "max peak 300.0 MiB in 1 successful runs" in line


async def test_without_history_it_offers_the_oom_peak_times_the_margin(blut_home: Path) -> None:
    failed_quant_job(blut_home, "train", "oom")
    line = await offered(blut_home)
    assert "--set train.memory_max=96M" in line and "no successful runs of payload train" in line
