"""Every telemetry sink for real: a tiny quant-train job in systemd units with all of them on,
each sink's output read back by its own library and compared with the job's status.jsonl."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from blut.jobs.store import JobStore
from blut.status.events import Metric, parse_line
from blut.status.telemetry import Record, mlflow_dir, tensorboard_dir, wandb_dir
from tests.conftest import blut, wait_for_job

pytestmark = pytest.mark.systemd

SINKS = "jsonl,console,tensorboard,mlflow,wandb"
QUICK = ("train.epochs=2", "train.hidden=8", "train.threads=1", "train.metric_every=5")


def wandb_records(path: Path) -> list[Any]:
    """The records of an offline wandb run file, decoded with wandb's own protobuf schema.

    wandb 0.31 ships no Python reader for its run files (its Go core writes and syncs
    them), so the framing is read here: a 7-byte header (``:W&B``, magic 0xBEE1, version
    0), then LevelDB log blocks of 32 KiB, each chunk a 7-byte header (crc32, length,
    type: 1 full, 2 first, 3 middle, 4 last) and its bytes.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<HB", data[4:7]) == (0xBEE1, 0)
    records, pos, chunk, block = [], 7, b"", 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    return records


def test_a_quant_train_job_feeds_every_sink(
    blut_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    sets = [arg for s in QUICK for arg in ("--set", s)]
    result = blut(
        "recipe", "run", "quant-train", *sets, "--telemetry", SINKS, "--detach", env=env
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    job = JobStore(blut_home).get(result.stdout.strip())
    view = wait_for_job(job, timeout=600)
    assert view.state == "succeeded", (view, job.log_path("train").read_text()[-3000:])

    record = Record.from_dict(job.spec.telemetry)
    assert record.sinks == tuple(SINKS.split(","))
    root = record.root(job.dir)
    assert root == job.dir / "telemetry"
    events = [parse_line(x) for x in job.status_path.read_text().splitlines()]
    metrics = [e for e in events if isinstance(e, Metric) and e.stage == "train"]
    val = {e.step: e.values["val_loss"] for e in metrics if "val_loss" in e.values}
    train_steps = [e.step for e in metrics if "train_loss" in e.values]
    assert len(val) == 2 and len(train_steps) > 2
    log = job.log_path("train").read_text()
    assert "warning: telemetry" not in log, log

    # console: lines in the stage's log
    assert "telemetry: stage train started" in log and "telemetry: stage train done in " in log
    assert log.count("val_loss=") == 2

    # TensorBoard: its own event reader
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tensorboard_dir(root, job.id, "train")))
    acc.Reload()
    scalars = {s.step: s.value for s in acc.Scalars("val_loss")}
    assert scalars.keys() == val.keys()
    assert all(scalars[k] == pytest.approx(v, rel=1e-6) for k, v in val.items())
    assert len(acc.Scalars("train_loss")) == len(train_steps)
    assert acc.Scalars("stage/seconds")[0].value > 0
    assert "stage/text_summary" in acc.Tags()["tensors"]
    assert not tensorboard_dir(root, job.id, "encode").exists()  # no metrics: no empty run

    # MLflow: its client on the file store
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_dir(root).as_uri())
    experiment = client.get_experiment_by_name("blut")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == f"{job.id}/train" and run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.001" and run.data.params["epochs"] == "2"
    assert run.data.tags["blut.checkpoint"].endswith("epoch-0002.pt")
    history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val_loss")}
    assert history == pytest.approx(val)
    assert run.data.metrics["stage_seconds"] > 0

    # wandb: the offline run file, decoded with wandb's own record schema
    [run_file] = sorted(wandb_dir(root).glob("offline-run-*/run-*.wandb"))
    records = wandb_records(run_file)
    kinds = [r.WhichOneof("record_type") for r in records]
    [start] = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert start.display_name == f"{job.id}/train" and start.project == "blut"
    config = {u.key: json.loads(u.value_json) for u in start.config.update}
    assert config["lr"] == 0.001 and config["epochs"] == 2
    rows = []
    for r in records:
        if r.WhichOneof("record_type") == "history":
            rows.append(
                {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
            )
    logged = {row["_step"]: row["val_loss"] for row in rows if "val_loss" in row}
    assert logged == pytest.approx(val)
    [done] = [r.exit for r in records if r.WhichOneof("record_type") == "exit"]
    assert done.exit_code == 0 and "summary" in kinds

    # blut outputs lists where each sink wrote
    listed = blut("outputs", job.id, "--format", "json", env=env)
    paths = {t["sink"]: t["path"] for t in json.loads(listed.stdout)["telemetry"]}
    assert paths == {
        "jsonl": str(job.status_path),
        "console": str(job.paths.stages_dir),
        "tensorboard": str(tensorboard_dir(root, job.id)),
        "mlflow": str(mlflow_dir(root)),
        "wandb": str(wandb_dir(root)),
    }
