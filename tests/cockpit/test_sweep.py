"""The sweep comparison at 80×24: group rows with each point's args and metric, the Sweep
screen (sortable points table, overlaid curves), and the link from a member's Job screen.
Homes are real job folders (Parquet parts, args.json, events through the real writers);
one test runs a real 2-point quant-train sweep in systemd units."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from blut.cockpit.app import CockpitApp
from blut.cockpit.plot import Plot
from blut.cockpit.screens.job import JobScreen
from blut.cockpit.screens.jobs import JobsScreen
from blut.cockpit.screens.sweep import SweepScreen
from blut.cockpit.sweeps import COLORS, SweepCache, member_label
from blut.jobs.sweeps import build_sweep
from blut.status.metrics import read_metrics
from tests.cockpit.conftest import action_names, make_app, palette_titles, static_text, wait_for
from tests.cockpit.sweephome import SWEEP, losses, sweep_member, three_point_sweep, with_train

SIZE = (80, 24)
GROUP = f"sweep:{SWEEP}"
FAST, SLOW, FAILED = "20250615-120001-aaa1", "20250615-120002-aaa2", "20250615-120003-aaa3"


# ---- pure parts -----------------------------------------------------------------------


def test_sweep_cache_loads_once_per_change_and_not_twice_at_once() -> None:
    cache = SweepCache(refresh=2.0)
    mark = (("a", 1), ("b", 1))
    assert cache.due("s", mark, now=0.0)
    assert not cache.due("s", mark, now=0.1)  # one load at a time
    data = build_sweep("s", [("a", {"lr": 1}, {}), ("b", {"lr": 2}, {})])
    cache.store("s", data, mark, now=0.5)
    assert cache.get("s") is data and cache.version == 1
    assert not cache.due("s", mark, now=10.0)  # nothing changed: an ended sweep is read once
    moved = (("a", 2), ("b", 1))
    assert not cache.due("s", moved, now=1.0)  # changed, but the last load is too recent
    assert cache.due("s", moved, now=2.6)
    cache.store("s", None, moved, now=3.0)  # a failed load keeps the old data, retried later
    assert cache.get("s") is data
    assert cache.due("s", moved, now=5.1)


def test_a_sweep_screen_not_painted_yet_has_no_selected_job() -> None:
    # the feed asks the top screen for its job as soon as it is pushed, before compose
    assert SweepScreen(SWEEP).selected_job_id is None


def test_member_label_shows_args_and_the_primary_metric() -> None:
    curves = {"val_loss": ((1.0, 0.9), (2.0, 0.53214)), "lr": ((1.0, 0.1),)}
    data = build_sweep("s", [("a", with_train(lr=0.01), curves), ("b", with_train(lr=0.1), {})])
    assert member_label(data, "a", "quant-train").plain == "lr=0.01  0.5321"
    assert member_label(data, "b", "quant-train").plain == "lr=0.1"  # nothing reported yet
    assert member_label(None, "a", "quant-train").plain == "quant-train"  # not loaded yet


# ---- Pilot, 80×24 -------------------------------------------------------------------------


def jobs_screen(app: CockpitApp) -> JobsScreen:
    screen = app.screen
    assert isinstance(screen, JobsScreen)
    return screen


def name_cells(screen: JobsScreen) -> dict[str, str]:
    """Row key → the plain text of its NAME cell, as the table shows it."""
    table = screen.table
    return {key: table.get_cell(key, "name").plain for key in screen._keys}


def cells(screen: SweepScreen) -> list[dict[str, str]]:
    """The points table as shown: one {column label: text} per row, in row order."""
    table = screen.query_one("#points", DataTable)
    labels = [str(c.label.plain).split(" ")[0] or "color" for c in table.columns.values()]
    return [
        dict(zip(labels, (str(getattr(v, "plain", v)) for v in table.get_row_at(i)), strict=True))
        for i in range(table.row_count)
    ]


def header(screen: SweepScreen) -> list[str]:
    table = screen.query_one("#points", DataTable)
    return [c.label.plain for c in table.columns.values()]


def fits(screen: SweepScreen) -> bool:
    """The table needs no sideways scrolling."""
    table = screen.query_one("#points", DataTable)
    return table.virtual_size.width <= table.size.width


async def open_sweep(app: CockpitApp, pilot: Pilot[Any]) -> SweepScreen:
    await wait_for(pilot, lambda: len(app.state.jobs) == 3 and not app.state.loading)
    screen = jobs_screen(app)
    await wait_for(pilot, lambda: screen._keys == [GROUP])
    await pilot.press("enter")
    sweep = app.screen
    assert isinstance(sweep, SweepScreen) and sweep.sweep == SWEEP
    await wait_for(pilot, lambda: sweep.data is not None and len(sweep._keys) == 3)
    return sweep


@pytest.mark.anyio
async def test_group_rows_show_each_points_args_and_final_metric(blut_home: Path) -> None:
    three_point_sweep(blut_home)
    app = make_app(blut_home)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(app.state.jobs) == 3 and not app.state.loading)
        screen = jobs_screen(app)
        await wait_for(pilot, lambda: screen._keys == [GROUP])
        await pilot.press("space")  # expands
        await wait_for(pilot, lambda: name_cells(screen).get(FAST, "").startswith("└ lr="))
        names = name_cells(screen)  # two args vary: at 80 columns the metric is cut off
        assert names[FAST].startswith("└ lr=0.01 hidden=3")
        assert names[SLOW].startswith("└ lr=0.001 hidden=")
        await pilot.resize_terminal(110, 24)
        await wait_for(pilot, lambda: name_cells(screen)[FAST].endswith("0.55"))
        names = name_cells(screen)
        assert names[FAST] == "└ lr=0.01 hidden=32  0.55"  # the final val_loss
        assert names[SLOW] == "└ lr=0.001 hidden=64  1.408"
        assert names[FAILED] == "└ lr=0.1 hidden=32  2.2"
        assert "val_loss" in name_cells(screen)[GROUP]  # the group row names the metric
        assert "sweep" in action_names(app)  # offered on the group row
        await pilot.press("down", "w")  # from a member row: its sweep
        assert isinstance(app.screen, SweepScreen) and app.screen.sweep == SWEEP


@pytest.mark.anyio
async def test_sweep_screen_compares_sorts_and_plots_every_point(blut_home: Path) -> None:
    three_point_sweep(blut_home)
    app = make_app(blut_home)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_sweep(app, pilot)
        title = static_text(screen.query_one("#title", Static), width=80)
        assert SWEEP in screen.sub_title and title.startswith("quant-train ×3")
        assert "2 succeeded" in title and "1 failed" in title
        assert "varies train.lr, train.hidden" in title.splitlines()[0]  # on one line
        assert header(screen)[:4] == [" ", "lr ▲", "hidden", "STATE"]
        assert header(screen)[4:6] == ["val_loss", "min"]
        rows = cells(screen)
        assert [(r["lr"], r["hidden"], r["STATE"]) for r in rows] == [
            ("0.001", "64", "succeeded"),
            ("0.01", "32", "succeeded"),
            ("0.1", "32", "failed"),
        ]
        assert [r["val_loss"] for r in rows] == ["1.408", "0.55", "2.2"]
        assert fits(screen)

        await pilot.press("s", "s")  # lr → hidden → STATE
        assert header(screen)[3] == "STATE ▲"
        assert [r["STATE"] for r in cells(screen)] == ["failed", "succeeded", "succeeded"]
        await pilot.press("s")  # → val_loss (final): best first
        assert header(screen)[4] == "val_loss ▲" and "▲" not in header(screen)[1]
        assert [r["lr"] for r in cells(screen)] == ["0.01", "0.001", "0.1"]
        await pilot.press("r")
        assert header(screen)[4] == "val_loss ▼"
        assert [r["lr"] for r in cells(screen)] == ["0.1", "0.001", "0.01"]
        await pilot.resize_terminal(100, 24)  # room for val_accuracy: higher is better
        await wait_for(pilot, lambda: "val_accuracy" in header(screen))
        while not header(screen)[8].startswith("val_accuracy "):
            await pilot.press("s")
        assert header(screen)[8] == "val_accuracy ▼"  # best first
        assert [r["lr"] for r in cells(screen)] == ["0.001", "0.01", "0.1"]  # 3 epochs, 3, 1
        await pilot.resize_terminal(*SIZE)

        table = screen.query_one("#points", DataTable)
        columns = list(table.columns.values())
        x = sum(c.get_render_width(table) for c in columns[:2]) + 1  # the hidden column
        await pilot.click("#points", offset=(x, 0))
        assert header(screen)[2] == "hidden ▲"
        assert [r["hidden"] for r in cells(screen)] == ["32", "32", "64"]
        await pilot.click("#points", offset=(x, 0))  # again: reversed
        assert header(screen)[2] == "hidden ▼"

        plot = screen.query_one("#curves", Plot)
        assert plot.heading == "val_loss"
        labels = [c.label for c in plot.curves]
        assert labels == ["lr=0.001 hidden=64", "lr=0.01 hidden=32", "lr=0.1 hidden=32"]
        assert [c.style for c in plot.curves] == list(COLORS[:3])
        assert [len(c.points) for c in plot.curves] == [3, 3, 1]
        legend = static_text(screen.query_one("#legend", Static))
        assert "━ lr=0.001 hidden=64" in legend and "━ lr=0.1 hidden=32" in legend
        await pilot.press("m")
        assert plot.heading == "train_loss" and len(plot.curves) == 3
        await pilot.press("m", "m")
        assert plot.heading == "val_loss"

        await pilot.press("home", "enter")  # opens the point under the cursor
        job = app.screen
        assert isinstance(job, JobScreen) and job.job_id == SLOW  # hidden ▼: 64 first
        await pilot.press("escape")
        assert app.screen is screen


@pytest.mark.anyio
async def test_losses_spanning_decades_are_plotted_on_a_log_axis(blut_home: Path) -> None:
    sweep_member(blut_home, FAST, with_train(lr=0.1), losses(10.0, 0.1))  # 11 → 0.11
    sweep_member(blut_home, SLOW, with_train(lr=0.01), losses(10.0, 0.5))
    app = make_app(blut_home)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(app.state.jobs) == 2 and not app.state.loading)
        await wait_for(pilot, lambda: jobs_screen(app)._keys == [GROUP])
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, SweepScreen)
        await wait_for(pilot, lambda: len(screen._keys) == 2)
        plot = screen.query_one("#curves", Plot)
        assert plot.log_y and str(plot.border_title).startswith("val_loss (log)")
        assert [c.label for c in plot.curves] == ["lr=0.01", "lr=0.1"]


@pytest.mark.anyio
async def test_a_members_job_screen_links_to_its_sweep(blut_home: Path) -> None:
    three_point_sweep(blut_home)
    app = make_app(blut_home, open_job=SLOW)
    async with app.run_test(size=SIZE) as pilot:
        job = app.screen
        assert isinstance(job, JobScreen)
        await wait_for(pilot, lambda: job.has_class("member"))
        line = job.query_one("#sweep", Static)
        await wait_for(pilot, lambda: "point" in static_text(line))
        text = static_text(line, width=80)
        assert SWEEP in text and "point 1/3: lr=0.001 hidden=64" in text and "w:" in text
        assert line.region.height == 1 and line.region.y < 3  # under the title, on screen
        assert "sweep" in action_names(app)
        await pilot.press("w")
        sweep = app.screen
        assert isinstance(sweep, SweepScreen) and sweep.sweep == SWEEP


@pytest.mark.anyio
async def test_the_sweep_screen_offers_nothing_mutating_when_readonly(blut_home: Path) -> None:
    three_point_sweep(blut_home)
    app = make_app(blut_home, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await open_sweep(app, pilot)
        assert {"sort", "reverse", "metric", "open"} <= action_names(app)
        assert not action_names(app) & {"cancel", "resume", "rerun", "launch", "prune"}
        titles = palette_titles(app)
        assert f"Open job {SLOW}" in titles  # the point under the cursor
        assert not [t for t in titles if t.startswith(("Cancel", "Resume", "Re-run"))]


@pytest.mark.anyio
async def test_a_job_outside_sweeps_offers_no_sweep_key(three_jobs: Path) -> None:
    app = make_app(three_jobs)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(jobs_screen(app)._keys) == 3)
        assert "sweep" not in action_names(app)
        await pilot.press("enter")
        job = app.screen
        assert isinstance(job, JobScreen)
        assert "sweep" not in action_names(app) and not job.has_class("member")


@pytest.mark.anyio
@pytest.mark.systemd
@pytest.mark.timeout(300)
async def test_a_real_quant_sweep_compared_live(
    blut_home: Path, manager_env: dict[str, str]
) -> None:
    from blut.jobs.api import submit_points
    from blut.jobs.recipes import find
    from blut.jobs.store import JobStore

    recipe = find("quant-train")
    quick = ["train.epochs=2", "train.hidden=8", "train.threads=1"]
    points = recipe.resolve(sets=quick, sweeps=["train.lr=0.001,0.003"])
    submitted = submit_points(JobStore(blut_home), recipe, points)
    assert submitted.sweep is not None and len(submitted.jobs) == 2
    app = CockpitApp(blut_home, system=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = jobs_screen(app)
        await wait_for(pilot, lambda: screen._keys == [f"sweep:{submitted.sweep}"], 30)
        await pilot.press("enter")
        sweep = app.screen
        assert isinstance(sweep, SweepScreen)
        ended = lambda: all(  # noqa: E731
            app.state.jobs[j.id].view.terminal for j in submitted.jobs if j.id in app.state.jobs
        )
        await wait_for(pilot, lambda: len(app.state.jobs) == 2 and ended(), 240)
        await wait_for(pilot, lambda: all(r.get("STATE") == "succeeded" for r in cells(sweep)))
        await wait_for(pilot, lambda: all(r.get("val_loss", "-") != "-" for r in cells(sweep)))
        rows = cells(sweep)
        assert [r["lr"] for r in rows] == ["0.001", "0.003"]
        for point in sweep.data.points if sweep.data else ():
            table = read_metrics(blut_home / "jobs" / point.job_id / "stages" / "train" / "metrics")
            final = table.column("val_loss").to_pylist()[-1]
            row = rows[sweep._keys.index(point.job_id)]
            assert float(row["val_loss"]) == pytest.approx(final, rel=1e-3)
        assert fits(sweep)
        plot = sweep.query_one("#curves", Plot)
        assert [c.label for c in plot.curves] == ["lr=0.001", "lr=0.003"]
        assert all(len(c.points) == 2 for c in plot.curves)  # one point per epoch
        await pilot.press("escape", "space")
        members = [j.id for j in submitted.jobs]
        await wait_for(pilot, lambda: all(k in screen._cells for k in members))
        await wait_for(pilot, lambda: all("lr=0.00" in name_cells(screen)[k] for k in members))


def test_sweep_screen_snapshot_80x24(blut_home: Path, snap_compare: Any) -> None:
    three_point_sweep(blut_home)
    app = make_app(blut_home)

    async def run_before(pilot: Pilot[Any]) -> None:
        await open_sweep(app, pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
