"""A job's environment reaches its stages only through the job's 0600 env file: never the user
manager's unit files, never job.json; and everything blut writes stays private under umask 000."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from blut.jobs.store import Job, JobStore
from tests.conftest import blut, wait_for_job

MARK = f"canary-{os.urandom(4).hex()}"
"""What only this run's canaries contain (a stale unit of another run may hold its own)."""
CANARY = f'{MARK} "quoted" $HOME `id` \\ and\na second line  '
PLAIN = f"{MARK}-plain"
WAIT_FOR_GO = 'while [ ! -e "$GO" ]; do sleep 0.02; done'


@pytest.fixture
def submitter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A submitter with the canaries in its environment; yields the go-file its jobs wait for
    (created at the end in any case, so no job is left waiting)."""
    monkeypatch.setenv("BLUT_TEST_CANARY", CANARY)
    monkeypatch.setenv("BLUT_TEST_PLAIN", PLAIN)
    go = tmp_path / "go"
    monkeypatch.setenv("GO", str(go))
    yield go
    go.touch()


def manager_files() -> list[Path]:
    """Every readable file the user manager keeps under its runtime dir (unit files included)."""
    root = Path(os.environ["XDG_RUNTIME_DIR"]) / "systemd"
    return [p for p in root.rglob("*") if p.is_file() and os.access(p, os.R_OK)]


def holding(paths: list[Path], text: str) -> list[str]:
    return [str(p) for p in paths if text.encode() in p.read_bytes()]


def submit(*args: str) -> Job:
    result = blut(*args)
    assert result.returncode == 0, result.stderr
    [job_id] = result.stdout.split()
    return JobStore(Path(os.environ["BLUT_HOME"])).get(job_id)


def running_units(job: Job) -> list[Path]:
    """The transient unit files of the job's units, once its stage runs."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        units = [p for p in manager_files() if p.name.startswith(f"blut-{job.id}")]
        if len(units) >= 2:  # the executor's and a stage's
            return units
        time.sleep(0.05)
    raise AssertionError(f"no units of {job.id} under {os.environ['XDG_RUNTIME_DIR']}")


def test_the_environment_stays_out_of_unit_files(blut_home: Path, submitter: Path) -> None:
    script = f'printf "<%s>\\n" "$BLUT_TEST_CANARY" "$BLUT_TEST_PLAIN"; {WAIT_FOR_GO}'
    job = submit("run", "--detach", "--", "sh", "-c", script)
    units = running_units(job)
    assert holding(manager_files(), MARK) == []
    assert all("Environment=" in u.read_text() for u in units)  # the files we looked in
    submitter.touch()
    assert wait_for_job(job).state == "succeeded"
    assert job.log_path("main").read_text() == f"<{CANARY}>\n<{PLAIN}>\n"
    job_files = [job.paths.spec, job.paths.plan, job.paths.status, job.paths.summary]
    assert holding(job_files, MARK) == []
    assert stat.S_IMODE(job.paths.env.stat().st_mode) == 0o600


def test_env_clear_and_env(blut_home: Path, submitter: Path) -> None:
    script = 'printf "<%s|%s|%s>\\n" "$BLUT_TEST_CANARY" "$EXTRA" "${PATH:+path}"'
    cleared = blut("run", "--env-clear", "--env", "EXTRA=x y", "--", "sh", "-c", script)
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout == "<|x y|path>\n"
    passed = blut("run", "--env-clear", "--env", "BLUT_TEST_CANARY", "--", "sh", "-c", script)
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout == f"<{CANARY}||path>\n"


def test_a_recipe_runs_with_a_cleared_environment(blut_home: Path, submitter: Path) -> None:
    job = submit("recipe", "run", "smoke", "--detach", "--env-clear", "--set", "make.sleep=1")
    running_units(job)
    assert holding(manager_files(), MARK) == []
    assert wait_for_job(job).state == "succeeded"
    files = [p for p in job.dir.rglob("*") if p.is_file()]
    assert holding(files, MARK) == []


def test_everything_is_private_under_umask_000(blut_home: Path) -> None:
    for args in (
        ["recipe", "run", "smoke"],
        ["run", "--", "sh", "-c", "echo hi; echo oops >&2; exit 3"],
    ):
        subprocess.run(
            [sys.executable, "-m", "blut", *args], capture_output=True, umask=0, check=False
        )
    store = JobStore(blut_home)
    for job_id in store.ids():  # each executor's stop helper has recorded its end
        job = store.get(job_id)
        wait_for_job(job, lambda v, job=job: job.driver_result.exists())
    paths = [blut_home, *blut_home.rglob("*")]
    assert any(p.name == "log" for p in paths) and any(p.name == "result" for p in paths)
    wider = [f"{stat.S_IMODE(p.lstat().st_mode):o} {p}" for p in paths if p.lstat().st_mode & 0o077]
    assert wider == []
