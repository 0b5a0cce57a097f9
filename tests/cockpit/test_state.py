"""The cockpit's state, feed, plots and formatting, without a terminal."""

from __future__ import annotations

from pathlib import Path

from blut.cockpit.feed import JobFeed
from blut.cockpit.fmt import rerun_command
from blut.cockpit.plot import Curve, Mark, render_plot
from blut.cockpit.state import CockpitState, Series, compile_filter
from blut.cockpit.timeline import load_timeline
from blut.jobs.quantities import short_size
from blut.jobs.store import JobStore
from blut.status.events import JobDone, Progress
from tests.cockpit.conftest import DONE, OOM, RUNNING
from tests.cockpit.fakejobs import T0, emit, make_job, oom_job, write_log


def test_series_stays_bounded_and_keeps_the_newest_point() -> None:
    s = Series(capacity=16)
    for i in range(10_000):
        s.add(i, i * 2)
    assert len(s.points) <= 16
    assert s.values()[-1] == (9999, 19998)
    xs = [x for x, _ in s.values()]
    assert xs == sorted(xs) and xs[0] == 0


def test_feed_and_state_fold_jobs_incrementally(three_jobs: Path) -> None:
    feed = JobFeed(JobStore(three_jobs))
    state = CockpitState()
    deltas, more = feed.poll(budget=5)
    assert not more
    assert state.apply(deltas, T0 + 60) == []  # history: no toasts
    rows = {r.id: r for r in state.rows(T0 + 60)}
    assert rows[RUNNING].state == "running" and rows[RUNNING].progress == 0.4
    assert rows[RUNNING].memory_bytes == 220 << 20
    assert rows[DONE].state == "succeeded" and rows[DONE].progress == 1.0
    assert rows[OOM].state == "failed" and rows[OOM].reason == "oom"
    assert rows[OOM].peak_memory_bytes == 256 << 20
    running = state.jobs[RUNNING]
    assert set(running.metrics) == {"loss", "val_loss"}
    assert running.memory["main"].values()[-1][1] == float(220 << 20)
    offset = feed._tails[RUNNING].tailer.offset

    # nothing new: nothing read
    assert feed.poll()[0] == []
    # appended events are read from the saved offset on, and a live end is reported
    job = JobStore(three_jobs).get(RUNNING)
    emit(job, Progress(job=RUNNING, stage="main", step=100, total=100), JobDone(job=RUNNING))
    deltas, _ = feed.poll()
    assert [len(d.events) for d in deltas] == [2]
    assert feed._tails[RUNNING].tailer.offset > offset
    ended = state.apply(deltas, T0 + 61)
    assert [(e.job_id, e.state) for e in ended] == [(RUNNING, "succeeded")]

    # a new job appears without a restart
    oom_job(three_jobs, "20250615-110000-dddd")
    deltas, _ = feed.poll()
    ended = state.apply(deltas, T0 + 62)
    assert "20250615-110000-dddd" in state.jobs
    assert [e.state for e in ended] == ["failed"]


def test_feed_tails_the_focused_jobs_log(three_jobs: Path) -> None:
    feed = JobFeed(JobStore(three_jobs))
    state = CockpitState()
    state.apply(feed.poll(budget=5)[0], T0)
    feed.focus = OOM
    state.apply(feed.poll()[0], T0)
    tail = state.jobs[OOM].log("main")
    assert list(tail.lines)[-1] == "Killed" and tail.total == 31
    write_log(JobStore(three_jobs).get(OOM), ["one more"])
    state.apply(feed.poll()[0], T0)
    assert list(tail.lines)[-1] == "one more" and tail.total == 32
    assert state.jobs[RUNNING].logs == {}


def test_rows_filter_and_sort(three_jobs: Path) -> None:
    feed = JobFeed(JobStore(three_jobs))
    state = CockpitState()
    state.apply(feed.poll(budget=5)[0], T0 + 60)
    pattern, error = compile_filter("fail|succ")
    assert error is None
    assert {r.id for r in state.rows(T0, pattern=pattern)} == {DONE, OOM}
    pattern, error = compile_filter("big(")
    assert error is not None and state.rows(T0, pattern=pattern) == []
    by_peak = [r.id for r in state.rows(T0 + 60, sort="peak", reverse=True)]
    assert by_peak == [DONE, OOM, RUNNING]
    by_name = [r.name for r in state.rows(T0, sort="name", reverse=False)]
    assert by_name == ["big", "prep", "train"]


def test_render_plot_has_the_requested_size_and_draws_the_ceiling() -> None:
    lines_ = render_plot(
        [Curve("m", [(0, 1.0), (1, 2.0), (2, 3.0)], "green")],
        30,
        5,
        marks=[Mark("max", 4.0, "red")],
        y_zero=True,
    )
    assert len(lines_) == 5
    assert all(len(line.plain) == 30 for line in lines_)
    assert lines_[0].plain.strip().startswith("4")
    assert render_plot([], 30, 5)[2].plain.strip() == "no data yet"


def test_formatting() -> None:
    assert short_size(256 << 20) == "256M"
    assert short_size(1536 << 20) == "1.5G"


def test_rerun_command_round_trips_the_memory_ceiling(tmp_path: Path) -> None:
    job = make_job(tmp_path, "20250615-000000-eeee", memory_max=512 << 20, argv=["a b", "c"])
    assert rerun_command(job.spec) == "blut run --name train --memory-max 512M -- 'a b' c"


def test_timeline_folds_any_position(three_jobs: Path) -> None:
    tl, _ = load_timeline(JobStore(three_jobs), OOM)
    assert tl.job.view.state == "queued" and tl.position == 0
    tl.seek(3)
    assert tl.job.view.state == "running"
    tl.seek(len(tl))
    assert tl.job.view.state == "failed"
    tl.seek(len(tl) // 2)
    mid = tl.job.view
    assert mid.state == "running" and mid.stages["main"].progress is not None
