"""Retention for real: a quant-train job's checkpoints trimmed after success and kept after a
kill, `blut jobs prune` against real systemd jobs, and the doctor's space check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blut.jobs.api import submit_recipe
from blut.jobs.recipes import find
from blut.jobs.store import Job, JobStore
from blut.payload.train import KILL_ENV
from tests.conftest import blut, wait_for_job

pytestmark = pytest.mark.systemd

QUICK = ("train.epochs=3", "train.hidden=8", "train.threads=1", "train.keep_checkpoints=3")


def quant_train(home: Path, *sets: str) -> Job:
    recipe = find("quant-train")
    (args,) = recipe.resolve(sets=[*QUICK, *sets])
    job, _warning = submit_recipe(JobStore(home), recipe, args)
    return job


def checkpoint_names(job: Job) -> list[str]:
    folder = job.paths.stage("train").checkpoints
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_quant_train_checkpoints_trimmed_after_success_kept_after_a_kill(
    blut_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    done = quant_train(blut_home)
    view = wait_for_job(done, timeout=150)
    assert view.state == "succeeded", view
    assert checkpoint_names(done) == ["best.pt", "epoch-0003.meta.json", "epoch-0003.pt"]
    assert (
        "checkpoints after success (keep 1): kept epoch-0003; removed epoch-0001, epoch-0002"
        in done.status_path.read_text()
    )

    monkeypatch.setenv(KILL_ENV, "2")  # the job's environment: SIGKILL after epoch 2
    killed = quant_train(blut_home, "train.seed=7")
    view = wait_for_job(killed, timeout=150)
    assert view.state == "failed" and view.stages["train"].state == "failed", view
    assert checkpoint_names(killed) == [  # what its resume needs: all of it
        "best.pt",
        "epoch-0001.meta.json",
        "epoch-0001.pt",
        "epoch-0002.meta.json",
        "epoch-0002.pt",
    ]
    monkeypatch.delenv(KILL_ENV)

    (tmp_path / "blut.toml").write_text("[retention]\ncheckpoints = 0\n")
    none_kept = quant_train(blut_home, "train.seed=8")
    assert json.loads(none_kept.paths.spec.read_text())["retain_checkpoints"] == 0
    assert wait_for_job(none_kept, timeout=150).state == "succeeded"
    assert not none_kept.paths.stage("train").checkpoints.exists()


def submit(*argv: str) -> str:
    result = blut("run", "--detach", "--", *argv)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_jobs_prune_removes_finished_jobs_never_a_running_one(blut_home: Path) -> None:
    store = JobStore(blut_home)
    running = submit("sleep", "60")
    done = [submit("true"), submit("true")]
    failed = submit("false")
    for job_id in (*done, failed):
        wait_for_job(store.get(job_id))
    wait_for_job(store.get(running), lambda v: v.state == "running")

    bad = blut("jobs", "prune", "--older-than", "3x")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "invalid duration '3x'" in bad.stderr
    assert blut("jobs", "prune").returncode == 2  # no rule: nothing removed unasked

    preview = blut("jobs", "prune", "--keep-last", "0", "--dry-run")
    assert preview.returncode == 0, preview.stderr
    listed = [line.split()[2] for line in preview.stdout.splitlines()]
    assert sorted(listed) == sorted([*done, failed])  # ids of one second: any order
    assert "would remove 3 jobs, freeing" in preview.stderr
    assert "1 not finished or still running kept" in preview.stderr
    assert len(store.ids()) == 4

    only_failed = blut("jobs", "prune", "--failed")
    assert only_failed.stdout.split()[:2] == ["removed", failed], only_failed
    assert sorted(store.ids()) == sorted([running, *done])

    rest = blut("jobs", "prune", "--keep-last", "0")
    assert rest.returncode == 0 and "removed 2 jobs" in rest.stderr, rest
    rows = json.loads(blut("jobs", "--all", "--format", "json").stdout)
    assert [r["id"] for r in rows] == [running]  # the index matches the folders
    assert store.ids() == [running]
    assert store.get(running).view().state == "running"
    assert blut("cancel", "--yes", running).returncode == 0


def test_doctor_shows_jobs_against_cache(blut_home: Path) -> None:
    job = submit("true")
    wait_for_job(JobStore(blut_home).get(job))
    result = blut("doctor", "--format", "json")
    [space] = [c for c in json.loads(result.stdout) if c["name"] == "space"]
    assert space["status"] == "ok" and space["detail"]["job_count"] == 1
    assert space["detail"]["jobs"] > 0 and space["summary"].startswith("jobs ")
