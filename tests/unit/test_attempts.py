"""Which earlier attempt at a stage key a new job takes over, and what moving it does."""

from __future__ import annotations

import json
import os
from pathlib import Path

from blut.jobs.attempts import find_earlier, has_state, take_over
from blut.status.layout import JobPaths, StagePaths

KEY = "k" * 64


def attempt(jobs: Path, job: str, key: str = KEY, step: int = 4, mtime: float = 1000.0) -> Path:
    """A job folder whose sft stage has ``key`` and a checkpoint at ``step``."""
    files = JobPaths(jobs / job).stage("sft")
    point = files.checkpoints / f"checkpoint-{step}"
    point.mkdir(parents=True)
    (point / "model.safetensors").write_bytes(b"w")
    (files.checkpoints / "fingerprint").write_text("fp\n")
    files.metrics.mkdir()
    (files.metrics / f"part-{step:06d}.parquet").write_bytes(b"rows")
    files.key.write_text(json.dumps({"key": key}))
    for path in (point, files.checkpoints):
        os.utime(path, (mtime, mtime))
    return files.dir


def test_the_newest_other_attempt_at_the_same_key_that_is_not_running(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    attempt(jobs, "a", mtime=1000)
    attempt(jobs, "b", mtime=3000)
    attempt(jobs, "c", key="x" * 64, mtime=5000)  # another key
    attempt(jobs, "d", mtime=4000)  # still running
    attempt(jobs, "mine", mtime=6000)  # this job itself
    (jobs / ".trash").mkdir()
    (jobs / "empty" / "stages" / "sft").mkdir(parents=True)
    found = find_earlier(jobs, "mine", "sft", KEY, running=lambda job: job == "d")
    assert found is not None and found.job == "b"
    assert find_earlier(jobs, "mine", "other-stage", KEY, running=lambda job: False) is None
    assert find_earlier(tmp_path / "none", "mine", "sft", KEY, running=lambda job: False) is None


def test_taking_over_moves_the_state_and_copies_the_curves(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    old = StagePaths(attempt(jobs, "old"))
    new = JobPaths(jobs / "new").stage("sft")
    new.dir.mkdir(parents=True)
    new.checkpoints.mkdir()  # empty: nothing of its own
    assert not has_state(new)
    found = find_earlier(jobs, "new", "sft", KEY, running=lambda job: False)
    assert found is not None
    assert take_over(found, new) == ["checkpoints"]
    assert (new.checkpoints / "checkpoint-4" / "model.safetensors").read_bytes() == b"w"
    assert (new.checkpoints / "fingerprint").read_text() == "fp\n"
    assert not old.checkpoints.exists() and not has_state(old)
    assert [p.name for p in new.metrics.iterdir()] == ["part-000004.parquet"]
    assert [p.name for p in old.metrics.iterdir()] == ["part-000004.parquet"]
    assert has_state(new)
    new.key.write_text(json.dumps({"key": KEY}))  # the executor writes it before launching
    again = find_earlier(jobs, "another", "sft", KEY, running=lambda job: False)
    assert again is not None and again.job == "new"  # the state went with the newest attempt


def test_generate_work_moves_too(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    old = JobPaths(jobs / "old").stage("generate")
    old.work.mkdir(parents=True)
    (old.work / "part-000000.parquet").write_bytes(b"done")
    old.key.write_text(json.dumps({"key": KEY}))
    new = JobPaths(jobs / "new").stage("generate")
    new.dir.mkdir(parents=True)
    found = find_earlier(jobs, "new", "generate", KEY, running=lambda job: False)
    assert found is not None and take_over(found, new) == ["work"]
    assert (new.work / "part-000000.parquet").read_bytes() == b"done"
