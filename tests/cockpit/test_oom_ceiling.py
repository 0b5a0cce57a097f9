"""After a stage ran out of memory, the cockpit's post-mortem offers the ceiling the policy
suggests: the larger of the peak it was killed at and the peaks of earlier successful
runs of its program (real job folders, real Textual)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from blut.cockpit.screens.job import JobScreen
from blut.status.events import (
    JobDone,
    StageDone,
    StageStarted,
)
from tests.cockpit.conftest import make_app, static_text, wait_for
from tests.cockpit.fakejobs import T0, emit, recipe_job
from tests.cockpit.test_rerun_focus import JOB, failed_quant_job, press_rerun

pytestmark = pytest.mark.anyio
M = 1 << 20


def succeeded_runs(home: Path, peaks: list[int]) -> None:
    """Earlier quant-train jobs whose train stage succeeded at each of ``peaks``."""
    for n, peak in enumerate(peaks):
        job_id = f"20250615-10000{n}-ddd{n}"
        job = recipe_job(home, job_id, "quant-train")
        emit(
            job,
            StageStarted(job=job_id, stage="train", ts=T0 - 90 + n, memory_max=2048 * M),
            StageDone(job=job_id, stage="train", ts=T0 - 80 + n, peak_mem=peak),
            JobDone(job=job_id, ts=T0 - 80 + n),
        )


async def offered(home: Path, size: tuple[int, int] = (120, 40)) -> str:
    """The post-mortem's text once it shows an offer, its lines joined (wrapped at ``size``)."""
    app = make_app(home, open_job=JOB)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        screen = app.screen
        assert isinstance(screen, JobScreen)
        body = screen.query_one("#explain-body", Static)
        width = size[0] - 2
        await wait_for(pilot, lambda: "suggested" in static_text(body, width=width))
        return " ".join(static_text(body, width=width).split())


async def test_the_post_mortem_offers_the_learned_ceiling(blut_home: Path) -> None:
    succeeded_runs(blut_home, [300 * M])
    failed_quant_job(blut_home, "train", "oom")  # killed at its 64M ceiling
    line = await offered(blut_home)
    assert "--set train.memory_max=450M" in line  # max(64M, 300M) × 1.5
    assert "max peak 300.0 MiB in 1 successful runs" in line


async def test_without_history_it_offers_the_oom_peak_times_the_margin(blut_home: Path) -> None:
    failed_quant_job(blut_home, "train", "oom")
    line = await offered(blut_home)
    assert "--set train.memory_max=96M" in line and "no successful runs of payload train" in line


async def test_at_80x24_the_offer_is_shown_and_e_types_it_into_the_form(blut_home: Path) -> None:
    succeeded_runs(blut_home, [200 * M, 300 * M, 250 * M])
    failed_quant_job(blut_home, "train", "oom", ceiling=256 * M, peak=256 * M)
    shown = await offered(blut_home, size=(80, 24))
    assert "--set train.memory_max=450M" in shown  # max(256M, 300M) × 1.5
    assert "e: the recipe form with this job's args and train.memory_max=450M" in shown
    opened = await press_rerun(blut_home)
    assert (opened.field, opened.value, opened.visible) == ("train.memory_max", "450M", True)
    assert "memory_max 450M suggested" in opened.title
    assert "max peak 300.0 MiB in 3 successful runs" in opened.title


async def test_without_an_offer_the_form_keeps_the_old_ceiling(blut_home: Path) -> None:
    """A job without a plan gets no offer: the form opens on the ceiling it ran with."""
    failed_quant_job(blut_home, "train", "oom", ceiling=256 * M, peak=256 * M)
    (blut_home / "jobs" / JOB / "plan.json").unlink()
    opened = await press_rerun(blut_home)
    assert (opened.field, opened.value) == ("train.memory_max", "2G")  # as the job ran
    assert "raise its memory_max" in opened.title
