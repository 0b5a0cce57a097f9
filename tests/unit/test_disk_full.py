"""A full disk, told apart and survived: the cache index when sqlite says SQLITE_FULL (a real one,
from ``PRAGMA max_page_count``), result records written over their reserve, torn event lines."""

from __future__ import annotations

import errno
import json
import sqlite3
from pathlib import Path

import pytest

from blut.containment.result import read_record, reserve_record, write_record
from blut.jobs.cache import Cache
from blut.jobs.diskfull import DiskFull, is_disk_full, ran_out_of_space
from blut.jobs.keys import KeyParts
from blut.status.errors import StatusError
from blut.status.events import Log
from blut.status.reserve import RECORD_RESERVE, record_reserve
from blut.status.writer import EventWriter


def parts(**args: object) -> KeyParts:
    return KeyParts("make", ("-m", "blut.payload", "make"), 1, {}, dict(args))


def staging(tmp_path: Path, content: bytes) -> Path:
    root = tmp_path / "staging"
    root.mkdir()
    (root / "out.bin").write_bytes(content)
    return root


def fill_index(cache: Cache) -> None:
    """The index may not grow by a page more: sqlite answers SQLITE_FULL, as on a full disk."""
    pages = cache._db.execute("PRAGMA page_count").fetchone()[0]
    cache._db.execute(f"PRAGMA max_page_count={pages}")


BIG = "x" * 50_000
"""An argument too big for the pages the index has."""


def test_a_commit_the_index_has_no_room_for_keeps_its_journal_and_is_repaired(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    cache = Cache(home)
    fill_index(cache)
    with pytest.raises(DiskFull, match=r"^disk full \(.* free under BLUT_HOME\)"):
        cache.commit(parts(big=BIG), staging(tmp_path, b"out"), job="j1", stage="make")
    assert cache.entries() == []  # the index holds no half of it
    assert not cache._db.in_transaction
    assert [p.name for p in cache.pending.iterdir()] == [f"{parts(big=BIG).key}.json"]
    assert cache.verify().orphans == []  # its object is in flight, not an orphan
    cache.close()

    again = Cache(home)  # room again: the journal is replayed
    [entry] = again.entries()
    assert entry.key == parts(big=BIG).key and list(again.pending.iterdir()) == []
    report = again.verify()
    assert (report.corrupt, report.missing, report.orphans) == ([], [], [])
    again.close()


def test_a_repair_without_room_waits_for_the_next_cache(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cache = Cache(home)
    fill_index(cache)
    with pytest.raises(DiskFull):
        cache.commit(parts(big=BIG), staging(tmp_path, b"out"), job="j1", stage="make")
    fill_index(cache)
    cache._repair()  # no room: no error, the journal stays
    assert len(list(cache.pending.iterdir())) == 1
    cache.close()


def test_reads_never_fail_for_want_of_room_and_pins_say_why(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "home")
    entry = cache.commit(parts(n=1), staging(tmp_path, b"out"), job="j1", stage="make")
    cache.pin("j1", [entry.key])
    fill_index(cache)
    assert cache.get(entry.key) == entry  # its last use is not updated, the hit stands
    cache.unpin("j1")  # stays (it counts only while j1 holds its lock)
    with pytest.raises(DiskFull):
        cache.pin("j2" * 20_000, [entry.key])
    cache.unpin("j0")
    assert not cache._db.in_transaction
    cache.close()


def test_disk_full_is_told_through_causes(tmp_path: Path) -> None:
    enospc = OSError(errno.ENOSPC, "No space left on device")
    assert is_disk_full(enospc, tmp_path)
    try:
        try:
            raise enospc
        except OSError as exc:
            raise StatusError("short write") from exc
    except StatusError as wrapped:
        assert is_disk_full(wrapped, tmp_path)
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13  # what sqlite3 sets on SQLITE_FULL
    assert is_disk_full(full, tmp_path)
    io = sqlite3.OperationalError("disk I/O error")
    io.sqlite_errorcode = 4874  # SQLITE_IOERR_SHMSIZE: a full disk only when little is free
    assert not is_disk_full(io, tmp_path)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"), tmp_path)
    assert ran_out_of_space("OSError: [Errno 28] No space left on device: 'x'\n")
    assert not ran_out_of_space("exited with code 3")


def test_a_record_is_written_over_its_reserve(tmp_path: Path) -> None:
    result = tmp_path / "result"
    result.write_text("stale")
    reserve_record(result)
    assert not result.exists()
    assert record_reserve(result).stat().st_size == RECORD_RESERVE
    write_record(result, {"service_result": "success", "exit_code": "exited", "exit_status": "0"})
    assert not record_reserve(result).exists()
    assert read_record(result) == {
        "service_result": "success",
        "exit_code": "exited",
        "exit_status": "0",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]


def test_a_torn_last_line_is_ended_before_the_next(tmp_path: Path) -> None:
    stream = tmp_path / "status.jsonl"
    stream.write_bytes(b'{"v":1,"ts":1.0,"job":"j","ev')  # a line a full disk cut short
    with EventWriter(stream) as writer:
        writer.end_line()
        writer.end_line()  # once is enough
        writer.emit(Log(job="j", msg="after"))
    lines = stream.read_bytes().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["msg"] == "after"


def test_the_end_of_a_stage_that_ran_out_of_room_says_so() -> None:
    from blut.cockpit.render import describe_end
    from blut.status.jobstate import JobView, StageView

    detail = "disk full (84.0 KiB free under BLUT_HOME); exited with code 1"
    stage = StageView("square", state="failed", reason="exit", exit_code=1, detail=detail)
    view = JobView("j", state="failed", reason="exit", stages={"square": stage})
    assert describe_end(view, None) == (
        "stage square exited with code 1 (disk full (84.0 KiB free under BLUT_HOME))"
    )
    stage.detail = "exited with code 1"
    assert describe_end(view, None) == "stage square exited with code 1"
