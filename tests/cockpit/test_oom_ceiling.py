"""After a stage ran out of memory, the cockpit's post-mortem offers the ceiling the policy
suggests: the larger of the peak it was killed at and the peaks of earlier successful
runs of its program (real job folders, real Textual)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, Static

from blut.cockpit.screens.job import JobScreen
from blut.cockpit.screens.recipes import RecipeFormScreen
from blut.status.events import (
    JobDone,
    JobFailed,
    JobStarted,
    JobSubmitted,
    StageDone,
    StageFailed,
    StageStarted,
)
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


def killed_quant_job(home: Path, peak: int) -> None:
    """A quant-train job whose train stage its 256M ceiling killed at ``peak``."""
    job = recipe_job(home, JOB, "quant-train")
    emit(
        job,
        JobSubmitted(job=JOB, ts=T0, name="quant-train", recipe="quant-train"),
        JobStarted(job=JOB, ts=T0 + 1),
        StageStarted(job=JOB, stage="train", ts=T0 + 2, memory_max=256 * M),
        StageFailed(job=JOB, stage="train", ts=T0 + 3, reason="oom", exit_code=137, peak_mem=peak),
        JobFailed(job=JOB, ts=T0 + 3, reason="oom"),
    )


async def test_e_opens_the_re_run_form_on_the_suggested_ceiling(blut_home: Path) -> None:
    """80×24: the post-mortem names the learned ceiling and `e` types it into the form."""
    succeeded_runs(blut_home, [200 * M, 300 * M, 250 * M])
    killed_quant_job(blut_home, 256 * M)
    app = make_app(blut_home, open_job=JOB)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        screen = app.screen
        assert isinstance(screen, JobScreen)
        body = screen.query_one("#explain-body", Static)
        await wait_for(pilot, lambda: "suggested" in static_text(body, width=78))
        shown = static_text(body, width=78)
        assert "--set train.memory_max=450M" in shown  # max(256M, 300M) × 1.5
        assert "e: the recipe form with this job's args and train.memory_max=450M" in " ".join(
            shown.split()
        )
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipeFormScreen))
        await pilot.pause()
        form, focused = app.screen, app.focused
        assert isinstance(form, RecipeFormScreen) and isinstance(focused, Input)
        assert form.fields[int(str(focused.id).removeprefix("f"))].key == "train.memory_max"
        assert focused.value == "450M"
        assert form.query_one("#form").region.contains_region(focused.region)
        title = " ".join(static_text(form.query_one("#title", Static), width=80).split())
        assert "memory_max 450M suggested" in title
        assert "max peak 300.0 MiB in 3 successful runs" in title
        assert form.base["train"]["memory_max"] == "450M"


async def test_without_an_offer_the_form_keeps_the_old_ceiling(blut_home: Path) -> None:
    """A job without a plan gets no offer: the form opens on the ceiling it ran with."""
    killed_quant_job(blut_home, 256 * M)
    (blut_home / "jobs" / JOB / "plan.json").unlink()
    app = make_app(blut_home, open_job=JOB)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        await wait_for(pilot, lambda: JOB in app.state.jobs and app.state.jobs[JOB].view.terminal)
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipeFormScreen))
        await pilot.pause()
        form, focused = app.screen, app.focused
        assert isinstance(form, RecipeFormScreen) and isinstance(focused, Input)
        assert focused.value == "2G"  # the recipe's default, as the job ran
        assert "raise its memory_max" in static_text(form.query_one("#title", Static))
