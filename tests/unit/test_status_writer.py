"""EventWriter: one whole line per write, safe across processes; oversized lines handled."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from collections import defaultdict
from pathlib import Path

import pytest

from blut.status.errors import StatusError
from blut.status.events import Log, Metric, Progress, parse_line
from blut.status.writer import MAX_LINE, EventWriter, append_event

WRITERS = 4
EVENTS_PER_WRITER = 5_000


def _write_many(path: str, writer_id: int) -> None:
    # Vary the padding so lines of very different sizes (up to near 4 KiB) race.
    with EventWriter(Path(path)) as writer:
        for seq in range(EVENTS_PER_WRITER):
            pad = "x" * ((seq * 37 + writer_id * 101) % 3500)
            writer.emit(Progress(job="j", stage=f"w{writer_id}", step=seq, extra={"pad": pad}))


def test_concurrent_processes_never_tear_lines(tmp_path: Path) -> None:
    path = tmp_path / "status.jsonl"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(str(path), i)) for i in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0

    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.split(b"\n")[:-1]
    assert len(lines) == WRITERS * EVENTS_PER_WRITER
    steps: dict[str | None, list[float]] = defaultdict(list)
    for line in lines:
        assert len(line) + 1 <= MAX_LINE
        event = parse_line(line)
        assert isinstance(event, Progress)
        steps[event.stage].append(event.step)
    assert set(steps) == {f"w{i}" for i in range(WRITERS)}
    for seen in steps.values():
        assert seen == list(range(EVENTS_PER_WRITER))


def test_file_is_created_private_and_appended(tmp_path: Path) -> None:
    path = tmp_path / "status.jsonl"
    append_event(path, Log(job="j", msg="one"))
    append_event(path, Log(job="j", msg="two"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    msgs = [parse_line(line) for line in path.read_bytes().splitlines()]
    assert [m.msg for m in msgs if isinstance(m, Log)] == ["one", "two"]


def test_oversized_log_is_truncated_to_fit(tmp_path: Path) -> None:
    path = tmp_path / "status.jsonl"
    msg = "é" * 10_000 + "\x00" * 100  # multibyte and escaped characters
    append_event(path, Log(job="j", level="warning", msg=msg))
    raw = path.read_bytes()
    assert raw.count(b"\n") == 1
    assert MAX_LINE - 8 <= len(raw) <= MAX_LINE
    event = parse_line(raw)
    assert isinstance(event, Log)
    assert event.level == "warning"
    head, _, note = event.msg.partition("… [truncated ")
    assert msg.startswith(head)
    dropped = len(msg.encode()) - len(head.encode())
    assert note == f"{dropped} bytes]"


def test_oversized_non_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "status.jsonl"
    with EventWriter(path) as writer:
        with pytest.raises(StatusError, match="line limit"):
            writer.emit(Metric(job="j", values={f"m{i}": float(i) for i in range(500)}))
        writer.emit(Log(job="j", msg="still fine"))
    assert [type(parse_line(line)) for line in path.read_bytes().splitlines()] == [Log]


def test_log_too_large_without_its_message_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StatusError):
        append_event(tmp_path / "s.jsonl", Log(job="j", msg="m", extra={"blob": "x" * MAX_LINE}))


def test_lone_surrogates_stay_valid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "status.jsonl"
    msg = b"bad \xff byte".decode("utf-8", "surrogateescape")
    append_event(path, Log(job="j", msg=msg))
    raw = path.read_bytes()
    raw.decode("utf-8")  # strict
    event = parse_line(raw)
    assert isinstance(event, Log)
    assert event.msg == msg
    assert json.loads(raw)["msg"] == msg


def test_closed_writer_refuses(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path / "s.jsonl")
    writer.close()
    writer.close()
    with pytest.raises(StatusError, match="closed"):
        writer.emit(Log(job="j"))


def test_fd_is_not_inherited_across_exec(tmp_path: Path) -> None:
    with EventWriter(tmp_path / "s.jsonl") as writer:
        assert writer._fd is not None
        assert not os.get_inheritable(writer._fd)
