"""`--launcher ray` on a real two-node Ray cluster: stages as Ray jobs, contained on their node.

Every test shares the session's one cluster (tests/raycluster.py); each Ray job costs
seconds, so the stages here are few and short.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from blut.containment.noderun import read_node_note
from blut.containment.ray import cluster_nodes
from blut.containment.result import outcome_from_record, read_record
from blut.jobs.store import Job, JobStore
from blut.status.events import parse_line
from blut.status.metrics import read_metrics
from blut.status.tailer import read_events
from tests.conftest import blut, wait_for_job
from tests.raycluster import PIN, RayCluster

pytestmark = [pytest.mark.ray, pytest.mark.systemd]

PY = sys.executable
ALLOCATE = "b = []\nwhile True:\n    b.append(bytearray(10 * 2**20))\n    print(len(b) * 10, 'MB', flush=True)\n"


def on_ray(cluster: RayCluster) -> list[str]:
    return ["--launcher", "ray", "--ray-address", cluster.address]


def started(job: Job) -> Counter[str]:
    return Counter(
        e.stage or "" for e in read_events(job.status_path) if e.event == "stage_started"
    )


def submission_ids(cluster: RayCluster) -> set[str]:
    return {j.submission_id for j in cluster.client().list_jobs()}  # type: ignore[attr-defined]


def ray_job(cluster: RayCluster, unit: str) -> Any:
    return cluster.client().get_job_info(unit)  # type: ignore[attr-defined]


def only_job(home: Path) -> Job:
    store = JobStore(home)
    [job_id] = store.ids()
    return store.load(store.paths(job_id).dir)


def test_smoke_runs_as_ray_jobs_one_stage_pinned_and_a_cached_rerun_launches_nothing(
    blut_home: Path, ray_cluster: RayCluster
) -> None:
    run = ("recipe", "run", "smoke", *on_ray(ray_cluster), "--ray-resource", f"cube={PIN}")
    result = blut(*run, timeout=300)
    assert result.returncode == 0, result.stderr
    job = only_job(blut_home)
    assert job.spec.ray_address == ray_cluster.address
    assert job.spec.ray_resources == {"cube": {PIN: 1.0}}
    view = job.view()
    assert view.state == "succeeded"
    assert started(job) == Counter(make=1, square=1, cube=1, total=1)
    events = [e for e in read_events(job.status_path) if e.event == "stage_started"]
    assert {(e.launcher, e.contained) for e in events} == {("ray", True)}  # type: ignore[attr-defined]
    [second] = [n for n in cluster_nodes(ray_cluster.address) if PIN in n.custom]
    unit = job.spec.stage_unit("cube")
    wait_for_job(job, lambda v: str(ray_job(ray_cluster, unit).status) == "SUCCEEDED", timeout=30)
    assert ray_job(ray_cluster, unit).driver_node_id == second.node_id
    for stage in view.stages:  # each ran under the node's systemd user manager
        note = read_node_note(job.result_path(stage))
        assert note is not None and (note.launcher, note.warning) == ("systemd", None)
        assert (view.stages[stage].node, view.stages[stage].contained) == (note.node, True)
    assert "total 348" in job.log_path("total").read_text()  # the log came back to its file
    said = [e.msg for e in read_events(job.status_path) if e.event == "log"]  # type: ignore[attr-defined]
    assert sum(m.startswith("runs on node ") for m in said) == 4, said

    before = submission_ids(ray_cluster)
    again = blut(*run, timeout=120)
    assert again.returncode == 0, again.stderr
    assert submission_ids(ray_cluster) == before
    [rerun] = [j for j in JobStore(blut_home).ids() if j != job.id]
    rerun_job = JobStore(blut_home).load(JobStore(blut_home).paths(rerun).dir)
    assert rerun_job.view().state == "succeeded" and not started(rerun_job)


def test_a_stage_past_its_ceiling_on_a_node_ends_oom_with_peak_vs_ceiling(
    blut_home: Path, ray_cluster: RayCluster
) -> None:
    result = blut("run", "--memory-max", "100M", *on_ray(ray_cluster), "--", PY, "-c", ALLOCATE)
    assert result.returncode == 1
    assert "killed: out of memory (peak" in result.stderr, result.stderr
    assert "of 100.0 MiB)" in result.stderr
    job = only_job(blut_home)
    stage = job.view().stages["main"]
    assert (stage.state, stage.reason) == ("failed", "oom")
    assert stage.peak_memory is not None and stage.peak_memory >= 90 << 20
    unit = job.spec.stage_unit("main")  # Ray marks it once its entrypoint exited (code 1)
    wait_for_job(job, lambda v: str(ray_job(ray_cluster, unit).status) == "FAILED", timeout=30)


HOLD = "import time\nb = bytearray(60 * 2**20)\ntime.sleep(300)\n"


def test_cancel_stops_the_stage_on_its_node(blut_home: Path, ray_cluster: RayCluster) -> None:
    result = blut(
        "run", "--detach", "--memory-max", "1G", *on_ray(ray_cluster), "--", PY, "-c", HOLD
    )
    assert result.returncode == 0, result.stderr
    job = only_job(blut_home)
    wait_for_job(job, lambda v: read_node_note(job.result_path("main")) is not None, timeout=120)
    unit = job.spec.stage_unit("main")
    wait_for_job(job, lambda v: unit_active(unit), timeout=30)  # running on the node
    # its memory, sampled on its node, reaches the stream as a local unit's does
    wait_for_job(job, lambda v: memory_seen(job) >= 60 << 20, timeout=30)
    cancelled = blut("cancel", "--yes", job.id)
    assert cancelled.returncode == 0, cancelled.stderr
    view = wait_for_job(job, timeout=60)
    assert (view.state, view.stages["main"].reason) == ("cancelled", "cancelled"), view
    record = read_record(job.result_path("main"))
    assert record is not None and outcome_from_record(record).kind == "signal"  # the unit stopped
    assert not unit_active(unit)
    ended = ("STOPPED", "FAILED", "SUCCEEDED")  # Ray marks it once its entrypoint exited
    wait_for_job(job, lambda v: str(ray_job(ray_cluster, unit).status) in ended, timeout=30)


def memory_seen(job: Job) -> int:
    """The largest memory sample of stage main in the job's stream (0: none yet)."""
    samples = [
        e.get("memory_bytes") or 0
        for e in map(json.loads, job.status_path.read_text().splitlines())
        if e.get("event") == "resources" and e.get("stage") == "main"
    ]
    return max(samples, default=0)


def unit_active(unit: str) -> bool:
    shown = subprocess.run(
        ["systemctl", "--user", "is-active", f"{unit}.service"], capture_output=True, text=True
    )
    return shown.stdout.strip() in ("active", "activating", "deactivating")


def reattached(job: Job) -> bool:
    lines = job.status_path.read_text().splitlines()
    return any(json.loads(line).get("msg", "").startswith("re-attached to") for line in lines)


def test_a_killed_executor_is_resumed_and_reattaches_without_running_a_stage_twice(
    blut_home: Path, ray_cluster: RayCluster, tmp_path: Path
) -> None:
    go, runs = tmp_path / "go", tmp_path / "runs"
    script = f"echo ran >> {runs}; while [ ! -e {go} ]; do sleep 0.05; done; echo finished"
    result = blut("run", "--detach", *on_ray(ray_cluster), "--", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    job = only_job(blut_home)
    wait_for_job(job, lambda v: runs.exists(), timeout=120)
    subprocess.run(
        ["systemctl", "--user", "kill", "--signal=SIGKILL", f"{job.spec.driver_unit}.service"],
        check=True,
    )
    wait_for_job(job, lambda v: not unit_active(job.spec.driver_unit), timeout=30)
    resumed = blut("plan", "resume", "--detach", job.id)
    assert resumed.returncode == 0, resumed.stderr
    wait_for_job(job, lambda v: reattached(job), timeout=60)  # found on Ray by its id
    go.touch()
    view = wait_for_job(job, timeout=120)
    assert view.state == "succeeded", view
    assert runs.read_text() == "ran\n"
    assert started(job) == Counter(main=1)
    assert blut("log", job.id).stdout.strip() == "finished"


def doctor_checks(address: str, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    result = blut("doctor", "--ray-address", address, "--format", "json", env=env, timeout=200)
    assert result.returncode in (0, 1, 2), result.stderr
    return {c["name"]: c for c in json.loads(result.stdout)}


def test_doctor_checks_the_cluster_its_token_and_each_nodes_user_manager(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    checks = doctor_checks(ray_cluster.address)
    cluster, nodes = checks["ray-cluster"], checks["ray-nodes"]
    assert cluster["status"] == "ok" and "2 of 2 nodes alive" in cluster["summary"], cluster
    assert f"custom resources: {PIN}" in cluster["summary"]
    assert nodes["status"] == "ok" and len(nodes["detail"]["nodes"]) == 2, nodes

    wrong = tmp_path / "token"
    wrong.write_text("0" * 64)
    refused = doctor_checks(ray_cluster.address, env={"RAY_AUTH_TOKEN_PATH": str(wrong)})
    assert refused["ray-cluster"]["status"] == "fail", refused["ray-cluster"]
    assert "token" in refused["ray-cluster"]["summary"] and "ray-nodes" not in refused


def test_a_short_quant_train_on_ray_has_the_same_stages_ceilings_and_curves(
    blut_home: Path, ray_cluster: RayCluster
) -> None:
    quick = ("train.epochs=2", "train.hidden=8", "train.threads=1")
    sets = [arg for s in quick for arg in ("--set", s)]
    run = ("recipe", "run", "quant-train", *sets, *on_ray(ray_cluster))
    result = blut(*run, "--ray-resource", f"train={PIN}", timeout=300)
    assert result.returncode == 0, result.stderr
    job = only_job(blut_home)
    view = job.view()
    assert list(view.stages) == ["encode", "label", "split", "train", "evaluate"]
    assert all(s.state == "succeeded" and s.contained and s.node for s in view.stages.values())
    assert view.stages["train"].memory_max == 2 << 30
    metrics = read_metrics(job.dir / "stages" / "train" / "metrics")
    assert sorted(metrics.column("epoch").to_pylist()) == [1, 2]  # the curves came back
    assert_relayed_once(job, "train")


def assert_relayed_once(job: Job, stage: str) -> None:
    """The stage wrote its events only to its own file; the executor relayed each line of it
    into status.jsonl once, in order, before the stage's end."""
    own = job.paths.stage(stage).events.read_bytes().splitlines()
    kinds = Counter(parse_line(line).event for line in own)
    assert kinds["progress"] and kinds["metric"] and kinds["log"], kinds
    stream = job.status_path.read_bytes().splitlines()
    theirs = set(own)
    assert [line for line in stream if line in theirs] == own
    from_stage = ("progress", "metric", "checkpoint")  # events only a stage emits
    events = [(line, parse_line(line)) for line in stream]
    assert all(line in theirs for line, e in events if e.stage == stage and e.event in from_stage)
    [end] = [i for i, (_, e) in enumerate(events) if e.stage == stage and e.event == "stage_done"]
    assert max(i for i, (line, _) in enumerate(events) if line in theirs) < end
