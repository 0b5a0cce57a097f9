"""Sweep members as real job folders: job.json, args.json, Parquet metric parts (through
:class:`~blut.status.metrics.MetricsWriter`) and events (through the real writer)."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from blut.jobs.store import Job, JobSpec, JobStore
from blut.status.atomic import atomic_write_json
from blut.status.events import (
    Event,
    JobDone,
    JobFailed,
    JobStarted,
    JobSubmitted,
    Metric,
    StageDone,
    StageFailed,
    StageStarted,
)
from blut.status.metrics import MetricsWriter
from tests.cockpit.fakejobs import T0, emit

SWEEP = "sweep-20250615-120000-abcd"
BASE_ARGS: dict[str, Any] = {
    "encode": {"dataset": "stocks", "window": 20},
    "train": {"lr": 0.001, "epochs": 3, "hidden": 32, "model": "mlp"},
}


def with_train(**train: Any) -> dict[str, Any]:
    """:data:`BASE_ARGS` with ``train`` values laid on top."""
    args = copy.deepcopy(BASE_ARGS)
    args["train"].update(train)
    return args


def sweep_member(
    home: Path,
    job_id: str,
    args: Mapping[str, Any],
    epochs: Sequence[Mapping[str, float]],
    *,
    end: str = "succeeded",
    sweep: str | None = SWEEP,
    start: float = T0,
) -> Job:
    """A quant-train-like recipe job of ``sweep`` (None: of none) whose train stage wrote one
    Parquet part (and one metric event) per epoch row; ``end``: succeeded, failed (oom) or
    running."""
    store = JobStore(home)
    job_dir = store.jobs_dir / job_id
    (job_dir / "stages" / "train").mkdir(parents=True)
    spec = JobSpec(
        id=job_id,
        name="quant-train",
        argv=["python", "-m", "blut.jobs.executor"],
        cwd="/tmp",
        launcher="systemd",
        created=start,
        stages=["train"],
        recipe="quant-train",
    )
    (job_dir / "job.json").write_text(json.dumps(asdict(spec)))
    job = Job(job_dir, spec)
    atomic_write_json(job.paths.args, dict(args))
    writer = MetricsWriter(job.paths.stage("train").metrics)
    j = job.id
    events: list[Event] = [
        JobSubmitted(job=j, ts=start, name="quant-train", recipe="quant-train", sweep=sweep),
        JobStarted(job=j, ts=start + 1),
        StageStarted(job=j, stage="train", ts=start + 1, unit=f"blut-{j}-train"),
    ]
    for epoch, row in enumerate(epochs, 1):
        writer.write_epoch(epoch, [{"step": 10 * epoch, **row}])
        values = dict(row)
        events.append(Metric(job=j, stage="train", ts=start + 1 + epoch, values=values))
    done = start + 2 + len(epochs)
    if end == "succeeded":
        events += [
            StageDone(job=j, stage="train", ts=done, seconds=done - start - 1),
            JobDone(job=j, ts=done),
        ]
    elif end == "failed":
        events += [
            StageFailed(job=j, stage="train", ts=done, reason="oom", detail="oom-kill"),
            JobFailed(job=j, ts=done, reason="oom", detail="stage train: out of memory"),
        ]
    emit(job, *events)
    return job


def losses(first: float, rate: float, epochs: int = 3) -> list[dict[str, float]]:
    """Epoch rows whose losses fall by ``rate`` each epoch (val a little above train)."""
    return [
        {
            "train_loss": first * rate**e,
            "val_loss": 1.1 * first * rate**e,
            "val_accuracy": 0.4 + 0.05 * e,
            "lr": 0.001,
        }
        for e in range(epochs)
    ]


def three_point_sweep(home: Path) -> list[Job]:
    """train.lr 0.01 (succeeded), 0.001 (succeeded), 0.1 (failed after one epoch); the
    0.001 point also changed train.hidden, so two keys vary."""
    return [
        sweep_member(home, "20250615-120001-aaa1", with_train(lr=0.01), losses(2.0, 0.5)),
        sweep_member(
            home, "20250615-120002-aaa2", with_train(lr=0.001, hidden=64), losses(2.0, 0.8)
        ),
        sweep_member(
            home, "20250615-120003-aaa3", with_train(lr=0.1), losses(2.0, 0.9, 1), end="failed"
        ),
    ]
