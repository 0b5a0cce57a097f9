"""Pilot tests against REAL recipe jobs (systemd units, a private BLUT_HOME): the failure
panel, re-run with edited args, and resume after the executor was killed; plus what
`--readonly` hides (bindings and command palette entries) on every screen."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static, Switch

from blut.cockpit import app as app_module
from blut.cockpit.app import CockpitApp
from blut.cockpit.screens.cache import CacheScreen, PruneScreen
from blut.cockpit.screens.dialogs import ConfirmScreen
from blut.cockpit.screens.job import JobScreen
from blut.cockpit.screens.jobs import JobsScreen
from blut.cockpit.screens.recipes import RecipeFormScreen, RecipesScreen
from blut.jobs.api import submit_recipe
from blut.jobs.recipes import find
from blut.jobs.store import Job, JobStore
from blut.status.events import JobFailed, JobStarted, JobSubmitted, StageFailed, StageStarted
from tests.cockpit.conftest import (
    action_names,
    form_input,
    form_widget,
    make_app,
    palette_titles,
    static_text,
    wait_for,
)
from tests.cockpit.fakejobs import T0, emit, recipe_job

SIZE = (100, 30)
pytestmark = pytest.mark.anyio

MUTATING_TITLES = ("Cancel", "Resume", "Re-run", "Launch", "Prune")


def merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with the nested values of ``over`` laid on top."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def submit_smoke(home: Path, over: Mapping[str, Any]) -> Job:
    """A real smoke job (its executor runs in a systemd unit) with ``over`` on the defaults."""
    recipe = find("smoke")
    job, warning = submit_recipe(JobStore(home), recipe, merged(recipe.defaults(), over))
    assert warning is None, warning
    return job


def view_of(app: CockpitApp, job_id: str) -> Any:
    job = app.state.jobs.get(job_id)
    return job.view if job is not None else None


def stage_state(app: CockpitApp, job_id: str, stage: str) -> str | None:
    view = view_of(app, job_id)
    found = view.stages.get(stage) if view is not None else None
    return found.state if found is not None else None


@pytest.mark.systemd
@pytest.mark.timeout(300)
async def test_failed_recipe_job_panel_then_rerun_with_edited_args(
    blut_home: Path, manager_env: dict[str, str], no_config: Path
) -> None:
    job = submit_smoke(blut_home, {"square": {"fail": True}})
    app = CockpitApp(blut_home, system=False, open_job=job.id)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        screen = app.screen
        assert isinstance(screen, JobScreen) and screen.recipe
        await wait_for(
            pilot, lambda: view_of(app, job.id) is not None and view_of(app, job.id).terminal, 120
        )
        assert view_of(app, job.id).state == "failed"
        await wait_for(pilot, lambda: screen.plan is not None)
        screen.update_state()
        assert screen.has_class("failed")
        text = static_text(screen.query_one("#explain-body", Static))
        assert "stage" in text and "square" in text and "exited with code 3" in text
        assert f"blut plan resume {job.id}" in text and "total" in text  # skipped downstream
        assert {"resume", "rerun"} <= action_names(app)

        await pilot.press("e")
        form = app.screen
        assert isinstance(form, RecipeFormScreen) and form.prefilled
        assert form_input(form, "make.count").value == "8"
        fail = form_widget(form, "square.fail")
        assert isinstance(fail, Switch) and fail.value is True
        form_input(form, "make.count").value = "5"
        fail.value = False
        await pilot.pause()
        assert not form.errors
        await pilot.press("ctrl+l")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, JobScreen) and app.screen.job_id != job.id,
            timeout=60,
        )
        new_screen = app.screen
        assert isinstance(new_screen, JobScreen)
        new_id = new_screen.job_id
        assert form.launched == [new_id]
        args = json.loads((blut_home / "jobs" / new_id / "args.json").read_text())
        old = json.loads((job.dir / "args.json").read_text())
        assert args["make"]["count"] == 5 and args["square"]["fail"] is False
        assert old["make"]["count"] == 8 and old["square"]["fail"] is True  # untouched
        assert {k: v for k, v in args.items() if k not in ("make", "square")} == {
            k: v for k, v in old.items() if k not in ("make", "square")
        }
        await wait_for(
            pilot, lambda: view_of(app, new_id) is not None and view_of(app, new_id).terminal, 120
        )
        assert view_of(app, new_id).state == "succeeded"


@pytest.mark.systemd
@pytest.mark.timeout(300)
async def test_resume_after_the_executor_was_killed(
    blut_home: Path, manager_env: dict[str, str], no_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "RECONCILE_EVERY", 1.0)  # notice the lost executor soon
    job = submit_smoke(blut_home, {"square": {"sleep": 3}})
    app = CockpitApp(blut_home, system=False, open_job=job.id)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        screen = app.screen
        assert isinstance(screen, JobScreen)
        await wait_for(pilot, lambda: stage_state(app, job.id, "square") == "running", 60)
        assert screen.check_action("resume", ()) is None  # greyed out while it runs
        subprocess.run(
            ["systemctl", "--user", "kill", "--signal=KILL", f"{job.spec.driver_unit}.service"],
            check=True,
        )
        # the cockpit reconciles the quiet job and records the lost executor
        await wait_for(pilot, lambda: view_of(app, job.id).state == "failed", 60)
        assert "blut plan resume" in (view_of(app, job.id).detail or "")
        await wait_for(pilot, lambda: screen.check_action("resume", ()) is True)
        await wait_for(pilot, lambda: "resume" in action_names(app))
        await pilot.press("u")
        await wait_for(pilot, lambda: view_of(app, job.id).state == "succeeded", 120)
        stages = view_of(app, job.id).stages
        assert set(stages) == {"make", "square", "cube", "total"}
        assert {s.state for s in stages.values()} <= {"succeeded", "cached"}
        assert not screen.has_class("failed")
    assert job.view().state == "succeeded"


# ---- readonly ---------------------------------------------------------------------


def failed_recipe_job(home: Path, job_id: str) -> None:
    """A smoke job folder whose `square` failed (no executor: display only)."""
    job = recipe_job(home, job_id, "smoke")
    emit(
        job,
        JobSubmitted(job=job_id, ts=T0, name="smoke", recipe="smoke"),
        JobStarted(job=job_id, ts=T0 + 1),
        StageStarted(job=job_id, stage="square", ts=T0 + 2),
        StageFailed(job=job_id, stage="square", ts=T0 + 3, reason="exit", exit_code=3),
        JobFailed(job=job_id, ts=T0 + 3, reason="exit"),
    )


def add_cache_entry(home: Path) -> None:
    from blut.jobs.cache import Cache
    from blut.jobs.keys import KeyParts

    staging = home / "staging"
    staging.mkdir(parents=True)
    (staging / "out.bin").write_bytes(b"x" * 1000)
    cache = Cache(home)
    try:
        cache.commit(KeyParts("make", ("prog",), 1, {}, {}), staging, job="j", stage="make")
    finally:
        cache.close()


async def walk_screens(app: CockpitApp, pilot: Any, job_id: str) -> dict[str, tuple[set[str], str]]:
    """Visit Jobs, Job (a failed recipe job), the recipe form and Cache; return each one's
    bound actions and palette titles."""
    seen: dict[str, tuple[set[str], str]] = {}

    def record(name: str) -> None:
        seen[name] = (action_names(app), "\n".join(palette_titles(app)))

    await wait_for(pilot, lambda: job_id in app.state.jobs and not app.state.loading)
    screen = app.screen
    assert isinstance(screen, JobsScreen)
    await wait_for(pilot, lambda: screen.selected_job_id == job_id)
    record("jobs")
    await pilot.press("enter")
    job_screen = app.screen
    assert isinstance(job_screen, JobScreen) and job_screen.recipe
    await wait_for(pilot, lambda: job_screen.plan is not None and job_screen.has_class("failed"))
    record("job")
    await pilot.press("e")  # refused in readonly: stays on the Job screen
    await pilot.pause()
    if app.readonly:
        assert app.screen is job_screen
    else:
        assert isinstance(app.screen, RecipeFormScreen)
        await pilot.press("escape")
    if app.readonly:  # (writable, u would start a real executor)
        await pilot.press("u")
        await pilot.pause()
        assert app.screen is job_screen
    await pilot.press("escape", "3", "enter")
    await wait_for(pilot, lambda: isinstance(app.screen, RecipeFormScreen))
    record("form")
    await pilot.press("escape")
    assert isinstance(app.screen, RecipesScreen)
    await pilot.press("escape", "4")
    cache = app.screen
    assert isinstance(cache, CacheScreen)
    await wait_for(pilot, lambda: cache.listing is not None and len(cache.listing.entries) == 1)
    record("cache")
    await pilot.press("P")
    await pilot.pause()
    if app.readonly:
        assert app.screen is cache
    else:
        assert isinstance(app.screen, PruneScreen)
        await pilot.press("escape")
    return seen


async def test_readonly_hides_every_mutating_key_and_palette_entry(blut_home: Path) -> None:
    job_id = "20250615-100000-aaaa"
    failed_recipe_job(blut_home, job_id)
    add_cache_entry(blut_home)
    # the same walk, writable: every mutating action is there
    app = make_app(blut_home)
    async with app.run_test(size=SIZE) as pilot:
        seen = await walk_screens(app, pilot, job_id)
    # the job failed: resume and re-run are offered, cancel is not (nothing left to stop)
    assert f"Resume job {job_id}" in seen["jobs"][1]
    assert "cancel" not in seen["jobs"][0] and f"Cancel job {job_id}" not in seen["jobs"][1]
    assert {"resume", "rerun"} <= seen["job"][0] and "cancel" not in seen["job"][0]
    assert f"Resume job {job_id}" in seen["job"][1] and f"Re-run job {job_id}" in seen["job"][1]
    form_titles = seen["form"][1].splitlines()
    assert "launch" in seen["form"][0] and any(t.startswith("Launch ") for t in form_titles)
    assert "prune" in seen["cache"][0] and "Prune the cache" in seen["cache"][1]

    app = make_app(blut_home, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        seen = await walk_screens(app, pilot, job_id)
        assert not isinstance(app.screen, ConfirmScreen)
    for name, (actions, titles) in seen.items():
        assert not actions & {"cancel", "resume", "rerun", "launch", "prune"}, (name, actions)
        for line in titles.splitlines():
            assert not line.startswith(MUTATING_TITLES), (name, line)
        assert "Open job" in titles or name in ("form", "cache")  # the palette still works
    # nothing was submitted or resumed: still the one job, still failed
    assert [p.name for p in (blut_home / "jobs").iterdir()] == [job_id]
    assert JobStore(blut_home).get(job_id).view().state == "failed"
