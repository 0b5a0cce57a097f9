"""quant-train with ``train.processes=2``: train runs under torchrun (CPU, gloo) in a real unit."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from blut.jobs.api import submit_recipe
from blut.jobs.cache import Cache
from blut.jobs.recipes import find
from blut.jobs.store import JobStore
from blut.status.metrics import read_metrics
from blut.status.tailer import read_events
from tests.conftest import wait_for_job

pytestmark = pytest.mark.systemd


def test_two_process_train_in_a_unit_writes_one_set_of_outputs(blut_home: Path) -> None:
    recipe = find("quant-train")
    sets = ["train.processes=2", "train.epochs=1", "train.hidden=8", "train.threads=1"]
    (args,) = recipe.resolve(sets=sets)
    job, warning = submit_recipe(JobStore(blut_home), recipe, args)
    assert warning is None
    view = wait_for_job(job, timeout=240)
    log = job.log_path("train").read_text() if job.log_path("train").exists() else ""
    assert view.state == "succeeded", (view, log[-3000:])
    train = view.stages["train"]
    assert train.state == "succeeded" and train.contained
    record = json.loads((job.dir / "stages" / "train" / "launch.json").read_text())
    assert record["processes"] == 2 and record["gpus"] == []

    metrics = read_metrics(job.dir / "stages" / "train" / "metrics")
    assert metrics.num_rows == 1
    model = Cache(blut_home).object_path(train.artifact or "")
    assert json.loads((model / "model.json").read_text())["processes"] == 2

    seen = [e for e in read_events(job.status_path) if e.stage == "train"]
    kinds = Counter(e.event for e in seen)
    assert kinds["checkpoint"] == 1 and kinds["stage_done"] == 1
    messages = [getattr(e, "msg", "") for e in seen if e.event == "log"]
    assert "running as 2 processes under torchrun (CPU, gloo)" in messages
    assert sum("epoch 1/1" in m for m in messages) == 1
    assert not any(m.startswith("rank ") for m in messages)
    assert view.stages["evaluate"].state == "succeeded"
