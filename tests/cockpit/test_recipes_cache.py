"""Pilot tests: the Recipes form (validation, sweeps, a real launch), the Cache screen
(prune with a preview and a confirmation), recipe jobs on the Job screen, sweep groups,
readonly."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from textual.widgets import Button, DataTable, Input, Static

from blut.cockpit import recipeform
from blut.cockpit.app import CockpitApp
from blut.cockpit.screens.cache import CacheScreen, PruneScreen
from blut.cockpit.screens.dialogs import ConfirmScreen
from blut.cockpit.screens.job import JobScreen
from blut.cockpit.screens.jobs import JobsScreen
from blut.cockpit.screens.recipes import RecipeFormScreen, RecipesScreen
from blut.jobs.recipes import find
from blut.jobs.store import JobStore
from blut.status.events import JobStarted, JobSubmitted
from tests.cockpit.conftest import make_app, static_text, wait_for
from tests.cockpit.fakejobs import T0, emit, recipe_job

SIZE = (100, 30)
pytestmark = pytest.mark.anyio


def bindings(app: CockpitApp) -> set[str]:
    return {b.binding.action for b in app.screen.active_bindings.values()}


def form_input(screen: RecipeFormScreen, key: str) -> Input:
    index = next(i for i, f in enumerate(screen.fields) if f.key == key)
    return screen.query_one(f"#f{index}", Input)


async def open_smoke_form(app: CockpitApp, pilot: object) -> RecipeFormScreen:
    """Recipes screen → highlight `smoke` → Enter."""
    from textual.widgets import OptionList

    await pilot.press("3")  # type: ignore[attr-defined]
    catalog = app.screen
    assert isinstance(catalog, RecipesScreen)
    options = catalog.query_one(OptionList)
    options.highlighted = next(
        i for i in range(options.option_count) if options.get_option_at_index(i).id == "smoke"
    )
    await pilot.pause()  # type: ignore[attr-defined]
    assert "smoke" in static_text(catalog.query_one("#detail-body", Static))
    await pilot.press("enter")  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]
    form = app.screen
    assert isinstance(form, RecipeFormScreen) and form.recipe.name == "smoke"
    return form


def add_cache_entries(home: Path, n: int) -> None:
    from blut.jobs.cache import Cache
    from blut.jobs.keys import KeyParts

    cache = Cache(home)
    try:
        for i in range(n):
            staging = home / f"staging-{i}"
            staging.mkdir()
            (staging / "out.bin").write_bytes(bytes([i]) * (1000 * (i + 1)))
            parts = KeyParts(f"stage{i}", ("prog",), 1, {}, {"i": i})
            cache.commit(parts, staging, job=f"job-{i}", stage=f"stage{i}")
    finally:
        cache.close()


# ---- the form logic ---------------------------------------------------------------


def test_form_fields_parse_and_sweep() -> None:
    recipe = find("smoke")
    fields = {f.key: f for f in recipeform.fields(recipe.args_schema)}
    assert fields["make.count"].kind == "integer" and fields["make.count"].group == "make"
    assert fields["make.fail"].kind == "boolean"
    assert recipeform.parse(fields["make.count"], "8") == [8]
    assert recipeform.parse(fields["make.count"], "8, 16") == [8, 16]
    with pytest.raises(ValueError, match=">= 1"):
        recipeform.parse(fields["make.count"], "0")
    with pytest.raises(ValueError, match="whole number"):
        recipeform.parse(fields["make.count"], "2.5")
    assert recipeform.parse(fields["make.sleep"], "1e-3") == [0.001]
    base = recipe.defaults()
    points = recipeform.points(
        base, {"make.count": [8, 16], "make.seed": [1]}, list(fields.values())
    )
    assert [(p["make"]["count"], p["make"]["seed"]) for p in points] == [(8, 1), (16, 1)]
    assert base["make"]["count"] == 8 and base["make"]["seed"] == 0  # untouched


# ---- screens ------------------------------------------------------------------------


async def test_form_validates_inline_and_counts_sweep_jobs(blut_home: Path) -> None:
    app = make_app(blut_home)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_smoke_form(app, pilot)
        count = form_input(screen, "make.count")
        count.value = "0"
        await pilot.pause()
        assert "make.count" in screen.errors and ">= 1" in screen.errors["make.count"]
        assert "to fix" in static_text(screen.query_one("#summary", Static))
        await pilot.press("ctrl+l")  # refused: nothing submitted
        assert isinstance(app.screen, RecipeFormScreen)
        assert not (blut_home / "jobs").exists() or not list((blut_home / "jobs").iterdir())
        count.value = "4,8,16"
        await pilot.pause()
        assert not screen.errors
        assert "3 jobs" in static_text(screen.query_one("#summary", Static))
        await pilot.press("escape")
        assert isinstance(app.screen, RecipesScreen)


async def test_recipe_text_has_no_raw_markup_and_the_focused_field_stands_out(
    blut_home: Path,
) -> None:
    from textual.widgets import OptionList

    app = make_app(blut_home)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        catalog = app.screen
        assert isinstance(catalog, RecipesScreen)
        options = catalog.query_one(OptionList)
        options.highlighted = next(
            i for i in range(options.option_count) if options.get_option_at_index(i).id == "smoke"
        )
        await pilot.pause()
        detail = static_text(catalog.query_one("#detail-body", Static))
        assert "``" not in detail and "The smoke recipe" in detail
        form = await open_smoke_form(app, pilot)
        focused, other = form_input(form, "make.count"), form_input(form, "make.seed")
        focused.focus()
        await pilot.pause()
        assert focused.has_focus
        a, b = focused.styles.background, other.styles.background
        assert abs(a.brightness - b.brightness) > 0.08 or a.hsl.h != b.hsl.h, (a, b)
        row_label = focused.parent.query_one("Label")  # type: ignore[union-attr]
        assert row_label.styles.text_style.reverse


async def test_readonly_hides_launch_and_prune(blut_home: Path) -> None:
    add_cache_entries(blut_home, 2)
    app = make_app(blut_home, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await open_smoke_form(app, pilot)
        assert "launch" not in bindings(app)
        assert not app.screen.query("#launch")
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert not (blut_home / "jobs").exists() or not list((blut_home / "jobs").iterdir())
        await pilot.press("escape", "escape", "4")
        screen = app.screen
        assert isinstance(screen, CacheScreen)
        await wait_for(pilot, lambda: screen.listing is not None)
        assert len(screen.listing.entries) == 2  # type: ignore[union-attr]
        assert "prune" not in bindings(app)
        await pilot.press("P")
        assert not isinstance(app.screen, PruneScreen)


async def test_cache_prune_previews_then_confirms(blut_home: Path) -> None:
    add_cache_entries(blut_home, 3)
    app = make_app(blut_home)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, CacheScreen)
        await wait_for(pilot, lambda: screen.listing is not None)
        assert len(screen.listing.entries) == 3  # type: ignore[union-attr]
        assert "3 entries" in static_text(screen.query_one("#totals", Static))
        await pilot.press("p")  # p is the pager on other screens: nothing here
        assert isinstance(app.screen, CacheScreen)
        await pilot.press("P")
        assert isinstance(app.screen, PruneScreen)
        prune = app.screen
        await pilot.press(*"3K")  # max total size 3K: the oldest entries go
        await wait_for(pilot, lambda: prune.preview is not None)
        report = prune.preview
        assert report is not None and report.dry_run and len(report.removed) == 2
        assert "would remove 2 entries" in static_text(prune.query_one("#preview", Static))
        await pilot.click("#prune")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # declined: nothing removed
        assert isinstance(app.screen, CacheScreen)
        await pilot.pause(0.2)
        from blut.jobs.cache import Cache

        assert len(Cache(blut_home).entries()) == 3
        await pilot.press("P", *"3K")
        prune = app.screen
        assert isinstance(prune, PruneScreen)
        await wait_for(pilot, lambda: prune.preview is not None)
        await pilot.press("ctrl+p")  # the command palette's key everywhere: never prunes
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        if app.screen is not prune:
            await pilot.press("escape")
        assert app.screen is prune
        await pilot.press("enter", "enter", "enter")  # through the fields to Prune…
        assert prune.query_one("#prune", Button).has_focus
        await pilot.press("enter")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(
            pilot,
            lambda: screen.listing is not None and len(screen.listing.entries) == 1,
        )
        assert len(Cache(blut_home).entries()) == 1


async def test_cache_ages_move_on(blut_home: Path) -> None:
    add_cache_entries(blut_home, 2)
    now = [time.time()]
    app = make_app(blut_home, clock=lambda: now[0])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, CacheScreen)
        await wait_for(pilot, lambda: screen.listing is not None)
        table = screen.query_one("#entries", DataTable)
        before = [table.get_row_at(i)[4:] for i in range(table.row_count)]
        now[0] += 3 * 3600
        screen._refresh_ages()
        after = [table.get_row_at(i)[4:] for i in range(table.row_count)]
        assert after != before and all(used.endswith(" ago") for _, used in after)
        assert all(age.startswith("3h") for age, _ in after), after


def smoke_job(home: Path, job_id: str, sweep: str | None = None) -> None:
    job = recipe_job(home, job_id, "smoke")
    emit(job, JobSubmitted(job=job_id, ts=T0, name="smoke", recipe="smoke", sweep=sweep))


async def test_recipe_job_stages_and_sweep_groups(blut_home: Path) -> None:
    from blut.status.events import JobFailed, StageCached, StageFailed, StageStarted

    smoke_job(blut_home, "20250615-100000-aaaa")
    job = JobStore(blut_home).get("20250615-100000-aaaa")
    emit(
        job,
        JobStarted(job=job.id, ts=T0 + 1),
        StageCached(job=job.id, stage="make", ts=T0 + 1, artifact="abc123"),
        StageStarted(job=job.id, stage="square", ts=T0 + 2),
        StageFailed(job=job.id, stage="square", ts=T0 + 3, reason="exit", exit_code=3),
        StageFailed(
            job=job.id, stage="total", ts=T0 + 3, reason="skipped", detail="upstream square"
        ),
        JobFailed(job=job.id, ts=T0 + 3, reason="exit"),
    )
    for n in range(3):
        smoke_job(blut_home, f"20250615-11000{n}-bbb{n}", sweep="sweep-20250615-110000-abcd")
    app = make_app(blut_home)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(app.state.jobs) == 4 and not app.state.loading)
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await wait_for(pilot, lambda: len(screen._keys) == 2)  # one job, one collapsed group
        assert screen._keys[0] == "sweep:sweep-20250615-110000-abcd"
        await pilot.press("space")  # expands
        await wait_for(pilot, lambda: len(screen._keys) == 5)
        await pilot.press("space")  # collapses
        await wait_for(pilot, lambda: len(screen._keys) == 2)
        await pilot.press("down", "enter")
        job_screen = app.screen
        assert isinstance(job_screen, JobScreen) and job_screen.recipe
        await wait_for(pilot, lambda: job_screen.plan is not None)
        job_screen.update_state()
        assert job_screen._stage_keys == ["make", "square", "cube", "total"]
        text = static_text(job_screen.query_one("#explain-body", Static))
        assert "square" in text and "blut plan resume" in text and "skipped" in text
        assert {"resume", "rerun"} <= bindings(app)
        await pilot.press("e")
        form = app.screen
        assert isinstance(form, RecipeFormScreen) and form.prefilled
        assert form_input(form, "make.count").value == "8"


@pytest.mark.systemd
@pytest.mark.timeout(180)
async def test_launch_from_the_form_creates_a_real_job(
    blut_home: Path, manager_env: dict[str, str]
) -> None:
    app = CockpitApp(blut_home, system=False)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_smoke_form(app, pilot)
        form_input(form, "make.count").value = "5"
        await pilot.pause()
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen), timeout=60)
        job_id = app.screen.selected_job_id
        assert job_id is not None and form.launched == [job_id]
        job = JobStore(blut_home).get(job_id)
        assert json.loads((job.dir / "args.json").read_text())["make"]["count"] == 5
        await wait_for(pilot, lambda: job_id in app.state.jobs, timeout=30)
        deadline = time.monotonic() + 120
        while not app.state.jobs[job_id].view.terminal and time.monotonic() < deadline:
            await pilot.pause(0.2)
        assert app.state.jobs[job_id].view.state == "succeeded"
        assert set(app.state.jobs[job_id].view.stages) == {"make", "square", "cube", "total"}
