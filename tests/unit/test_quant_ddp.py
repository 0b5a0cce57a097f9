"""train as 2 DDP processes on the CPU (torchrun, gloo): one set of outputs, same result as 1.

Each torchrun start costs a few seconds of imports per process, so the module
shares one labeled/splits input and one uninterrupted 2-process run.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from blut.payload.load import SeededSampler, WindowDataset
from blut.payload.shards import read_manifest
from blut.payload.train import KILL_ENV
from blut.status.metrics import read_metrics_pandas
from tests.unit.quant_support import env, run_stage, write_stage_files

WINDOW = 10
ARGS = {"model": "mlp", "hidden": 16, "window": WINDOW, "threads": 1, "patience": 0, "dropout": 0.1}
EXACT = ["epoch", "step", "train_loss", "val_loss", "val_accuracy", "lr"]


def torchrun(job: Path, processes: int, extra_env: dict[str, str] | None = None) -> Any:
    """``python -m torch.distributed.run --standalone`` on the train stage, as the engine runs it."""
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    argv += [f"--nproc_per_node={processes}", "-m", "blut.payload", "train"]
    environ = {**os.environ, **env(job, "train"), "OMP_NUM_THREADS": "1", **(extra_env or {})}
    return subprocess.run(argv, env=environ, capture_output=True, text=True, timeout=300)


def odd_batch(train_rows: int) -> int:
    """A batch size whose last global batch holds one sample (rank 1's share is empty)."""
    return next((b for b in range(96, 400) if train_rows % b == 1), 128)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("quant-ddp")
    features = run_stage(root, "encode", {"tickers": ["AAPL", "MSFT"]})
    labeled = run_stage(root, "label", {"horizon": 5}, {"features": features})
    splits = run_stage(root, "split", {}, {"labeled": labeled})
    fold = read_manifest(splits, "splits")["folds"][0]["splits"]
    rows = len(WindowDataset(labeled, fold["train"]["ranges"], WINDOW))
    args = {**ARGS, "batch_size": odd_batch(rows), "epochs": 2}
    inputs = {"labeled": labeled, "splits": splits}
    job = root / "ddp"
    write_stage_files(job, "train", args, inputs)
    proc = torchrun(job, 2)
    return {"root": root, "inputs": inputs, "args": args, "job": job, "proc": proc, "rows": rows}


def events(job: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (job / "status.jsonl").read_text().splitlines()]


def test_sampler_shares_partition_the_single_process_batches() -> None:
    single = [b.tolist() for b in SeededSampler(10, 4, seed=7)]
    ranks = [SeededSampler(10, 4, seed=7, rank=r, world=3) for r in range(3)]
    shares = [[b.tolist() for b in s] for s in ranks]
    assert [len(s) for s in ranks] == [3, 3, 3] == [len(s) for s in shares]
    for i, batch in enumerate(single):
        assert sorted(x for share in shares for x in share[i]) == sorted(batch)
        assert ranks[0].global_size(i) == len(batch)
    assert shares[2][2] == []  # the last batch has 2 samples: rank 2 gets none
    with pytest.raises(ValueError):
        SeededSampler(10, 4, rank=3, world=3)


def test_two_processes_write_one_set_of_outputs(data: dict[str, Any]) -> None:
    proc, job = data["proc"], data["job"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    stage = job / "stages" / "train"
    metrics = read_metrics_pandas(stage / "metrics")
    assert list(metrics["epoch"]) == [1, 2]
    assert len(list((stage / "metrics").iterdir())) == 2  # one part per epoch, not per rank
    assert (
        all(math.isfinite(v) for v in metrics["train_loss"]) and metrics["val_loss"].notna().all()
    )
    assert sorted(p.name for p in (stage / "checkpoints").iterdir()) == [
        "best.pt",
        "epoch-0001.meta.json",
        "epoch-0001.pt",
        "epoch-0002.meta.json",
        "epoch-0002.pt",
    ]
    meta = json.loads((stage / "checkpoints" / "epoch-0002.meta.json").read_text())
    assert meta["processes"] == 2 and len(meta["rng_ranks"]) == 2
    assert meta["rng_ranks"][0] == meta["rng"] and meta["rng_ranks"][1] != meta["rng"]
    model = json.loads((stage / "staging" / "model.json").read_text())
    assert model["processes"] == 2 and model["epochs_run"] == 2
    assert sorted(p.name for p in (stage / "staging").iterdir()) == ["model.json", "model.pt"]
    seen = events(job)
    kinds = Counter(e["event"] for e in seen)
    assert kinds["checkpoint"] == 2
    epoch_rows = [e for e in seen if e["event"] == "metric" and "val_loss" in e["values"]]
    assert [e["epoch"] for e in epoch_rows] == [1, 2]
    messages = [e["msg"] for e in seen if e["event"] == "log"]
    assert sum("epoch 1/2" in m for m in messages) == 1
    assert not any(m.startswith("rank ") for m in messages), messages
    assert sum(m.startswith("train: mlp on") and "× 2 processes (gloo)" in m for m in messages) == 1
    steps = [e["step"] for e in seen if e["event"] == "metric" and "train_loss" in e["values"]]
    assert len(steps) == len(set(steps))  # live train_loss: one event per step


def test_two_processes_equal_one_up_to_rounding(data: dict[str, Any]) -> None:
    """Same global batches, averaged gradients: without dropout, 1 and 2 processes agree."""
    assert data["proc"].returncode == 0
    args = {**data["args"], "dropout": 0.0, "epochs": 1}
    one = run_stage(data["root"] / "one", "train", args, data["inputs"])
    job = data["root"] / "two"
    write_stage_files(job, "train", args, data["inputs"])
    proc = torchrun(job, 2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = torch.load(one / "model.pt", weights_only=True)
    b = torch.load(job / "stages" / "train" / "staging" / "model.pt", weights_only=True)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    ma = read_metrics_pandas(data["root"] / "one" / "stages" / "train" / "metrics")
    mb = read_metrics_pandas(job / "stages" / "train" / "metrics")
    assert list(ma["step"]) == list(mb["step"])  # the same number of (global) steps
    for col in ("train_loss", "val_loss", "val_accuracy", "lr"):
        assert np.allclose(ma[col], mb[col], rtol=1e-6, atol=1e-7), col


def test_resume_of_two_processes_is_bit_identical(data: dict[str, Any]) -> None:
    assert data["proc"].returncode == 0
    job = data["root"] / "killed"
    write_stage_files(job, "train", data["args"], data["inputs"])
    killed = torchrun(job, 2, {KILL_ENV: "1"})
    assert killed.returncode != 0
    ckpts = job / "stages" / "train" / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("epoch-*.pt")) == ["epoch-0001.pt"]
    resumed = torchrun(job, 2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed after epoch 1" in (job / "status.jsonl").read_text()
    full = data["job"] / "stages" / "train"
    a = torch.load(full / "staging" / "model.pt", weights_only=True)
    b = torch.load(job / "stages" / "train" / "staging" / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma = read_metrics_pandas(full / "metrics")[EXACT]
    mb = read_metrics_pandas(job / "stages" / "train" / "metrics")[EXACT]
    pd.testing.assert_frame_equal(ma, mb, check_exact=True)
