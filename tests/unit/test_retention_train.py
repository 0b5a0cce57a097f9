"""What trimming keeps is what a re-run of a finished train stage needs: it resumes from the
one checkpoint left and publishes the same model at once; with none left it starts over."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from blut.status.checkpoints import trim
from tests.unit.quant_support import run_stage

TRAIN = {"model": "mlp", "hidden": 8, "window": 10, "batch_size": 128, "threads": 1}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("retention-train")
    features = run_stage(root, "encode", {"tickers": ["AAPL"]})
    labeled = run_stage(root, "label", {"horizon": 5}, {"features": features})
    splits = run_stage(root, "split", {}, {"labeled": labeled})
    return {"labeled": labeled, "splits": splits}


def train(job: Path, inputs: dict[str, Path]) -> bytes:
    staging = run_stage(job, "train", {**TRAIN, "epochs": 3, "keep_checkpoints": 3}, inputs)
    return (staging / "model.pt").read_bytes()


@pytest.mark.parametrize(("keep", "resumed"), [(1, True), (0, False)])
def test_a_rerun_after_trimming(
    tmp_path: Path, inputs: dict[str, Path], keep: int, resumed: bool
) -> None:
    job = tmp_path / "job"
    first = train(job, inputs)
    folder = job / "stages" / "train" / "checkpoints"
    assert len(list(folder.glob("epoch-*.pt"))) == 3
    trim(folder, keep)
    (job / "status.jsonl").unlink()
    again = train(job, inputs)
    log = (job / "status.jsonl").read_text()
    assert ("resumed after epoch 3" in log) is resumed
    assert ("epoch 1/3" in log) is not resumed  # a resumed run trains no epoch again
    a, b = (torch.load(io.BytesIO(raw), weights_only=True) for raw in (first, again))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
