"""Relay: a cluster stage's events file copied into status.jsonl, whole lines, each once."""

from __future__ import annotations

import os
import time
from functools import cache
from pathlib import Path

import pytest

from blut.payload.context import StageContext
from blut.status.events import Log, Progress, parse_line
from blut.status.layout import JobPaths, StagePaths
from blut.status.relay import EVENTS_VAR, RELAYED, Relay
from blut.status.writer import EventWriter, encode_line


def setup(tmp_path: Path) -> tuple[JobPaths, StagePaths]:
    job = JobPaths(tmp_path / "job")
    files = job.stage("train")
    files.dir.mkdir(parents=True)
    job.status.write_bytes(b"")
    return job, files


@cache
def line(step: int) -> bytes:
    return encode_line(Progress(job="j", stage="train", step=step))


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def relayed(job: JobPaths) -> list[bytes]:
    return [ln for ln in job.status.read_bytes().splitlines(keepends=True) if b'"train"' in ln]


def test_a_partial_last_line_waits_until_it_is_whole(tmp_path: Path) -> None:
    job, files = setup(tmp_path)
    relay = Relay.start(files, job.status)
    with EventWriter(job.status) as sink:
        whole, half = line(1), line(2)
        append(files.events, whole + half[:10])
        assert relay.pump(sink) == 1
        assert job.status.read_bytes() == whole
        assert relay.pump(sink) == 0
        append(files.events, half[10:])
        assert relay.pump(sink) == 1
        append(files.events, line(3)[:5])  # torn by a killed stage: never relayed
        assert relay.pump(sink, final=True) == 0
    assert job.status.read_bytes() == whole + half
    assert relay.offset == len(whole + half)


def test_a_restarted_relay_resumes_at_its_recorded_offset(tmp_path: Path) -> None:
    job, files = setup(tmp_path)
    with EventWriter(job.status) as sink:
        Relay.start(files, job.status)
        append(files.events, line(1) + line(2))
        assert Relay(files).pump(sink) == 2
        sink.emit(Log(job="j", msg="the executor's own event"))
        append(files.events, line(3))
        assert Relay(files).pump(sink) == 1  # a new executor, after a clean stop
    assert relayed(job) == [line(1), line(2), line(3)]


def test_a_copy_whose_record_was_lost_is_not_repeated(tmp_path: Path) -> None:
    """SIGKILL between the copy into status.jsonl and the record of its offset."""
    job, files = setup(tmp_path)
    with EventWriter(job.status) as sink:
        Relay.start(files, job.status)
        append(files.events, line(1))
        Relay(files).pump(sink)
        before = files.relayed.read_bytes()
        append(files.events, line(2) + line(3))
        Relay(files).pump(sink)
        files.relayed.write_bytes(before)  # the record of the last copy never landed
        sink.emit(Log(job="j", msg="the next executor's job_started"))
        append(files.events, line(4))
        assert Relay(files).pump(sink) == 1
        assert Relay(files).pump(sink, final=True) == 0
    assert relayed(job) == [line(1), line(2), line(3), line(4)]


def test_a_copy_that_never_landed_is_made_by_the_next_executor(tmp_path: Path) -> None:
    job, files = setup(tmp_path)
    Relay.start(files, job.status)
    append(files.events, line(1) + line(2))
    with EventWriter(job.status) as sink:
        sink.emit(Log(job="j", msg="written before the copy"))
        assert Relay(files).pump(sink, final=True) == 2
    assert relayed(job) == [line(1), line(2)]


def test_a_line_with_nul_bytes_waits_while_the_stage_runs(tmp_path: Path) -> None:
    """On NFS a reader can see a file's new length before an earlier write's bytes."""
    job, files = setup(tmp_path)
    relay = Relay.start(files, job.status)
    hole = b"\0" * (len(line(2)) - 1) + b"\n"
    append(files.events, line(1) + hole + line(3))
    with EventWriter(job.status) as sink:
        assert relay.pump(sink) == 1
        with files.events.open("r+b") as f:  # the missing write arrives
            f.seek(len(line(1)))
            f.write(line(2))
        assert relay.pump(sink) == 2
    assert relayed(job) == [line(1), line(2), line(3)]


def test_a_new_run_starts_a_new_events_file(tmp_path: Path) -> None:
    job, files = setup(tmp_path)
    with EventWriter(job.status) as sink:
        first = Relay.start(files, job.status)
        append(files.events, line(1))
        first.pump(sink, final=True)
        second = Relay.start(files, job.status)  # a retry
        assert not files.events.exists() and second.offset == 0
        append(files.events, line(2))
        second.pump(sink, final=True)
    assert relayed(job) == [line(1), line(2)]


def test_a_relayed_stage_never_writes_the_job_stream(tmp_path: Path) -> None:
    job, files = setup(tmp_path)
    env = {"BLUT_JOB_DIR": str(job.dir), "BLUT_STAGE_NAME": "train", EVENTS_VAR: RELAYED}
    with StageContext.from_env("train", env) as ctx:
        ctx.progress(1, 2)
        ctx.metric({"loss": 0.5}, step=1)
        ctx.log("hello")
    assert ctx.relayed and ctx.events_path == files.events
    assert job.status.read_bytes() == b""
    kinds = [parse_line(ln).event for ln in files.events.read_bytes().splitlines()]
    assert kinds == ["progress", "metric", "log"]


def test_a_relayed_stage_pushes_every_event_to_the_server_soon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst is pushed at once and once more after ``sync_every``, not at the next event."""
    pushed: list[float] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (pushed.append(time.monotonic()), real(fd)))
    writer = EventWriter(tmp_path / "events.jsonl", sync_every=0.2)
    start = time.monotonic()
    for step in range(3):
        writer.emit(Progress(job="j", stage="train", step=step))
    assert len(pushed) == 1  # the first at once; the rest wait for the timer
    deadline = time.monotonic() + 10
    while len(pushed) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(pushed) == 2 and pushed[1] - start >= 0.2
    writer.close()
    assert len(pushed) == 3  # and once more as it closes
