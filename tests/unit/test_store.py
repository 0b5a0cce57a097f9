"""The job store: private folders, job.json, lookup by id, prefix, suffix or name."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from blut.jobs.errors import UsageError
from blut.jobs.store import JobStore, blut_home


def make(store: JobStore, name: str) -> str:
    return store.create(name=name, argv=["true"], cwd="/", launcher="bare").id


def test_home_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLUT_HOME", str(tmp_path / "home"))
    home = blut_home()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    job = JobStore(home).create(name="x", argv=["true"], cwd="/", launcher="bare")
    assert stat.S_IMODE(job.dir.stat().st_mode) == 0o700


def test_create_and_load(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    job = store.create(
        name="train", argv=["python", "t.py"], cwd="/w", launcher="systemd", memory_max=5
    )
    again = store.load(job.dir)
    assert again.spec == job.spec
    assert job.spec.driver_unit == f"blut-{job.id}"
    assert job.spec.stage_unit("main") == f"blut-{job.id}-main"


def test_lookup(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    first, second = make(store, "a"), make(store, "b")
    assert store.get(first).id == first
    assert store.get(second[-4:]).id == second
    assert store.get("b").id == second
    with pytest.raises(UsageError, match="ambiguous"):
        store.get(first[:4])
    with pytest.raises(UsageError, match="no such job"):
        store.get("nope")
    with pytest.raises(UsageError, match="invalid job id"):
        store.get("../etc")


def test_all_skips_unreadable_jobs(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    good = make(store, "a")
    broken = store.jobs_dir / "broken"
    broken.mkdir()
    (broken / "job.json").write_text("{not json")
    assert [j.id for j in store.all()] == [good]
