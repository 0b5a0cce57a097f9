"""The `Store` interface: the local filesystem store on real files, and the cache and the
snapshots working through it (a second implementation stands in for an object store)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from blut.jobs.cache import Cache
from blut.jobs.objectstore import LocalStore, Store
from blut.jobs.snapshots import SnapshotStore
from tests.unit.test_snapshot_store import train_job


def folder(root: Path, text: str) -> Path:
    root.mkdir(parents=True)
    (root / "a.txt").write_text(text)
    (root / "sub").mkdir()
    (root / "sub" / "b.bin").write_bytes(text.encode() * 3)
    return root


def test_local_store_puts_gets_lists_takes_and_deletes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    store.root.mkdir()
    assert isinstance(store, Store)
    assert list(store.list()) == [] and not store.exists("h1")
    with pytest.raises(FileNotFoundError):
        store.get("h1")

    assert store.put("h1", folder(tmp_path / "one", "x")) is True  # renamed in
    assert not (tmp_path / "one").exists()
    assert (store.get("h1") / "sub" / "b.bin").read_bytes() == b"xxx"
    # An equal object put again: the stored one stays, the new copy goes.
    assert store.put("h1", folder(tmp_path / "again", "x")) is False
    assert not (tmp_path / "again").exists()

    scratch = store.scratch()
    assert scratch.parent == store.root and not scratch.exists()
    scratch.write_bytes(b"a file object")
    assert store.put("h2", scratch) and store.get("h2").read_bytes() == b"a file object"
    leftover = store.scratch()
    leftover.mkdir()  # a build a crash left behind: never listed
    assert sorted(store.list()) == ["h1", "h2"]
    assert store.scratch_paths() == [leftover]

    aside = tmp_path / "aside"
    assert store.take("h1", aside) and (aside / "a.txt").read_text() == "x"
    assert not store.take("h1", tmp_path / "again-aside")
    assert store.delete("h2") and not store.delete("h2")
    assert list(store.list()) == []


def test_a_suffix_names_files_by_id(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, ".tar")
    (tmp_path / "notes.json").write_text("{}")  # beside the objects, not one of them
    source = tmp_path / "in"
    source.write_bytes(b"bundle")
    store.put("abc", source)
    assert (tmp_path / "abc.tar").read_bytes() == b"bundle"
    assert list(store.list()) == ["abc"]


def test_a_put_from_another_filesystem_copies_in(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the test's folder")
    store = LocalStore(tmp_path / "objects")
    store.root.mkdir()
    source = Path(tempfile.mkdtemp(dir=shm)) / "out"
    try:
        folder(source, "far")
        assert store.put("h", source) is False  # copied, not renamed: new file stamps
        assert not source.exists()
        assert (store.get("h") / "a.txt").read_text() == "far"
        assert store.scratch_paths() == []
    finally:
        shutil.rmtree(source.parent, ignore_errors=True)


def test_the_cache_keeps_its_objects_in_a_local_store(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    try:
        assert isinstance(cache.store, Store) and cache.store.root == cache.objects
        assert cache.object_path("abc") == cache.objects / "abc"
    finally:
        cache.close()


class CopyingStore:
    """Objects copied in and out, never renamed, as a remote object store would hold them:
    what the snapshots need from a store is the protocol alone."""

    def __init__(self, bucket: Path, local: Path) -> None:
        self.bucket, self.local = bucket, local
        self.calls: list[str] = []

    def scratch(self) -> Path:
        self.local.mkdir(parents=True, exist_ok=True)
        return self.local / f"build-{os.urandom(4).hex()}"

    def put(self, name: str, source: Path) -> bool:
        self.calls.append("put")
        self.bucket.mkdir(parents=True, exist_ok=True)
        if not (self.bucket / name).exists():
            shutil.copyfile(source, self.bucket / name)
        source.unlink()
        return False

    def get(self, name: str) -> Path:
        self.calls.append("get")
        if not (self.bucket / name).exists():
            raise FileNotFoundError(name)
        copy = self.local / f"got-{name}"
        shutil.copyfile(self.bucket / name, copy)
        return copy

    def exists(self, name: str) -> bool:
        return (self.bucket / name).exists()

    def list(self) -> Iterator[str]:
        self.calls.append("list")
        yield from (p.name for p in self.bucket.iterdir()) if self.bucket.is_dir() else ()

    def delete(self, name: str) -> bool:
        self.calls.append("delete")
        if not (self.bucket / name).exists():
            return False
        (self.bucket / name).unlink()
        return True

    def take(self, name: str, dest: Path) -> bool:
        if not (self.bucket / name).exists():
            return False
        shutil.move(self.bucket / name, dest)
        return True


def test_snapshots_live_in_any_store(tmp_path: Path) -> None:
    bucket = CopyingStore(tmp_path / "bucket", tmp_path / "local")
    assert isinstance(bucket, Store)
    job = train_job(tmp_path / "home")
    local = SnapshotStore(tmp_path / "home").create(job)
    remote = SnapshotStore(tmp_path / "home2", store=bucket)
    snap = remote.create(job)
    assert snap.id == local.id  # the same bytes, the same name
    assert [p.name for p in (tmp_path / "bucket").iterdir()] == [snap.id]
    assert not (tmp_path / "home2" / "snapshots" / f"{snap.id}.tar").exists()
    assert remote.get(snap.id[:10]).bundle().manifest["epoch"] == 3
    assert [s.id for s in remote.all()] == [snap.id]
    assert [s.id for s in remote.prune(older_than=None, keep_last=0, dry_run=False)] == [snap.id]
    assert remote.all() == [] and {"put", "get", "list", "delete"} <= set(bucket.calls)
