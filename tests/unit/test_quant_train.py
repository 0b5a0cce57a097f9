"""train and evaluate on small real data: metrics parts, bit-identical resume, sane evaluation."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from blut.payload.errors import InputError
from blut.payload.train import KILL_ENV, SNAPSHOT_MARKER
from blut.status.metrics import read_metrics_pandas
from tests.unit.quant_support import env, run_stage, write_stage_files

TRAIN = {"model": "mlp", "hidden": 16, "window": 10, "batch_size": 128, "threads": 1, "patience": 0}
EXACT = ["epoch", "step", "train_loss", "val_loss", "val_accuracy", "lr"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("quant-train")
    features = run_stage(root, "encode", {"tickers": ["AAPL", "MSFT"]})
    labeled = run_stage(root, "label", {"horizon": 5}, {"features": features})
    splits = run_stage(root, "split", {}, {"labeled": labeled})
    return {"root": root, "features": features, "labeled": labeled, "splits": splits}


def train(job: Path, data: dict[str, Path], **overrides: object) -> Path:
    inputs = {"labeled": data["labeled"], "splits": data["splits"]}
    return run_stage(job, "train", {**TRAIN, **overrides}, inputs)


def weights(staging: Path) -> dict[str, torch.Tensor]:
    return torch.load(staging / "model.pt", weights_only=True)


def test_tiny_run_writes_two_metric_parts_and_a_model(data: dict[str, Path]) -> None:
    job = data["root"] / "two"
    staging = train(job, data, epochs=2)
    metrics = read_metrics_pandas(job / "stages" / "train" / "metrics")
    assert list(metrics["epoch"]) == [1, 2]
    for col in (*EXACT, "samples_per_s", "seconds", "peak_rss"):
        assert metrics[col].notna().all(), col
    assert (metrics["val_accuracy"].between(0, 1)).all()
    model = json.loads((staging / "model.json").read_text())
    assert (model["kind"], model["epochs_run"], model["outputs"]) == ("mlp", 2, 3)
    ckpts = sorted(p.name for p in (job / "stages" / "train" / "checkpoints").iterdir())
    assert ckpts == [
        "best.pt",
        "epoch-0001.meta.json",
        "epoch-0001.pt",
        "epoch-0002.meta.json",
        "epoch-0002.pt",
    ]
    events = [json.loads(line) for line in (job / "status.jsonl").read_text().splitlines()]
    assert any(e["event"] == "checkpoint" for e in events)
    assert any(e["event"] == "metric" and "train_loss" in e["values"] for e in events)


def test_resume_after_a_kill_is_bit_identical(data: dict[str, Path]) -> None:
    full = data["root"] / "full"
    full_staging = train(full, data, epochs=4, keep_checkpoints=2, dropout=0.2)
    broken = data["root"] / "broken"
    args = {**TRAIN, "epochs": 4, "keep_checkpoints": 2, "dropout": 0.2}
    write_stage_files(broken, "train", args, {"labeled": data["labeled"], "splits": data["splits"]})
    proc = subprocess.run(
        [sys.executable, "-m", "blut.payload", "train"],
        env={**os.environ, **env(broken, "train"), KILL_ENV: "2"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    ckpt_dir = broken / "stages" / "train" / "checkpoints"
    assert sorted(p.name for p in ckpt_dir.glob("epoch-*.pt")) == ["epoch-0001.pt", "epoch-0002.pt"]
    resumed = train(broken, data, epochs=4, keep_checkpoints=2, dropout=0.2)
    a, b = weights(full_staging), weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ma = read_metrics_pandas(full / "stages" / "train" / "metrics")[EXACT]
    mb = read_metrics_pandas(broken / "stages" / "train" / "metrics")[EXACT]
    pd.testing.assert_frame_equal(ma, mb, check_exact=True)
    assert sorted(p.name for p in ckpt_dir.glob("epoch-*.pt")) == ["epoch-0003.pt", "epoch-0004.pt"]
    log = (broken / "status.jsonl").read_text()
    assert "resumed after epoch 2" in log


def test_evaluate_reports_sane_metrics_and_backtest(data: dict[str, Path]) -> None:
    job = data["root"] / "eval"
    model = train(job, data, epochs=1, model="gru")
    inputs = {"model": model, "labeled": data["labeled"], "splits": data["splits"]}
    out = run_stage(job, "evaluate", {"cost_bps": 1.0}, inputs)
    row = pd.read_parquet(out / "metrics.parquet").iloc[0]
    preds = pd.read_parquet(out / "predictions.parquet")
    confusion = pd.read_parquet(out / "confusion.parquet")
    equity = pd.read_parquet(out / "equity.parquet")
    assert row["samples"] == len(preds) > 100
    assert 0 <= row["accuracy"] <= 1
    assert row["accuracy"] == pytest.approx((preds["prediction"] == preds["target"]).mean())
    assert confusion[["pred_down", "pred_flat", "pred_up"]].to_numpy().sum() == len(preds)
    assert np.trace(confusion[["pred_down", "pred_flat", "pred_up"]].to_numpy()) / len(
        preds
    ) == pytest.approx(row["accuracy"])
    assert set(preds["position"]) <= {-1, 0, 1}
    bh = (1 + preds.groupby("date")["next_return"].mean()).prod() - 1
    assert row["buy_hold_cum_return"] == pytest.approx(bh)
    assert row["strategy_cum_return"] == pytest.approx(equity["strategy_equity"].iloc[-1] - 1)
    assert 0 <= row["strategy_max_drawdown"] <= 1 and 0 <= row["strategy_turnover"] <= 2
    assert "long/short" in (job / "status.jsonl").read_text()


def test_regression_target_trains_and_evaluates(data: dict[str, Path]) -> None:
    job = data["root"] / "reg"
    labeled = run_stage(job, "label", {"target": "regression"}, {"features": data["features"]})
    splits = run_stage(job, "split", {}, {"labeled": labeled})
    model = run_stage(
        job,
        "train",
        {**TRAIN, "epochs": 1, "model": "linear"},
        {"labeled": labeled, "splits": splits},
    )
    metrics = read_metrics_pandas(job / "stages" / "train" / "metrics")
    assert "val_mse" in metrics.columns
    out = run_stage(job, "evaluate", {}, {"model": model, "labeled": labeled, "splits": splits})
    row = pd.read_parquet(out / "metrics.parquet").iloc[0]
    assert row["mse"] > 0 and -1 <= row["ic"] <= 1


def from_checkpoints(source: Path, job: Path, snapshot: str) -> None:
    """Put ``source``'s train checkpoints, and a restored-snapshot marker, into ``job``."""
    folder = job / "stages" / "train" / "checkpoints"
    shutil.copytree(source / "stages" / "train" / "checkpoints", folder)
    (folder / SNAPSHOT_MARKER).write_text(snapshot + "\n")


def test_a_snapshot_continues_or_branches_with_new_hyperparameters(
    data: dict[str, Path],
) -> None:
    root, snap = data["root"], "ab" * 32
    base = {"epochs": 4, "keep_checkpoints": 2}
    inputs = {"labeled": data["labeled"], "splits": data["splits"]}
    full = weights(train(root / "snap-full", data, **base))
    half = root / "snap-half"
    write_stage_files(half, "train", {**TRAIN, **base}, inputs)
    proc = subprocess.run(
        [sys.executable, "-m", "blut.payload", "train"],
        env={**os.environ, **env(half, "train"), KILL_ENV: "2"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr

    same = root / "snap-same"
    from_checkpoints(half, same, snap)
    continued = weights(train(same, data, **base, from_snapshot=snap))
    assert all(torch.equal(full[k], continued[k]) for k in full)
    assert "resumed after epoch 2" in (same / "status.jsonl").read_text()

    branch = root / "snap-branch"
    from_checkpoints(half, branch, snap)
    train(branch, data, **base, lr=0.01, from_snapshot=snap)
    log = (branch / "status.jsonl").read_text()
    assert f"branched from snapshot {snap[:12]} after epoch 2" in log
    lr_same = read_metrics_pandas(same / "stages" / "train" / "metrics").set_index("epoch")["lr"]
    lr_branch = read_metrics_pandas(branch / "stages" / "train" / "metrics").set_index("epoch")[
        "lr"
    ]
    assert lr_branch[3] == pytest.approx(10 * lr_same[3])

    wider = root / "snap-wider"
    from_checkpoints(half, wider, snap)
    with pytest.raises(InputError, match="checkpoint does not fit this model"):
        train(wider, data, **base, hidden=32, from_snapshot=snap)
    with pytest.raises(InputError, match="was not restored into this stage"):
        train(root / "snap-none", data, **base, from_snapshot=snap)
