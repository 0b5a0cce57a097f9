"""The job index (summary.json): a fold of the stream's first bytes, never trusted blindly."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from blut.status.events import (
    CancelRequested,
    Event,
    JobDone,
    JobFailed,
    JobStarted,
    JobSubmitted,
    Log,
    Metric,
    Progress,
    Resources,
    StageCached,
    StageDone,
    StageFailed,
    StageStarted,
)
from blut.status.jobstate import fold
from blut.status.layout import JobPaths
from blut.status.summary import (
    JobIndex,
    current_view,
    read_summary,
    rebuild_summary,
    view_from_dict,
    view_to_dict,
)
from blut.status.tailer import read_events
from blut.status.writer import EventWriter

JOB = "20261201-000000-abcd"


def job_dir(tmp_path: Path) -> JobPaths:
    paths = JobPaths(tmp_path / JOB)
    paths.dir.mkdir()
    return paths


def write(paths: JobPaths, *events: Event) -> None:
    with EventWriter(paths.status) as writer:
        for event in events:
            writer.emit(event)


def a_run(job: str = JOB) -> list[Event]:
    return [
        JobSubmitted(job=job, ts=1, name="t", recipe="smoke"),
        JobStarted(job=job, ts=2),
        StageStarted(job=job, stage="a", ts=3, memory_max=64 << 20),
        Progress(job=job, stage="a", ts=4, step=3, total=10),
        Resources(job=job, stage="a", ts=5, memory_bytes=50 << 20, memory_max=64 << 20),
        Metric(job=job, stage="a", ts=6, values={"loss": 0.5}, step=3),
        Log(job=job, stage="a", ts=7, level="warning", msg="careful"),
    ]


def test_summary_plus_tail_is_the_full_fold(tmp_path: Path) -> None:
    paths = job_dir(tmp_path)
    write(paths, *a_run())
    rebuild_summary(paths.dir)
    write(
        paths,
        StageDone(job=JOB, stage="a", ts=8, peak_mem=60 << 20),
        CancelRequested(job=JOB, stage="b", ts=9),
        StageFailed(job=JOB, stage="b", ts=10, reason="oom", peak_mem=99),
        JobFailed(job=JOB, ts=11, reason="oom", detail="stage b: out of memory"),
    )
    indexed = read_summary(paths, JOB)
    assert indexed is not None and indexed.offset < paths.status.stat().st_size
    assert current_view(paths, JOB) == fold(JOB, read_events(paths.status))


def test_a_reader_reads_only_the_tail(tmp_path: Path) -> None:
    paths = job_dir(tmp_path)
    write(paths, *a_run())
    rebuild_summary(paths.dir)
    size = paths.status.stat().st_size
    write(paths, JobDone(job=JOB, ts=20))
    index = JobIndex(paths, JOB)
    index.refresh()
    assert index.indexed.from_summary
    assert index.indexed.folded == paths.status.stat().st_size - size
    assert index.view.state == "succeeded"


def test_damaged_or_foreign_summaries_are_rebuilt(tmp_path: Path) -> None:
    paths = job_dir(tmp_path)
    write(paths, *a_run(), JobDone(job=JOB, ts=20))
    truth = fold(JOB, read_events(paths.status))
    rebuild_summary(paths.dir)
    good = json.loads(paths.summary.read_text())
    lies = {
        "garbage": b"{not json",
        "other version": {**good, "v": 99},
        "other inode": {**good, "inode": good["inode"] + 1},
        "past the end": {**good, "offset": good["offset"] + 10},
        "mid-line": {**good, "offset": good["offset"] - 3},
        "other job": {**good, "view": {**good["view"], "id": "someone-else"}},
        "bad state": {**good, "view": {**good["view"], "state": "bogus"}},
        "missing field": {**good, "view": {k: v for k, v in good["view"].items() if k != "stages"}},
    }
    for name, lie in lies.items():
        data = lie if isinstance(lie, bytes) else json.dumps(lie).encode()
        paths.summary.write_bytes(data)
        assert read_summary(paths, JOB) is None, name
        assert current_view(paths, JOB) == truth, name


def test_a_summary_from_before_a_stage_field_was_added_is_still_read(tmp_path: Path) -> None:
    paths = job_dir(tmp_path)
    write(paths, *a_run(), StageCached(job=JOB, stage="b", ts=8, artifact="abc"))
    rebuild_summary(paths.dir)
    saved = json.loads(paths.summary.read_text())
    for stage in saved["view"]["stages"].values():
        del stage["producer"]  # as written before stage_cached named its producer
    paths.summary.write_text(json.dumps(saved))
    indexed = read_summary(paths, JOB)
    assert indexed is not None and indexed.view == fold(JOB, read_events(paths.status))
    assert indexed.view.stages["b"].producer is None


def test_a_replaced_stream_is_refolded(tmp_path: Path) -> None:
    paths = job_dir(tmp_path)
    write(paths, *a_run(), JobDone(job=JOB, ts=20))
    rebuild_summary(paths.dir)
    paths.status.unlink()
    write(paths, JobSubmitted(job=JOB, ts=1, name="other"))
    assert current_view(paths, JOB).state == "queued"


def test_a_reader_saves_a_missing_summary_only_when_asked(tmp_path: Path) -> None:
    paths = job_dir(tmp_path)
    write(paths, *a_run())
    current_view(paths, JOB)
    assert not paths.summary.exists()
    current_view(paths, JOB, save=True)
    assert read_summary(paths, JOB) is not None


def test_view_round_trips_through_json() -> None:
    view = fold(JOB, a_run())
    assert view_from_dict(json.loads(json.dumps(view_to_dict(view)))) == view


EVENTS = st.lists(
    st.sampled_from(
        [
            *a_run(),
            StageDone(job=JOB, stage="a", ts=8, peak_mem=60 << 20),
            StageFailed(job=JOB, stage="a", ts=8, reason="exit", exit_code=3),
            CancelRequested(job=JOB, ts=9),
            CancelRequested(job=JOB, stage="a", ts=9),
            JobFailed(job=JOB, ts=10, reason="exit", detail="x"),
            JobDone(job=JOB, ts=10),
            JobStarted(job=JOB, ts=11),
        ]
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(first=EVENTS, second=EVENTS)
def test_any_split_of_a_stream_folds_the_same(tmp_path_factory, first, second) -> None:  # type: ignore[no-untyped-def]
    paths = job_dir(tmp_path_factory.mktemp("j"))
    write(paths, *first)
    if first:
        rebuild_summary(paths.dir)
    write(paths, *second)
    assert current_view(paths, JOB) == fold(JOB, [*first, *second])
