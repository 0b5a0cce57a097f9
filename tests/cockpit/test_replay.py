"""Replay plays a job's stream through the Job screen: at any position it shows what a
live viewer saw then (issue: it was a raw event list, and showed a succeeded train stage
at 77 %), with speed keys and a scrubber."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from blut.cockpit.app import CockpitApp
from blut.cockpit.feed import JobDelta
from blut.cockpit.followlog import FollowLog
from blut.cockpit.plot import Plot
from blut.cockpit.screens.replay import ReplayScreen
from blut.cockpit.state import CockpitState
from blut.cockpit.timeline import StageLog, Timeline, load_timeline, stage_log
from blut.jobs.store import JobStore
from blut.status.events import (
    Event,
    JobDone,
    JobStarted,
    JobSubmitted,
    Log,
    Metric,
    Progress,
    Resources,
    StageDone,
    StageStarted,
)
from blut.status.jobstate import JobView
from tests.cockpit.conftest import make_app, wait_for
from tests.cockpit.fakejobs import T0, emit, make_job

pytestmark = pytest.mark.anyio

JOB = "20250615-120000-eeee"
M = 1 << 20
STEPS = 77
"""train reports progress up to 77 of 100, then succeeds (early stop)."""


def train_events() -> list[Event]:
    """encode, then train with progress, loss, memory and a log event every 10 steps."""
    j = JOB
    out: list[Event] = [
        JobSubmitted(job=j, ts=T0, name="quant-train", recipe="quant-train"),
        JobStarted(job=j, ts=T0 + 0.5),
        StageStarted(job=j, stage="encode", ts=T0 + 1, memory_max=256 * M),
        Log(job=j, stage="encode", ts=T0 + 1.5, msg="encoding 10 rows"),
        StageDone(job=j, stage="encode", ts=T0 + 3, peak_mem=80 * M),
        StageStarted(job=j, stage="train", ts=T0 + 3, memory_max=1024 * M),
    ]
    for s in range(1, STEPS + 1):
        ts = T0 + 3 + s
        out += [
            Progress(job=j, stage="train", ts=ts, step=s, total=100, unit="step"),
            Metric(job=j, stage="train", ts=ts, step=s, values={"train_loss": 3.0 / s}),
            Resources(job=j, stage="train", ts=ts, memory_bytes=(100 + s) * M, memory_max=1024 * M),
        ]
        if s % 10 == 0:
            out.append(Log(job=j, stage="train", ts=ts, msg=f"epoch {s // 10} done"))
    out += [
        StageDone(job=j, stage="train", ts=T0 + 4 + STEPS, peak_mem=(100 + STEPS) * M),
        JobDone(job=j, ts=T0 + 4 + STEPS),
    ]
    return out


def train_log() -> list[str]:
    lines = ["train: 100 steps"]
    for s in range(1, STEPS + 1):
        lines.append(f"step {s} loss {3.0 / s:.4f}")
        if s % 10 == 0:
            lines.append(f"epoch {s // 10} done")
    return [*lines, "early stop"]


def write_logs(home: Path, upto: int | None = None) -> None:
    """The stage logs (train's first ``upto`` lines only, when given)."""
    job = JobStore(home).load(home / "jobs" / JOB)
    for stage, lines in (("encode", ["encoding 10 rows", "encoded"]), ("train", train_log())):
        job.stage_dir(stage)
        job.log_path(stage).write_text("".join(f"{line}\n" for line in lines[:upto]))


@pytest.fixture
def trained(blut_home: Path) -> Path:
    """A finished recipe job: real job.json, status.jsonl (EventWriter) and stage logs."""
    job = make_job(blut_home, JOB, name="quant-train", memory_max=None)
    emit(job, *train_events())
    write_logs(blut_home)
    return blut_home


def same(a: JobView, b: JobView) -> bool:
    """Equal views (``events`` counts parsed lines: the live feed leaves plot-only ones
    unparsed until a plot needs them)."""
    return dataclasses.replace(a, events=0) == dataclasses.replace(b, events=0)


def cell(screen: ReplayScreen, stage: str, column: str) -> str:
    table = screen.query_one("#stages", DataTable)
    return str(table.get_cell(stage, column))


def points(screen: ReplayScreen) -> list[tuple[float, float]]:
    curves = screen.query_one("#metrics", Plot).curves
    return [p for c in curves for p in c.points]


async def opened(app: CockpitApp, pilot: Pilot[Any]) -> tuple[ReplayScreen, Timeline]:
    """The replay screen the app opened, once its timeline was read."""
    screen = app.screen
    assert isinstance(screen, ReplayScreen)
    await wait_for(pilot, lambda: screen.timeline is not None)
    assert screen.timeline is not None
    return screen, screen.timeline


async def test_replay_at_the_end_equals_the_final_live_state(trained: Path) -> None:
    app = make_app(trained, replay=JOB)
    async with app.run_test(size=(80, 24)) as pilot:
        screen, tl = await opened(app, pilot)
        await wait_for(pilot, lambda: JOB in app.state.jobs and app.state.jobs[JOB].loaded)
        await pilot.press("end")
        assert tl.position == len(tl)
        live = app.state.jobs[JOB]
        assert same(tl.job.view, live.view)
        assert cell(screen, "train", "state") == "succeeded"
        assert cell(screen, "train", "progress").endswith("100%")
        live_points = {n: s.values() for n, s in live.metrics.items()}
        assert {n: s.values() for n, s in tl.job.metrics.items()} == live_points
        assert points(screen) == live_points["train_loss"]
        assert len(points(screen)) == STEPS
        memory = screen.query_one("#memory", Plot).curves
        assert [p for c in memory for p in c.points] == live.memory["train"].values()
        log = screen.query_one("#log", FollowLog)
        assert log.line_count == len(train_log())
        bar = screen.query_one("#replaybar", Static)
        assert "100%" in str(bar.content) and f"{len(tl)}/{len(tl)}" in str(bar.content)


async def test_seeking_back_shows_fewer_points_and_log_lines(trained: Path) -> None:
    app = make_app(trained, replay=JOB)
    async with app.run_test(size=(80, 24)) as pilot:
        screen, tl = await opened(app, pilot)
        assert tl.position == 0  # opens at the start
        await pilot.press("end")
        end_points, end_lines = len(points(screen)), screen.query_one("#log", FollowLog).line_count
        await pilot.press("pageup", "pageup", "pageup")
        assert 0 < tl.position < len(tl)
        assert 0 < len(points(screen)) < end_points
        assert 0 < screen.query_one("#log", FollowLog).line_count < end_lines
        assert cell(screen, "train", "state") == "running"
        assert not cell(screen, "train", "progress").endswith("100%")
        # what a live viewer that had read exactly these events would hold
        live = CockpitState()
        live.apply(
            [JobDelta(JOB, spec=tl.spec, view=JobView(JOB), events=tl.events[: tl.position])],
            tl.time,
        )
        assert tl.job.view == live.jobs[JOB].view
        back = tl.position
        await pilot.press("left")
        assert tl.position < back
        await pilot.press("right", "right")
        assert tl.position > back - 1
        await pilot.press("home")
        assert tl.position == 0 and not points(screen)
        assert screen.query_one("#log", FollowLog).line_count == 0


async def test_speed_keys_and_playing_to_the_end(trained: Path) -> None:
    app = make_app(trained, replay=JOB)
    async with app.run_test(size=(80, 24)) as pilot:
        screen, tl = await opened(app, pilot)
        assert screen.sub_title == f"replay {JOB}"
        assert app.feed.focus is None  # a replay reads its files once, not through the feed
        assert screen.speed == 10
        await pilot.press("plus")
        assert screen.speed == 100
        await pilot.press("minus", "minus")
        assert screen.speed == 1
        assert "1×" in str(screen.query_one("#replaybar", Static).content)
        await pilot.press("space")
        assert screen.playing
        await pilot.pause(0.5)
        slow = tl.time - tl.start
        assert 0 < slow < 3  # about half a second of a 81 s run
        await pilot.press("plus", "plus", "plus")
        assert screen.speed is None  # max: the whole run in a few seconds
        await wait_for(pilot, lambda: not screen.playing, timeout=15)
        assert tl.position == len(tl)
        assert cell(screen, "train", "state") == "succeeded"


@pytest.mark.parametrize(("every", "most"), [(50, 100), (1, 3)])
def test_a_restored_checkpoint_equals_folding_from_the_start(
    trained: Path, monkeypatch: pytest.MonkeyPatch, every: int, most: int
) -> None:
    from blut.cockpit import timeline as module

    monkeypatch.setattr(module, "CHECKPOINT_EVERY", every)
    monkeypatch.setattr(module, "MAX_CHECKPOINTS", most)
    tl, _ = load_timeline(JobStore(trained), JOB)
    assert 2 < len(tl._checkpoints) <= most + 1
    for position in (len(tl), 170, 49, 120, 0, 51):
        tl.seek(position)
        fresh = Timeline(tl.spec, tl.events[:position], {})
        fresh.seek(position)
        assert tl.job.view == fresh.job.view
        assert {n: s.values() for n, s in tl.job.metrics.items()} == {
            n: s.values() for n, s in fresh.job.metrics.items()
        }


async def test_the_replay_of_a_running_job_grows_with_its_stream(blut_home: Path) -> None:
    job = make_job(blut_home, JOB, name="quant-train", memory_max=None)
    events = train_events()
    half = next(i for i, e in enumerate(events) if isinstance(e, Progress) and e.step == 40)
    emit(job, *events[:half])
    write_logs(blut_home, upto=20)
    app = make_app(blut_home, replay=JOB)
    async with app.run_test(size=(80, 24)) as pilot:
        screen, tl = await opened(app, pilot)
        assert not tl.ended
        await pilot.press("end")
        assert cell(screen, "train", "state") == "running"
        assert len(points(screen)) == 39
        emit(job, *events[half:])  # the rest of the run, and its end
        write_logs(blut_home)
        await wait_for(pilot, lambda: tl.ended, timeout=10)
        assert tl.position == len(tl) == len(events)  # it stayed at the end
        assert cell(screen, "train", "state") == "succeeded"
        assert len(points(screen)) == STEPS
        assert screen.query_one("#log", FollowLog).line_count == len(train_log())


def test_log_lines_are_placed_between_their_anchors() -> None:
    events = train_events()
    log = stage_log(train_log(), events, "train", end=T0 + 100)
    assert isinstance(log, StageLog)
    assert log.count_at(T0 + 2) == 0  # before train started
    epoch1 = train_log().index("epoch 1 done") + 1
    assert log.count_at(T0 + 13) == epoch1  # the log event of epoch 1 is its anchor
    assert epoch1 - 11 < log.count_at(T0 + 8) < epoch1  # evenly between start and epoch 1
    assert log.count_at(T0 + 4 + STEPS) == len(train_log())  # all at the stage's end
