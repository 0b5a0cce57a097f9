"""The content-addressed cache: commit, repair, locks, pins, prune, verify, explain."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from blut.jobs.artifact import hash_dir
from blut.jobs.cache import Cache
from blut.jobs.cacheexplain import explain
from blut.jobs.keys import KeyParts
from blut.status.flock import Flock


def parts(stage: str = "make", **args: object) -> KeyParts:
    return KeyParts(stage, ("-m", "blut.payload", stage), 1, {"up": "h" * 64}, dict(args))


def staging(tmp_path: Path, name: str, content: bytes) -> Path:
    root = tmp_path / "jobs" / name / "staging"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "out.bin").write_bytes(content)
    return root


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "home")


def test_key_is_stable_and_sensitive() -> None:
    assert parts(n=1).key == parts(n=1).key
    assert len({parts(n=1).key, parts(n=2).key, parts("other", n=1).key}) == 3
    assert KeyParts.from_dict(parts(n=1).to_dict()) == parts(n=1)


def test_commit_moves_staging_and_indexes(tmp_path: Path, cache: Cache) -> None:
    src = staging(tmp_path, "a", b"payload")
    digest = hash_dir(src)
    entry = cache.commit(parts(n=1), src, job="j1", stage="make")
    assert not src.exists()
    assert entry.hash == digest and entry.size == 7 and entry.job == "j1"
    assert hash_dir(cache.object_path(digest)) == digest
    got = cache.get(parts(n=1).key)
    assert got is not None and got.hash == digest
    assert cache.get(parts(n=2).key) is None


def test_equal_content_is_stored_once(tmp_path: Path, cache: Cache) -> None:
    one = cache.commit(parts(n=1), staging(tmp_path, "a", b"same"), job="j1", stage="make")
    two = cache.commit(parts(n=2), staging(tmp_path, "b", b"same"), job="j2", stage="make")
    assert one.hash == two.hash
    assert [p.name for p in cache.objects.iterdir()] == [one.hash]
    assert cache.total_size() == 4


def test_crash_between_rename_and_index_is_repaired(
    tmp_path: Path, cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(self: Cache, *args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Cache, "_insert", crash)
    with pytest.raises(KeyboardInterrupt):
        cache.commit(parts(n=1), staging(tmp_path, "a", b"x"), job="j1", stage="make")
    monkeypatch.undo()
    assert cache.get(parts(n=1).key) is None
    reopened = Cache(cache.root.parent)
    entry = reopened.get(parts(n=1).key)
    assert entry is not None and entry.job == "j1"
    assert list(reopened.pending.iterdir()) == []


def test_dangling_row_is_a_miss(tmp_path: Path, cache: Cache) -> None:
    entry = cache.commit(parts(n=1), staging(tmp_path, "a", b"x"), job="j1", stage="make")
    cache.object_path(entry.hash).rename(tmp_path / "gone")
    assert cache.get(entry.key) is None
    assert cache.entries() == []


def _hold_then_commit(home: str, tmp: str, out: str) -> None:
    cache = Cache(Path(home))
    key = parts(n=1).key
    with cache.key_lock(key):
        Path(out).write_text("locked")
        time.sleep(0.5)
        cache.commit(
            parts(n=1), staging(Path(tmp), "child", b"computed"), job="child", stage="make"
        )


def test_second_job_waits_for_the_key_and_reuses_it(tmp_path: Path, cache: Cache) -> None:
    flag = tmp_path / "flag"
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(
        target=_hold_then_commit, args=(str(cache.root.parent), str(tmp_path), str(flag))
    )
    child.start()
    while not flag.exists():
        time.sleep(0.01)
    lock = cache.key_lock(parts(n=1).key)
    assert not lock.acquire(blocking=False)
    assert lock.acquire(blocking=True)
    entry = cache.get(parts(n=1).key)
    lock.release()
    child.join()
    assert entry is not None and entry.job == "child"


def _fill(tmp_path: Path, cache: Cache, n: int) -> list[str]:
    keys = []
    for i in range(n):
        entry = cache.commit(
            parts(n=i), staging(tmp_path, f"s{i}", bytes([i]) * 10), job=f"j{i}", stage="make"
        )
        cache._db.execute("UPDATE entries SET last_used=? WHERE key=?", (1000.0 + i, entry.key))
        keys.append(entry.key)
    return keys


def test_prune_lru_by_size_keep_last_and_dry_run(tmp_path: Path, cache: Cache) -> None:
    keys = _fill(tmp_path, cache, 5)
    report = cache.prune(max_size=25, dry_run=True)
    assert [e.key for e in report.removed] == keys[:3] and report.freed == 30
    assert len(cache.entries()) == 5
    report = cache.prune(max_size=0, keep_last=2)
    assert [e.key for e in report.removed] == keys[:3]
    assert [e.key for e in cache.entries()] == keys[3:]
    assert len(list(cache.objects.iterdir())) == 2
    assert list(cache.trash.iterdir()) == []


def test_prune_by_age(tmp_path: Path, cache: Cache) -> None:
    keys = _fill(tmp_path, cache, 3)
    report = cache.prune(older_than=1.5, now=1003.0)
    assert [e.key for e in report.removed] == keys[:2]


def test_prune_never_touches_keys_pinned_by_running_jobs(tmp_path: Path, cache: Cache) -> None:
    keys = _fill(tmp_path, cache, 3)
    hold = cache.hold("running")
    hold.acquire()
    cache.pin("running", [keys[0]])
    cache.pin("crashed", [keys[1]])  # never held its liveness lock: its pin is void
    report = cache.prune(max_size=0)
    assert {e.key for e in report.removed} == {keys[1], keys[2]} and report.pinned == 1
    assert [e.key for e in cache.entries()] == [keys[0]]
    hold.release()
    assert cache.pinned() == set()
    assert cache.prune(max_size=0).removed[0].key == keys[0]


def test_verify_quarantines_corrupt_and_orphan_objects(tmp_path: Path, cache: Cache) -> None:
    good = cache.commit(parts(n=1), staging(tmp_path, "a", b"good"), job="j", stage="make")
    bad = cache.commit(parts(n=2), staging(tmp_path, "b", b"bad!"), job="j", stage="make")
    victim = cache.object_path(bad.hash) / "sub" / "out.bin"
    victim.chmod(0o644)
    victim.write_bytes(b"flipped")
    (cache.objects / "f").mkdir()
    report = cache.verify()
    assert report.checked == 2 and report.corrupt == [bad.hash] and report.orphans == ["f"]
    assert [e.key for e in cache.entries()] == [good.key]
    assert len(list(cache.quarantine.iterdir())) == 2


def test_explain_names_what_differs(tmp_path: Path, cache: Cache) -> None:
    assert "nothing of this stage is cached" in explain(cache, parts(n=1))[0]
    cache.commit(parts(n=1, lr=0.1), staging(tmp_path, "a", b"x"), job="j1", stage="make")
    assert "cached" in explain(cache, parts(n=1, lr=0.1))[0]
    changed = KeyParts("make", parts().program, 1, {"up": "e" * 64}, {"n": 1, "lr": 0.2})
    lines = explain(cache, changed)
    assert "job j1" in lines[0]
    assert lines[1:] == [
        f"  input up: {'e' * 12} now, {'h' * 12} cached",
        "  arg lr: 0.2 now, 0.1 cached",
    ]


def test_objects_are_read_only(tmp_path: Path, cache: Cache) -> None:
    entry = cache.commit(parts(n=1), staging(tmp_path, "a", b"x"), job="j", stage="make")
    path = cache.object_path(entry.hash) / "sub" / "out.bin"
    assert path.stat().st_mode & 0o222 == 0
    assert json.loads(json.dumps(entry.parts.to_dict()))["stage"] == "make"
    assert isinstance(cache.key_lock("k"), Flock)
