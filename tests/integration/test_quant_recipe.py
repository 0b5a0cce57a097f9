"""The quant recipe end to end in real systemd units, on the packaged stocks data."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from blut.jobs.api import new_sweep_id, submit_recipe
from blut.jobs.cache import Cache
from blut.jobs.recipes import find
from blut.jobs.store import Job, JobStore
from blut.status.metrics import read_metrics
from blut.status.tailer import read_events
from tests.conftest import wait_for_job

pytestmark = pytest.mark.systemd

QUICK = ("train.epochs=2", "train.hidden=8", "train.threads=1")
DATA_STAGES = ("encode", "label", "split")


def events(job: Job, kind: str) -> Counter[str]:
    return Counter(e.stage or "" for e in read_events(job.status_path) if e.event == kind)


def submit(home: Path, *sets: str, sweeps: tuple[str, ...] = ()) -> list[Job]:
    recipe = find("quant-train")
    points = recipe.resolve(sets=[*QUICK, *sets], sweeps=sweeps)
    sweep = new_sweep_id() if sweeps else None
    store = JobStore(home)
    jobs = []
    for args in points:
        job, warning = submit_recipe(store, recipe, args, sweep=sweep)
        assert warning is None
        jobs.append(job)
    return jobs


def stage_log(job: Job, stage: str) -> str:
    path = job.log_path(stage)
    return path.read_text() if path.exists() else "(no log)"


def test_quant_train_runs_every_stage_in_a_unit(blut_home: Path) -> None:
    (job,) = submit(blut_home)
    view = wait_for_job(job, timeout=150)
    assert view.state == "succeeded", (view, stage_log(job, "train"))
    stages = view.stages
    assert list(stages) == ["encode", "label", "split", "train", "evaluate"]
    assert all(s.state == "succeeded" and s.contained for s in stages.values())
    assert all(s.unit == f"blut-{job.id}-{s.name}" for s in stages.values())
    assert stages["train"].memory_max == 2 << 30

    metrics = read_metrics(job.dir / "stages" / "train" / "metrics")
    assert metrics.num_rows == 2
    assert sorted(metrics.column("epoch").to_pylist()) == [1, 2]
    assert {"train_loss", "val_loss", "lr"} <= set(metrics.column_names)
    assert any((job.dir / "stages" / "train" / "checkpoints").iterdir())

    cache = Cache(blut_home)
    evaluation = cache.object_path(stages["evaluate"].artifact or "")
    summary = json.loads((evaluation / "summary.json").read_text())
    assert summary
    assert (evaluation / "metrics.parquet").is_file()
    model = cache.object_path(stages["train"].artifact or "")
    assert json.loads((model / "model.json").read_text())
    assert {e.stage for e in cache.entries()} == set(stages)


def test_tiny_ceiling_on_train_fails_oom_and_leaves_no_train_entry(blut_home: Path) -> None:
    (job,) = submit(blut_home, "train.memory_max=60M")
    view = wait_for_job(job, timeout=150)
    assert view.state == "failed" and view.reason == "oom", view
    train = view.stages["train"]
    assert train.state == "failed" and train.reason == "oom", (train, stage_log(job, "train"))
    assert train.memory_max == 60 << 20
    evaluate = view.stages["evaluate"]
    assert evaluate.state == "failed" and evaluate.reason == "skipped"
    assert evaluate.artifact is None
    assert "evaluate" not in events(job, "stage_started")
    assert all(view.stages[s].state == "succeeded" for s in DATA_STAGES)
    assert {e.stage for e in Cache(blut_home).entries()} == set(DATA_STAGES)
    assert not (job.dir / "stages" / "train" / "staging").exists()


def test_lr_sweep_computes_the_data_stages_once(blut_home: Path) -> None:
    jobs = submit(blut_home, sweeps=("train.lr=0.001,0.003",))
    assert len(jobs) == 2
    views = [wait_for_job(job, timeout=120) for job in jobs]
    assert [v.state for v in views] == ["succeeded"] * 2, views
    started = Counter[str]()
    cached = Counter[str]()
    for job in jobs:
        started.update(events(job, "stage_started"))
        cached.update(events(job, "stage_cached"))
    assert started == Counter(encode=1, label=1, split=1, train=2, evaluate=2)
    assert cached == Counter(encode=1, label=1, split=1)
    for stage in DATA_STAGES:
        assert sorted(v.stages[stage].state for v in views) == ["cached", "succeeded"]
        assert views[0].stages[stage].artifact == views[1].stages[stage].artifact
    assert views[0].stages["train"].artifact != views[1].stages["train"].artifact
