"""Hit-time integrity, lineage and the quarantine cascade, against the real cache and executor."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from blut.jobs.cache import Cache
from blut.jobs.planview import explain
from blut.status.events import Log
from blut.status.tailer import read_events
from tests.unit.test_engine_cache import parts, staging
from tests.unit.test_engine_executor import FakeLauncher, execute, smoke, write_output


def count_hashes(monkeypatch: pytest.MonkeyPatch, names: list[str]) -> None:
    """Append the name of every file the cache hashes to ``names``."""
    from blut.jobs import filemarks

    real = filemarks.hash_entry
    monkeypatch.setattr(filemarks, "hash_entry", lambda p, st: names.append(p.name) or real(p, st))


def launched(launcher: FakeLauncher) -> list[str]:
    return [s.name.rsplit("-", 1)[1] for s in launcher.launched]


def damage(cache: Cache, stage: str) -> Path:
    """Rewrite a byte of ``stage``'s object (as root could: objects are read-only)."""
    [entry] = [e for e in cache.entries() if e.stage == stage]
    path = cache.object_path(entry.hash) / "out.json"
    path.chmod(0o644)
    path.write_text(path.read_text().replace('"count": 8', '"count": 7'))
    return path


def output(home: Path, job_id: str, stage: str) -> dict[str, object]:
    cache = Cache(home)
    [entry] = [e for e in cache.entries() if e.stage == stage and e.job == job_id]
    data: dict[str, object] = json.loads((cache.object_path(entry.hash) / "out.json").read_text())
    return data


def test_damaged_bytes_are_never_served_and_what_was_computed_from_them_goes_too(
    tmp_path: Path,
) -> None:
    """The issue's reproduction: damage make's object, re-run, verify, re-run, verify."""
    execute(tmp_path, smoke(), FakeLauncher(write_output))
    cache = Cache(tmp_path)
    damage(cache, "make")
    again = FakeLauncher(write_output)
    job, _ = execute(tmp_path, smoke(cube__sleep=0.1), again)
    assert launched(again) == ["make", "square", "cube", "total"]
    [warning] = [e for e in read_events(job.status_path) if isinstance(e, Log)]
    assert warning.level == "warning" and warning.stage == "make"
    assert warning.msg.endswith(
        "was damaged (files differ: out.json (changed)): "
        "quarantined 1, and 3 computed from them; computing it again"
    )
    report = cache.verify()
    assert report.corrupt == [] and report.condemned.derived == []
    last = FakeLauncher(write_output)
    execute(tmp_path, smoke(cube__sleep=0.1), last)
    assert launched(last) == []
    first_run = FakeLauncher(write_output)
    execute(tmp_path, smoke(), first_run)
    assert launched(first_run) == ["cube", "total"]  # their old entries went with make's


def test_verify_quarantines_what_was_computed_from_corrupt_objects(tmp_path: Path) -> None:
    execute(tmp_path, smoke(), FakeLauncher(write_output))
    cache = Cache(tmp_path)
    damage(cache, "make")
    report = cache.verify()
    assert len(report.corrupt) == 1
    assert sorted(e.stage or "" for e in report.condemned.derived) == ["cube", "square", "total"]
    assert report.condemned.summary() == "quarantined 1, and 3 computed from them"
    assert cache.entries() == []
    again = FakeLauncher(write_output)
    execute(tmp_path, smoke(), again)
    assert launched(again) == ["make", "square", "cube", "total"]


def test_a_touched_but_unchanged_file_is_served_after_one_rehash(
    tmp_path: Path, cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = cache.commit(parts(n=1), staging(tmp_path, "a", b"x" * 100), job="j", stage="make")
    hashed: list[str] = []
    count_hashes(monkeypatch, hashed)
    assert cache.get(entry.key) is not None and hashed == []
    os.utime(cache.object_path(entry.hash) / "sub" / "out.bin", (1, 1))
    assert cache.get(entry.key) is not None and hashed == ["out.bin"]
    assert cache.get(entry.key) is not None and hashed == ["out.bin"]


def test_an_added_or_removed_file_is_damage(tmp_path: Path, cache: Cache) -> None:
    one = cache.commit(parts(n=1), staging(tmp_path, "a", b"1"), job="j", stage="make")
    two = cache.commit(parts(n=2), staging(tmp_path, "b", b"2"), job="j", stage="make")
    (cache.object_path(one.hash) / "extra").write_text("x")
    (cache.object_path(two.hash) / "sub" / "out.bin").unlink()
    seen = []
    assert cache.get(one.key, on_damage=lambda d, c: seen.append(d.describe())) is None
    assert cache.get(two.key, on_damage=lambda d, c: seen.append(d.describe())) is None
    assert seen == ["files differ: extra (added)", "files differ: sub/out.bin (removed)"]
    assert cache.entries() == [] and len(list(cache.quarantine.iterdir())) == 2


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "home")


OLD_SCHEMA = """
CREATE TABLE entries(
    key TEXT PRIMARY KEY, hash TEXT NOT NULL, size INTEGER NOT NULL,
    created REAL NOT NULL, last_used REAL NOT NULL,
    job TEXT, stage TEXT, parts TEXT NOT NULL);
CREATE INDEX entries_hash ON entries(hash);
CREATE TABLE pins(job TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY(job, key));
"""


def test_an_index_from_before_marks_and_lineage_is_migrated_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    entry = Cache(home).commit(parts(n=1), staging(tmp_path, "a", b"x"), job="j", stage="make")
    index = home / "cache" / "index.sqlite"
    index.unlink()
    db = sqlite3.connect(index)
    db.executescript(OLD_SCHEMA)
    row = entry.to_dict()
    row["parts"] = json.dumps(row["parts"])
    db.execute(
        "INSERT INTO entries VALUES (:key, :hash, :size, :created, :last_used, "
        ":job, :stage, :parts)",
        row,
    )
    db.commit()
    db.close()
    cache = Cache(home)
    hashed: list[str] = []
    count_hashes(monkeypatch, hashed)
    assert cache.get(entry.key) is not None and hashed == ["out.bin"]  # once, in full
    assert cache.get(entry.key) is not None and hashed == ["out.bin"]
    assert cache.parents(entry.key) == []


def test_explain_shows_what_an_entry_was_computed_from(tmp_path: Path) -> None:
    first, _ = execute(tmp_path, smoke(), FakeLauncher(write_output))
    second, _ = execute(tmp_path, smoke(), FakeLauncher(write_output))
    cache = Cache(tmp_path)
    keys = {e.stage: e.key for e in cache.entries()}
    lines = explain(cache, second, "total")
    assert lines == [
        f"stage total: did not run; it reused the output of job {first.id} "
        f"(key {keys['total'][:12]})",
        f"  that run's log: blut log {first.id} total",
        f"  key {keys['total'][:12]} was computed from:",
        *sorted(
            (f"    {s} {keys[s][:12]} (job {first.id})" for s in ("square", "cube")),
            key=lambda line: keys[line.split()[0]],
        ),
    ]


def test_prune_keeps_lineage_only_while_an_entry_below_needs_it(tmp_path: Path) -> None:
    execute(tmp_path, smoke(), FakeLauncher(write_output))
    cache = Cache(tmp_path)
    keys = {e.stage: e.key for e in cache.entries()}
    cache._db.execute("UPDATE entries SET last_used=0 WHERE stage='make'")
    cache.prune(older_than=1000)
    assert cache.parents(keys["square"]) == [(keys["make"], None)]
    cache.prune(older_than=0)
    tables = ("lineage", "object_marks")
    assert [cache._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables] == [0, 0]
