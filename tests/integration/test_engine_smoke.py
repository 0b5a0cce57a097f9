"""The smoke recipe end to end in real systemd units: cache, failure, cancel, resume, sweeps."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from blut.containment.systemd import SystemdLauncher
from blut.jobs.api import new_sweep_id, resume, submit_recipe
from blut.jobs.cache import Cache
from blut.jobs.cancel import cancel
from blut.jobs.recipes import find
from blut.jobs.store import Job, JobStore
from blut.status.events import JobStarted
from blut.status.tailer import read_events
from tests.conftest import wait_for_job

pytestmark = pytest.mark.systemd


def started(job: Job) -> Counter[str]:
    return Counter(
        e.stage or "" for e in read_events(job.status_path) if e.event == "stage_started"
    )


def run_smoke(home: Path, *sets: str, sweep: str | None = None) -> Job:
    recipe = find("smoke")
    (args,) = recipe.resolve(sets=sets)
    job, warning = submit_recipe(JobStore(home), recipe, args, sweep=sweep)
    assert warning is None
    return job


def test_smoke_runs_in_units_and_a_rerun_launches_nothing(blut_home: Path) -> None:
    job = run_smoke(blut_home)
    view = wait_for_job(job)
    assert view.state == "succeeded", view
    assert {s.name: s.state for s in view.stages.values()} == dict.fromkeys(
        ["make", "square", "cube", "total"], "succeeded"
    )
    assert all(s.unit == f"blut-{job.id}-{s.name}" and s.contained for s in view.stages.values())
    report = Cache(blut_home).object_path(view.stages["total"].artifact or "") / "report.json"
    data = json.loads(report.read_text())
    assert data["total"] == sum(data["sums"].values()) and set(data["sums"]) == {"square", "cube"}

    again = run_smoke(blut_home)
    view2 = wait_for_job(again)
    assert view2.state == "succeeded"
    assert {s.state for s in view2.stages.values()} == {"cached"}
    assert started(again) == Counter()
    assert view2.stages["total"].artifact == view.stages["total"].artifact


def test_a_fully_cached_rerun_ends_in_the_submitting_process(blut_home: Path) -> None:
    first = run_smoke(blut_home)
    assert wait_for_job(first).state == "succeeded"

    again = run_smoke(blut_home)  # returns with the job already ended: no unit at all
    view = again.view()
    assert view.state == "succeeded" and {s.state for s in view.stages.values()} == {"cached"}
    assert not again.driver_log.exists() and not again.driver_result.exists()
    events = list(read_events(again.status_path))
    (begun,) = [e for e in events if e.event == "job_started"]
    assert isinstance(begun, JobStarted) and begun.driver is None
    assert "every stage is cached: no unit started" in [getattr(e, "msg", "") for e in events]
    assert Cache(blut_home).pinned() == set()  # the in-process run let go of its pins

    changed = run_smoke(blut_home, "total.sleep=0.1")  # one stage must run: the unit starts
    view = wait_for_job(changed)
    assert view.state == "succeeded" and changed.driver_log.exists()
    assert started(changed) == Counter({"total": 1})


def test_an_entry_gone_after_the_cached_check_hands_over_to_the_executor_unit(
    blut_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_smoke(blut_home, "total.sleep=0.2")
    assert wait_for_job(first).state == "succeeded"
    # As if a prune removed `total`'s entry between the check and the in-process run.
    monkeypatch.setattr("blut.jobs.executor.all_cached", lambda plan, cache, *more: True)
    job = run_smoke(blut_home, "total.sleep=0.3")
    view = wait_for_job(job)
    assert view.state == "succeeded", view
    assert job.driver_log.exists()
    assert started(job) == Counter({"total": 1})
    assert {n: s.state for n, s in view.stages.items() if n != "total"} == dict.fromkeys(
        ["make", "square", "cube"], "cached"
    )
    stage_cached = [e.stage for e in read_events(job.status_path) if e.event == "stage_cached"]
    assert sorted(stage_cached) == ["cube", "make", "square"]  # recorded once, not again
    messages = [getattr(e, "msg", "") for e in read_events(job.status_path)]
    assert "every stage is cached: no unit started" not in messages


def test_failure_skips_dependents_and_independent_branch_finishes(blut_home: Path) -> None:
    job = run_smoke(blut_home, "square.fail=true", "cube.sleep=0.5")
    view = wait_for_job(job)
    assert view.state == "failed" and view.reason == "exit"
    assert view.detail == "stage square: exited with code 3"
    stages = view.stages
    assert stages["square"].state == "failed" and stages["square"].exit_code == 3
    assert stages["cube"].state == "succeeded"
    assert stages["total"].state == "failed" and stages["total"].reason == "skipped"
    assert "total" not in started(job)
    cached = {e.stage for e in Cache(blut_home).entries()}
    assert cached == {"make", "cube"}
    assert not (job.dir / "stages" / "square" / "staging").exists()


def test_cancel_stops_running_units(blut_home: Path) -> None:
    job = run_smoke(blut_home, "make.sleep=60")
    wait_for_job(job, lambda v: "make" in v.stages and v.stages["make"].state == "running")
    launcher = SystemdLauncher()
    try:
        view = cancel(job, launcher, wait=30)
        assert view.state == "cancelled"
        assert view.stages["make"].reason == "cancelled"
        assert launcher.find(f"blut-{job.id}-make", job.dir / "nonexistent") is None
    finally:
        launcher.close()
    assert Cache(blut_home).entries() == []


def test_resume_after_executor_sigkill_runs_every_stage_once(blut_home: Path) -> None:
    job = run_smoke(blut_home, "make.sleep=2", "square.sleep=1")
    wait_for_job(job, lambda v: "make" in v.stages and v.stages["make"].state == "running")
    subprocess.run(
        ["systemctl", "--user", "kill", "--signal=SIGKILL", f"{job.spec.driver_unit}.service"],
        check=True,
        env=os.environ,
    )
    time.sleep(0.5)
    launcher = SystemdLauncher()
    try:
        handle = launcher.find(f"blut-{job.id}-make", job.result_path("make"))
        assert handle is not None and launcher.state(handle).phase == "running"
    finally:
        launcher.close()
    resume(JobStore(blut_home), job)
    view = wait_for_job(job)
    assert view.state == "succeeded", view
    assert started(job) == Counter(dict.fromkeys(["make", "square", "cube", "total"], 1))
    assert {e.event for e in read_events(job.status_path) if e.stage == "make"} >= {"stage_done"}


def test_sweep_shares_upstream_stages(blut_home: Path) -> None:
    recipe = find("smoke")
    points = recipe.resolve(sets=["make.sleep=0.5"], sweeps=["total.sleep=0,0.1,0.2,0.3"])
    assert len(points) == 4
    sweep = new_sweep_id()
    store = JobStore(blut_home)
    jobs = [submit_recipe(store, recipe, args, sweep=sweep)[0] for args in points]
    views = [wait_for_job(job, timeout=120) for job in jobs]
    assert [v.state for v in views] == ["succeeded"] * 4
    total = Counter[str]()
    for job in jobs:
        total.update(started(job))
    assert total == Counter(make=1, square=1, cube=1, total=4)
    assert {v.sweep for v in views} == {sweep}


def _submit_five(home: str, env: dict[str, str], out: str) -> None:
    os.environ.update(env, BLUT_HOME=home)
    recipe = find("smoke")
    points = recipe.resolve(sets=["make.sleep=0.3"], sweeps=["total.sleep=range(0,5)"])
    ids = [submit_recipe(JobStore(Path(home)), recipe, args)[0].id for args in points]
    Path(out).write_text("\n".join(ids))


def test_twenty_jobs_from_four_processes_compute_each_key_once(
    blut_home: Path, tmp_path: Path, manager_env: dict[str, str]
) -> None:
    ctx = multiprocessing.get_context("spawn")
    outs = [tmp_path / f"ids-{i}" for i in range(4)]
    procs = [
        ctx.Process(target=_submit_five, args=(str(blut_home), manager_env, str(out)))
        for out in outs
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    store = JobStore(blut_home)
    jobs = [store.get(i) for out in outs for i in out.read_text().split()]
    assert len(jobs) == 20
    views = [wait_for_job(job, timeout=240) for job in jobs]
    assert [v.state for v in views] == ["succeeded"] * 20
    launches = Counter[str]()
    for job in jobs:
        launches.update(started(job))
    assert launches == Counter(make=1, square=1, cube=1, total=5)
    cache = Cache(blut_home)
    entries = cache.entries()
    assert len(entries) == 8 and len({e.key for e in entries}) == 8
    assert cache.verify().corrupt == [] and cache.verify().orphans == []
    assert list(cache.pending.iterdir()) == []
