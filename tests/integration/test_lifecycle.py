"""The one lifecycle under real systemd units: an executor killed while its stage runs
(orphans are re-adopted, never recorded failed while they run), a job folder deleted
under its executor, and a job still being submitted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from blut.containment.systemd import SystemdLauncher
from blut.jobs.api import submit_recipe
from blut.jobs.lifecycle import executor_alive, reconcile
from blut.jobs.recipes import find
from blut.jobs.store import Job, JobStore
from blut.status.events import JobFailed, StageFailed
from blut.status.tailer import read_events
from tests.conftest import blut, wait_for_job

pytestmark = pytest.mark.systemd


def kill_unit(unit: str) -> None:
    """SIGKILL every process of ``unit`` (the executor dying, say of OOM)."""
    subprocess.run(
        ["systemctl", "--user", "kill", "--signal=SIGKILL", f"{unit}.service"], check=True
    )


def unit_active(unit: str) -> bool:
    shown = subprocess.run(
        ["systemctl", "--user", "is-active", f"{unit}.service"], capture_output=True, text=True
    )
    return shown.stdout.strip() in ("active", "activating", "deactivating")


def wait_until(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def jobs_json() -> list[dict[str, Any]]:
    result = blut("jobs", "--all", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def run_detached(blut_home: Path, *command: str) -> Job:
    result = blut("run", "--detach", "--", *command)
    assert result.returncode == 0, result.stderr
    return JobStore(blut_home).get(result.stdout.strip())


def kill_executor_while(job: Job, stage: str) -> None:
    """Wait until ``stage`` runs, then SIGKILL the job's executor (its stage unit lives on)."""
    wait_for_job(job, lambda v: stage in v.stages and v.stages[stage].state == "running")
    kill_unit(job.spec.driver_unit)
    wait_until(lambda: not unit_active(job.spec.driver_unit))
    assert unit_active(job.spec.stage_unit(stage))


def waits_for(go: Path, then: str) -> list[str]:
    """A command that runs until ``go`` exists, then runs ``then``: no race with a clock."""
    return ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done; {then}"]


def test_an_orphaned_command_is_readopted_and_its_outcome_recorded(
    blut_home: Path, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    job = run_detached(blut_home, *waits_for(go, "echo finished"))
    kill_executor_while(job, "main")
    [row] = jobs_json()  # reconcile: the command still runs, so nothing is recorded failed
    assert row["state"] == "running", row
    assert wait_until(lambda: unit_active(job.spec.driver_unit))  # a new executor adopted it
    go.touch()
    view = wait_for_job(job, timeout=30)
    assert view.state == "succeeded" and view.stages["main"].state == "succeeded"
    assert not any(isinstance(e, JobFailed) for e in read_events(job.status_path))
    assert blut("log", job.id).stdout.strip() == "finished"


def test_an_orphaned_command_can_be_cancelled(blut_home: Path) -> None:
    job = run_detached(blut_home, "sleep", "300")
    kill_executor_while(job, "main")
    started = time.monotonic()
    result = blut("cancel", "--yes", job.id)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 25
    view = job.view()
    assert view.state == "cancelled"
    assert not unit_active(job.spec.stage_unit("main"))


def test_an_orphaned_stage_of_a_recipe_can_be_cancelled(blut_home: Path) -> None:
    recipe = find("smoke")
    (args,) = recipe.resolve(sets=["make.sleep=60"], environ={})
    job, _ = submit_recipe(JobStore(blut_home), recipe, args)
    kill_executor_while(job, "make")
    result = blut("cancel", "--yes", job.id, "make", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "stage make cancelled" in result.stderr
    view = wait_for_job(job)
    assert view.state == "failed" and view.reason == "cancelled"
    assert (view.stages["make"].state, view.stages["make"].reason) == ("failed", "cancelled")
    events = read_events(job.status_path)
    ended = max(i for i, e in enumerate(events) if e.event == "job_failed")
    assert [e.event for e in events[ended + 1 :]] == []  # nothing written after the outcome


def test_an_orphan_that_ended_unwatched_is_recorded_from_its_result(
    blut_home: Path, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    job = run_detached(blut_home, *waits_for(go, "exit 3"))
    kill_executor_while(job, "main")
    go.touch()
    wait_until(lambda: job.result_path("main").exists(), timeout=15)
    launcher = SystemdLauncher()
    try:
        view = reconcile(job, launcher)
    finally:
        launcher.close()
    assert (view.state, view.reason, view.exit_code) == ("failed", "exit", 3)
    [failed] = [e for e in read_events(job.status_path) if isinstance(e, StageFailed)]
    assert failed.detail == "exited with code 3"


def test_a_deleted_job_folder_stops_its_executor_and_stages(blut_home: Path) -> None:
    job = run_detached(blut_home, "sleep", "300")
    wait_for_job(job, lambda v: "main" in v.stages and v.stages["main"].state == "running")
    fd = os.open(job.driver_log, os.O_RDONLY)
    try:
        shutil.rmtree(job.dir)
        started = time.monotonic()
        wait_until(lambda: not unit_active(job.spec.driver_unit), timeout=15)
        assert time.monotonic() - started < 10
        wait_until(lambda: not unit_active(job.spec.stage_unit("main")), timeout=15)
        log = os.pread(fd, 1 << 16, 0).decode()
    finally:
        os.close(fd)
    assert "was deleted: stopping its stages and exiting" in log


def test_a_job_being_submitted_is_not_reconciled(blut_home: Path) -> None:
    store = JobStore(blut_home)
    launcher = SystemdLauncher()
    try:
        with store.creating(name="slow", argv=["true"], cwd="/", launcher="systemd") as job:
            # The submitter has not started the executor yet: a reconcile now must wait for
            # it (the job lock) instead of recording the job failed.
            reconciled: list[Any] = []
            import threading

            worker = threading.Thread(target=lambda: reconciled.append(reconcile(job, launcher)))
            worker.start()
            time.sleep(0.5)
            assert reconciled == [] and worker.is_alive()
        worker.join(timeout=30)
        assert reconciled and reconciled[0].state == "failed"  # no executor ever came
        assert "never started" in reconciled[0].detail
        assert not executor_alive(job, launcher)
    finally:
        launcher.close()
