"""Snapshots of an LLM train stage (the HF Trainer's checkpoint-N folders) on the tiny model,
in process: the same state gives the same id in two homes, a restore on a fresh home
continues bit-identically, and a changed lr branches at the snapshot's step."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl", reason="needs the llm extra: pip install 'blut[llm]'")

import torch

from blut.jobs.recipes import find
from blut.jobs.snapshots import Snapshot, SnapshotStore, restore, start
from blut.jobs.store import Job, JobStore
from blut.payload.errors import InputError
from blut.payload.llm import common
from blut.status.metrics import read_metrics
from tests.unit.llm_support import FAST, run_program
from tests.unit.quant_support import run_stage

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
ARGS: dict[str, Any] = {**FAST, "save_every": 2, "lr": 0.001}
Inputs = list[tuple[str, str, Path]]


def sft_job(home: Path, args: dict[str, Any]) -> Job:
    """An llm-sft job folder (job.json, args.json) whose sft stage runs here, in process."""
    job = JobStore(home).create(
        name="llm-sft", argv=["x"], cwd="/", launcher="systemd", stages=["sft"], recipe="llm-sft"
    )
    job.paths.args.write_text(json.dumps({"sft": args}))
    return job


def train(job: Job, args: dict[str, Any], inputs: Inputs) -> Path:
    return run_program(job.dir, "sft", "sft", args, inputs)


def killed_after_4(home: Path, inputs: Inputs) -> Job:
    job = sft_job(home, ARGS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(common.KILL_ENV, "4")
        mp.setenv(common.KILL_MODE_ENV, "raise")
        with pytest.raises(common.StopForTest):
            train(job, ARGS, inputs)
    return job


def weights(out: Path) -> str:
    return hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()


def rows(job: Job) -> list[dict[str, Any]]:
    table = read_metrics(job.paths.stage("sft").metrics).to_pylist()
    return sorted(table, key=lambda r: r["step"])


@dataclass(frozen=True)
class Runs:
    root: Path
    inputs: Inputs
    whole: Job
    whole_out: Path
    snapshot: Snapshot
    """Of a run killed after step 4 (its newest checkpoint)."""
    again: Snapshot
    """Created again from the same run."""
    elsewhere: Snapshot
    """Of another run killed after step 4, in another home."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("llm-snap")
    lm = run_stage(root / "data", "tiny-model", {"threads": 1})
    tokens = run_stage(root / "data", "tokenize", {"examples": 48}, {"lm": lm})
    inputs = [("model", "lm", lm), ("tokenize", "tokens", tokens)]
    whole = sft_job(root / "whole", ARGS)
    whole_out = train(whole, ARGS, inputs)
    first = killed_after_4(root / "a", inputs)
    other = killed_after_4(root / "b", inputs)
    snaps = SnapshotStore(root / "a")
    snapshot = snaps.create(first)
    yield Runs(
        root,
        inputs,
        whole,
        whole_out,
        snapshot,
        snaps.create(first, "sft", step=4),
        SnapshotStore(root / "b").create(other),
    )


def test_the_same_llm_state_gets_the_same_id_in_two_homes(runs: Runs) -> None:
    assert runs.again.id == runs.snapshot.id == runs.elsewhere.id
    bundle = runs.snapshot.bundle()
    assert bundle.manifest["checkpoint"] == "checkpoint-4" and bundle.manifest["step"] == 4
    names = set(bundle.names)
    for part in ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
        assert f"checkpoint/checkpoint-4/{part}" in names
    assert "checkpoint/checkpoint-4/trainer_state.json" in names
    assert "checkpoint/fingerprint" in names  # the config the checkpoint belongs to
    assert not any(n.endswith("training_args.bin") for n in names)  # paths and a timestamp
    assert not any(n.startswith("checkpoint/checkpoint-2/") for n in names)
    assert [r["step"] for r in bundle.metric_rows()] == [1, 2, 3, 4]


def restored_job(runs: Runs, home: Path, args: dict[str, Any]) -> tuple[Job, dict[str, Any]]:
    """A job on ``home`` (a fresh one, holding only the imported snapshot) starting from the
    snapshot with ``args``: the snapshot restored into its stage; the args it runs with."""
    exported = home.parent / f"{home.name}.tar"
    SnapshotStore(runs.root / "a").export(runs.snapshot.id, exported)
    snap = SnapshotStore(home).import_(exported)
    begin = start(snap, "llm-sft", {"sft": args}, find("llm-sft").args_schema)
    job = sft_job(home, args)
    restore(job, begin)
    return job, {**args, "from_snapshot": snap.id}


def test_a_restored_llm_snapshot_continues_bit_identically(runs: Runs, tmp_path: Path) -> None:
    job, args = restored_job(runs, tmp_path / "fresh", ARGS)
    out = train(job, args, runs.inputs)
    assert weights(out) == weights(runs.whole_out)
    assert [r["step"] for r in rows(job)] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in rows(job)] == [r["loss"] for r in rows(runs.whole)]


def test_a_changed_lr_branches_at_the_snapshots_step(runs: Runs, tmp_path: Path) -> None:
    branch = {**ARGS, "lr": 0.01}
    exported = tmp_path / "snap.tar"
    SnapshotStore(runs.root / "a").export(runs.snapshot.id, exported)
    begin = start(
        SnapshotStore(tmp_path / "x").import_(exported),
        "llm-sft",
        {"sft": branch},
        find("llm-sft").args_schema,
    )
    assert begin.branch and begin.changed == {"lr": [0.001, 0.01]}
    job, args = restored_job(runs, tmp_path / "fresh", branch)
    out = train(job, args, runs.inputs)
    lrs = {r["step"]: r["learning_rate"] for r in rows(job)}
    assert lrs == {1: 0.001, 2: 0.001, 3: 0.001, 4: 0.001, 5: 0.01, 6: 0.01}
    assert [r["loss"] for r in rows(job)][:4] == [r["loss"] for r in rows(runs.whole)][:4]
    assert weights(out) != weights(runs.whole_out)


def test_a_snapshot_that_was_not_restored_is_refused(runs: Runs, tmp_path: Path) -> None:
    job = sft_job(tmp_path, ARGS)
    with pytest.raises(InputError, match=r"snapshot 0123456789ab was not restored"):
        train(job, {**ARGS, "from_snapshot": "0123456789ab" * 2}, runs.inputs)
