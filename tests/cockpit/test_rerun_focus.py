"""`e` on a job a stage's memory ceiling killed opens the re-run form on that ceiling."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from blut.cockpit.screens.job import JobScreen
from blut.cockpit.screens.recipes import RecipeFormScreen
from blut.status.events import JobFailed, JobStarted, JobSubmitted, StageFailed, StageStarted
from tests.cockpit.conftest import make_app, static_text, wait_for
from tests.cockpit.fakejobs import T0, emit, recipe_job

pytestmark = pytest.mark.anyio
JOB = "20250615-120000-eeee"


def failed_quant_job(
    home: Path, stage: str, reason: str, *, ceiling: int = 64 << 20, peak: int | None = None
) -> None:
    """A quant-train job folder whose ``stage`` (under ``ceiling``) failed with ``reason``
    at ``peak`` (display only)."""
    job = recipe_job(home, JOB, "quant-train")
    emit(
        job,
        JobSubmitted(job=JOB, ts=T0, name="quant-train", recipe="quant-train"),
        JobStarted(job=JOB, ts=T0 + 1),
        StageStarted(job=JOB, stage=stage, ts=T0 + 2, memory_max=ceiling),
        StageFailed(
            job=JOB,
            stage=stage,
            ts=T0 + 3,
            reason=reason,  # type: ignore[arg-type]
            exit_code=137,
            peak_mem=peak,
        ),
        JobFailed(job=JOB, ts=T0 + 3, reason=reason),  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Opened:
    """The re-run form as `e` left it."""

    field: str
    """The dotted key of the focused field."""
    visible: bool
    """Whether that field is inside the form's scrolled region."""
    title: str
    value: str
    """What the focused field holds."""


async def press_rerun(home: Path) -> Opened:
    app = make_app(home, open_job=JOB)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        await wait_for(pilot, lambda: JOB in app.state.jobs and app.state.jobs[JOB].view.terminal)
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipeFormScreen))
        await pilot.pause()
        form, focused = app.screen, app.focused
        assert isinstance(form, RecipeFormScreen) and isinstance(focused, Input)
        scrolled = form.query_one("#form").region
        return Opened(
            field=form.fields[int(str(focused.id).removeprefix("f"))].key,
            visible=scrolled.contains_region(focused.region),
            title=" ".join(static_text(form.query_one("#title", Static)).split()),
            value=focused.value,
        )


async def test_an_oom_stage_opens_the_form_on_its_memory_max(blut_home: Path) -> None:
    failed_quant_job(blut_home, "train", "oom")
    opened = await press_rerun(blut_home)
    assert opened.field == "train.memory_max"
    assert opened.visible  # scrolled to, ~45 fields down
    assert "train ran out of memory" in opened.title


async def test_another_failure_opens_the_form_at_the_top(blut_home: Path) -> None:
    failed_quant_job(blut_home, "train", "exit")
    opened = await press_rerun(blut_home)
    assert opened.field == "encode.dataset" and "out of memory" not in opened.title
