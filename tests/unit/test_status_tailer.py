"""Tailing status.jsonl: offsets, partial lines, truncation, garbage, and following changes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import watchfiles

from blut.status.events import Event, Log, Progress
from blut.status.tailer import (
    LineTailer,
    Tailer,
    follow,
    read_events,
    watch_changes,
)
from blut.status.writer import EventWriter, append_event, encode_line

DEADLINE = 10.0


def log_line(msg: str) -> bytes:
    return encode_line(Log(job="j", ts=1.0, msg=msg))


def msgs(events: list[Event]) -> list[str]:
    return [e.msg for e in events if isinstance(e, Log)]


def test_lines_resume_from_offset(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"one\ntwo\n")
    tailer = LineTailer(path)
    assert tailer.read_lines() == [b"one", b"two"]
    assert tailer.offset == 8
    assert tailer.read_lines() == []
    with path.open("ab") as f:
        f.write(b"three\n")
    assert LineTailer(path, offset=4).read_lines() == [b"two", b"three"]
    assert tailer.read_lines() == [b"three"]


def test_partial_last_line_waits_for_newline(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"one\ntw")
    tailer = LineTailer(path)
    assert tailer.read_lines() == [b"one"]
    assert tailer.offset == 4
    assert tailer.read_lines() == []
    with path.open("ab") as f:
        f.write(b"o\n")
    assert tailer.read_lines() == [b"two"]
    assert tailer.offset == 8


def test_truncation_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a long first line\n")
    tailer = LineTailer(path)
    assert tailer.read_lines() == [b"a long first line"]
    path.write_bytes(b"new\n")
    assert tailer.read_lines() == [b"new"]
    assert tailer.restarts == 1
    assert tailer.offset == 4


def test_replaced_file_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"old\n")
    tailer = LineTailer(path)
    assert tailer.read_lines() == [b"old"]
    other = tmp_path / "g"
    other.write_bytes(b"new file, longer\n")
    other.replace(path)
    assert tailer.read_lines() == [b"new file, longer"]
    assert tailer.restarts == 1


def test_missing_file_reads_empty_until_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    tailer = Tailer(path)
    assert tailer.read() == []
    assert read_events(path) == []
    append_event(path, Log(job="j", msg="hi"))
    assert msgs(tailer.read()) == ["hi"]


def test_max_bytes_reads_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"".join(b"%04d\n" % i for i in range(100)))
    tailer = LineTailer(path)
    batches: list[list[bytes]] = []
    while True:
        batches.append(tailer.read_lines(max_bytes=100))
        if not tailer.more:
            break
    assert len(batches) > 1
    assert max(len(batch) for batch in batches) <= 20  # 100 bytes of 5-byte lines
    assert [line for batch in batches for line in batch] == [b"%04d" % i for i in range(100)]


def test_garbage_is_counted_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "status.jsonl"
    path.write_bytes(
        log_line("first")
        + b"not json\n"
        + b"[1, 2]\n"
        + b'{"event": "log"}\n'  # no job, no ts
        + b"\n   \n"
        + b"[" * 100_000
        + b"\n"
        + b"\xff\xfe\n"
        + log_line("last")
    )
    tailer = Tailer(path)
    assert msgs(tailer.read()) == ["first", "last"]
    assert tailer.garbage == 5
    assert tailer.offset == path.stat().st_size
    assert msgs(read_events(path)) == ["first", "last"]


def test_tailer_exposes_offset_and_restarts(tmp_path: Path) -> None:
    path = tmp_path / "status.jsonl"
    path.write_bytes(log_line("a") + log_line("b"))
    tailer = Tailer(path)
    assert msgs(tailer.read()) == ["a", "b"]
    resumed = Tailer(path, offset=len(log_line("a")))
    assert msgs(resumed.read()) == ["b"]
    path.write_bytes(log_line("c"))
    assert msgs(tailer.read()) == ["c"]
    assert (tailer.restarts, tailer.offset) == (1, len(log_line("c")))


def _collect(path: Path, stop: threading.Event, out: list[Event], started: threading.Event) -> None:
    for batch in follow(path, stop, timeout=0.2):
        started.set()
        out.extend(batch)


def _refuse(*args: object, **kwargs: object) -> Iterator[set[tuple[object, str]]]:
    raise OSError(28, "inotify watch limit reached")


@pytest.fixture(params=["native", "polling"])
def watch_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run with inotify, and with BLUT_FORCE_POLLING=1 (watchfiles must not be used)."""
    monkeypatch.delenv("BLUT_FORCE_POLLING", raising=False)
    if request.param == "polling":
        monkeypatch.setenv("BLUT_FORCE_POLLING", "1")
        monkeypatch.setattr(watchfiles, "watch", _refuse)
    yield str(request.param)


def test_follow_sees_events_from_another_thread(tmp_path: Path, watch_mode: str) -> None:
    _follow_another_thread(tmp_path)


def test_follow_falls_back_to_polling_when_watching_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BLUT_FORCE_POLLING", raising=False)
    monkeypatch.setattr(watchfiles, "watch", _refuse)
    _follow_another_thread(tmp_path)


def _follow_another_thread(tmp_path: Path) -> None:
    path = tmp_path / "status.jsonl"  # does not exist yet
    stop = threading.Event()
    seen: list[Event] = []
    started = threading.Event()
    reader = threading.Thread(target=_collect, args=(path, stop, seen, started), daemon=True)
    reader.start()
    try:
        assert started.wait(DEADLINE)
        with EventWriter(path) as writer:
            for step in range(20):
                writer.emit(Progress(job="j", step=step))
                time.sleep(0.005)
        deadline = time.monotonic() + DEADLINE
        while len(seen) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [e.step for e in seen if isinstance(e, Progress)] == list(range(20))
    finally:
        stop.set()
        reader.join(DEADLINE)
    assert not reader.is_alive()


def test_follow_resumes_from_offset(tmp_path: Path) -> None:
    path = tmp_path / "status.jsonl"
    path.write_bytes(log_line("old") + log_line("new"))
    stop = threading.Event()
    stream = follow(path, stop, offset=len(log_line("old")), timeout=0.05)
    assert msgs(next(stream)) == ["new"]
    stop.set()
    assert all(batch == [] for batch in stream)


def test_watch_changes_reports_changes_and_timeouts(tmp_path: Path, watch_mode: str) -> None:
    path = tmp_path / "status.jsonl"
    stop = threading.Event()
    results: list[bool] = []

    def touch_later() -> None:
        time.sleep(0.3)
        path.write_bytes(b"x\n")

    threading.Thread(target=touch_later, daemon=True).start()
    deadline = time.monotonic() + DEADLINE
    for changed in watch_changes([path], stop, timeout=0.1):
        results.append(changed)
        if changed or time.monotonic() > deadline:
            break
    assert results[-1] is True
    assert False in results  # quiet periods are reported before the write


def test_watch_changes_ignores_unrelated_files_but_watches_folders(
    tmp_path: Path, watch_mode: str
) -> None:
    path = tmp_path / "status.jsonl"
    folder = tmp_path / "metrics"
    folder.mkdir()
    stop = threading.Event()
    stream = watch_changes([path, folder], stop, timeout=0.2)
    next(stream)  # start watching (a quiet tick, or a change)
    (tmp_path / "unrelated").write_bytes(b"x")
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert next(stream) is False
    (folder / "part-000001.parquet").write_bytes(b"x")
    deadline = time.monotonic() + DEADLINE
    while not next(stream):
        assert time.monotonic() < deadline
    stop.set()
    list(stream)  # ends


def test_watch_stops_when_stop_is_set(tmp_path: Path, watch_mode: str) -> None:
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    start = time.monotonic()
    for _ in watch_changes([tmp_path / "f"], stop, timeout=0.1):
        assert time.monotonic() - start < DEADLINE


def test_read_final_returns_a_last_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"one\ntwo")
    tailer = LineTailer(path)
    assert tailer.read_lines() == [b"one"]
    assert tailer.read_final() == [b"two"]
    assert tailer.read_final() == []
    assert LineTailer(tmp_path / "missing").read_final() == []


def test_read_block_keeps_whole_lines_and_says_exactly_when_more_is_left(tmp_path: Path) -> None:
    path = tmp_path / "status.jsonl"
    path.write_bytes(b"aaaa\nbbbb\ncc")
    tail = LineTailer(path)
    assert tail.read_block(5) == b"aaaa\n" and tail.more  # stopped before the end
    assert tail.read_block(5) == b"bbbb\n" and tail.more  # a partial line is still there
    assert tail.read_block(5) == b"" and not tail.more
    assert tail.offset == 10
