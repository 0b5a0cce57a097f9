"""A full disk is an outcome: a tmpfs-sized BLUT_HOME filled at many levels, real units.

At every level a recipe (and now and then a command) is submitted, and while the
disk is still full the listing and cache commands run. Whatever the level: no
traceback on any command's stderr or in any driver.log, no half-made job (every
job folder is a whole job with an outcome; a failure says ``disk full (…)``), no
temp file left, and once space is freed `blut cache verify` finds nothing wrong.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from blut.containment.doctor import check_disk
from blut.containment.result import outcome_from_record, read_record, reserve_record
from blut.containment.systemd import STOPPOST
from blut.jobs.store import JobStore
from tests.conftest import blut

SIZE_KB = 2048
FREE_KB = [0, 40, 72, 96, 112, 128, 152, 184, 232, 768]
"""Free space left at each level: from nothing to enough for the whole smoke recipe (a run
needs more than its files: the cache index's write-ahead log grows until a checkpoint)."""
COMMAND_EVERY = 3
"""A `blut run` command job at every third level (the rest run the smoke recipe)."""


def _at_once(*commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Run several `blut` commands side by side (the disk stays as full for each)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "blut", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in commands
    ]
    done = []
    for argv, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=60)
        done.append(subprocess.CompletedProcess(argv, proc.returncode, out, err))
    return done


def _free(path: Path) -> int:
    return shutil.disk_usage(path).free


@pytest.fixture
def small_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A BLUT_HOME on its own 2 MiB tmpfs (root only: mounting needs it)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the full-disk test runs as root)")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_KB}k,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    home = mnt / "home"
    monkeypatch.setenv("BLUT_HOME", str(home))
    try:
        yield home
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path, leave_kb: int) -> Path:
    """A filler file that leaves ``leave_kb`` KiB free (tmpfs counts whole 4 KiB pages)."""
    filler = mnt / "filler"
    size = max(0, _free(mnt) - leave_kb * 1024)
    with filler.open("wb") as f:
        while size > 0:
            try:
                size -= f.write(b"\1" * min(size, 1 << 20))
            except OSError:
                break
    return filler


def _clean(result: subprocess.CompletedProcess[str], what: str) -> None:
    """No traceback; a command that gave up said why in one line (a full disk: exit 2)."""
    assert "Traceback" not in result.stderr, f"{what}:\n{result.stderr}"
    assert result.returncode in (0, 1, 2), f"{what}: rc {result.returncode}\n{result.stderr}"
    if result.returncode == 2:
        lines = [ln for ln in result.stderr.splitlines() if ln.startswith("blut: error:")]
        assert len(lines) == 1 and "disk full (" in lines[0], f"{what}:\n{result.stderr}"


def _check_jobs(home: Path) -> None:
    """Every job folder is a whole job that ended; a failure names the full disk."""
    store = JobStore(home)
    assert sorted(p.name for p in store.jobs_dir.iterdir()) == store.ids(), "a job without job.json"
    for job in store.all():
        view = job.view()
        assert view.terminal, f"job {job.id} never recorded an outcome: {view}"
        if view.state != "succeeded":
            assert "disk full (" in (view.detail or ""), f"job {job.id}: {view.detail}"
        driver = job.driver_log.read_text() if job.driver_log.exists() else ""
        assert "Traceback" not in driver, f"job {job.id} driver.log:\n{driver}"
    for path in home.rglob("*"):
        assert ".tmp" not in path.name, f"left behind: {path}"


def test_a_full_disk_at_any_level_is_a_clean_recorded_outcome(small_home: Path) -> None:
    mnt = small_home.parent
    first = blut("recipe", "run", "smoke")
    assert first.returncode == 0, first.stderr
    kept = set(JobStore(small_home).ids())
    outcomes: dict[int, str] = {}
    for level, free_kb in enumerate(FREE_KB):
        filler = _fill(mnt, free_kb)
        if level % COMMAND_EVERY == 2:
            submit = blut("run", "--name", f"c{level}", "--", "sh", "-c", "echo hi; echo more")
        else:
            submit = blut("recipe", "run", "smoke", "--set", f"make.seed={level + 1}")
        _clean(submit, f"submit with {free_kb} KiB free")
        if submit.returncode == 2:
            assert set(JobStore(small_home).ids()) == kept, "a refused submit left a job"
        outcomes[free_kb] = {0: "succeeded", 1: "failed", 2: "refused"}[submit.returncode]
        new = set(JobStore(small_home).ids()) - kept
        while_full = _at_once(
            ["jobs", "--all"],
            ["cache", "ls"],
            ["cache", "verify"],
            ["cache", "prune", "--older-than", "1000d"],
            *(["log", j] for j in new),
        )
        for result in while_full:
            _clean(result, f"blut {' '.join(result.args)} with {free_kb} KiB free")
        verify = while_full[2]
        assert verify.returncode != 1, f"verify found damage on a full disk:\n{verify.stderr}"
        _check_jobs(small_home)
        filler.unlink()
        for job in new:  # keep the 2 MiB for the next level
            shutil.rmtree(small_home / "jobs" / job)

    after = blut("cache", "verify")
    assert after.returncode == 0, after.stderr
    assert " 0 bad, 0 orphans" in after.stderr, after.stderr
    listed = blut("jobs", "--all", "--format", "json")
    assert listed.returncode == 0 and all(
        row["state"] == "succeeded" for row in json.loads(listed.stdout)
    ), listed.stdout
    # Every way of ending was seen: refused at submit, failed for a full disk, and succeeded.
    assert set(outcomes.values()) == {"refused", "failed", "succeeded"}, outcomes


def _stoppost(result: Path) -> subprocess.CompletedProcess[str]:
    """The ExecStopPost helper as systemd runs it after a unit exited with 1."""
    env = {**os.environ, "SERVICE_RESULT": "exit-code", "EXIT_CODE": "exited", "EXIT_STATUS": "1"}
    return subprocess.run(
        ["/bin/sh", str(STOPPOST), str(result)], env=env, capture_output=True, text=True
    )


def test_the_stop_helper_records_on_a_full_disk_over_its_reserve(small_home: Path) -> None:
    small_home.mkdir()
    reserved, bare = small_home / "result", small_home / "bare-result"
    reserve_record(reserved)
    _fill(small_home.parent, 0)
    assert _free(small_home) == 0
    done = _stoppost(reserved)
    assert done.returncode == 0, done.stderr
    record = read_record(reserved)
    assert record is not None and outcome_from_record(record).detail == "exited with code 1"
    assert _stoppost(bare).returncode != 0  # no reserve, no room: no record ...
    assert sorted(p.name for p in small_home.iterdir()) == ["result"]  # ... and no temp file


def test_doctor_fails_the_disk_check_on_a_nearly_full_home(small_home: Path) -> None:
    check = check_disk(small_home)
    assert check.status == "fail"
    assert "under 1.0 GiB, jobs may soon fail with 'disk full'" in check.summary
