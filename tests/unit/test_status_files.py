"""One atomic write and one file lock for every file blut replaces or guards."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from blut.status.atomic import atomic_file, atomic_write, atomic_write_json, is_temp_name
from blut.status.flock import Flock, is_held, locked


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "plan.json"
    target.write_text("old")
    atomic_write_json(target, {"a": 1})
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]


def test_a_failed_write_leaves_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "part.parquet"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_file(target) as f:
        f.write(b"half")
        raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["part.parquet"]


def test_concurrent_writers_never_collide(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for _ in range(50):
                atomic_write(target, f"{n}" * 1000, durable=False)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    content = target.read_text()
    assert len(content) == 1000 and len(set(content)) == 1  # one writer's whole file
    assert not any(is_temp_name(p.name) for p in tmp_path.iterdir())


def test_locked_is_reentrant_in_a_thread_and_exclusive_across_threads(tmp_path: Path) -> None:
    path = tmp_path / ".lock"
    with locked(path), locked(path):  # the same thread enters again at once
        assert is_held(path)
        other = threading.Thread(target=lambda: results.append(Flock(path).acquire(False)))
        results: list[bool] = []
        other.start()
        other.join()
        assert results == [False]
    assert not is_held(path)


def test_flock_waits_at_most_its_timeout(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with Flock(path):
        assert Flock(path).acquire(timeout=0.2) is False
    assert Flock(path).acquire(timeout=0.2) is True
