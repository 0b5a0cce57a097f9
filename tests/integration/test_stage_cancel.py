"""Cancelling one stage of a real smoke job (systemd units): `blut cancel JOB STAGE`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from blut.containment.systemd import SystemdLauncher
from blut.jobs.api import submit_recipe
from blut.jobs.cache import Cache
from blut.jobs.recipes import find
from blut.jobs.store import JobStore
from blut.status.tailer import read_events
from tests.conftest import blut, wait_for_job

pytestmark = pytest.mark.systemd


def test_cancel_one_stage_skips_its_dependents_and_the_rest_finishes(blut_home: Path) -> None:
    recipe = find("smoke")
    (args,) = recipe.resolve(sets=["cube.sleep=30"], environ={})
    job, _ = submit_recipe(JobStore(blut_home), recipe, args)
    wait_for_job(job, lambda v: "cube" in v.stages and v.stages["cube"].state == "running")
    started = time.monotonic()
    done = blut("cancel", job.id, "cube", "--yes", timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"job {job.id} stage cube cancelled" in done.stderr
    assert time.monotonic() - started < 25  # stopped, not slept through
    view = wait_for_job(job)
    assert view.state == "failed" and view.reason == "cancelled"
    assert view.detail == "stage cube: cancelled by request"
    stages = view.stages
    assert (stages["cube"].state, stages["cube"].reason) == ("failed", "cancelled")
    assert (stages["total"].state, stages["total"].reason) == ("failed", "skipped")
    assert stages["square"].state == "succeeded" and stages["make"].state == "succeeded"
    assert "total" not in {
        e.stage for e in read_events(job.status_path) if e.event == "stage_started"
    }
    assert {e.stage for e in Cache(blut_home).entries()} == {"make", "square"}
    launcher = SystemdLauncher()
    try:
        assert launcher.find(f"blut-{job.id}-cube", job.dir / "nonexistent") is None
    finally:
        launcher.close()
    again = blut("cancel", job.id, "cube", "--yes")
    assert again.returncode == 2 and "has already ended" in again.stderr
    unknown = blut("cancel", job.id, "nope", "--yes")
    assert unknown.returncode == 2 and "has no stage 'nope'" in unknown.stderr
