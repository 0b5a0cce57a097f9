"""The demo stage as the driver runs it: a real subprocess with the BLUT_* environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from blut.payload.context import StageContext
from blut.payload.demo import run
from blut.status.events import Checkpoint, Event, Log, Metric, Progress, parse_line
from blut.status.metrics import read_metrics


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without any BLUT_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLUT_")}
    env.update(extra)
    return env


def payload(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blut.payload", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def events(job_dir: Path) -> list[Event]:
    return [parse_line(line) for line in (job_dir / "status.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def demo_job(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    job_dir = tmp_path_factory.mktemp("job")
    env = clean_env(BLUT_JOB_DIR=str(job_dir), BLUT_STAGE_NAME="main", BLUT_JOB_ID="j-demo")
    return job_dir, payload("demo", "--epochs", "3", "--step-delay", "0", env=env)


def test_demo_succeeds_quietly(demo_job: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, proc = demo_job
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    first, *lines = proc.stdout.splitlines()
    assert first.startswith("demo: ") and "train /" in first  # ctx.log lines reach the log too
    assert [line.split()[:2] for line in lines] == [["epoch", f"{e}/3"] for e in (1, 2, 3)]
    assert "train_loss" in lines[0] and "val_acc" in lines[0]


def test_demo_reports_events(demo_job: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    job_dir, _ = demo_job
    evs = events(job_dir)
    assert {(e.job, e.stage) for e in evs} == {("j-demo", "main")}
    progress = [e for e in evs if isinstance(e, Progress)]
    assert [e.step for e in progress] == list(range(1, len(progress) + 1))
    assert {(e.total, e.unit) for e in progress} == {(len(progress), "step")}
    metrics = [e for e in evs if isinstance(e, Metric)]
    assert any(e.epoch is None and "train_loss" in e.values for e in metrics)
    per_epoch = [e for e in metrics if e.epoch is not None]
    assert [e.epoch for e in per_epoch] == [1, 2, 3]
    assert set(per_epoch[0].values) >= {"train_loss", "val_loss", "val_accuracy"}
    assert any(isinstance(e, Checkpoint) for e in evs)
    assert not any(isinstance(e, Log) and e.level != "info" for e in evs)


def test_demo_learns_and_writes_outputs(
    demo_job: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    job_dir, _ = demo_job
    stage = job_dir / "stages" / "main"
    table = read_metrics(stage / "metrics").to_pylist()
    assert [row["epoch"] for row in sorted(table, key=lambda r: r["epoch"])] == [1, 2, 3]
    rows = sorted(table, key=lambda r: r["epoch"])
    assert {"step", "train_loss", "val_loss", "val_accuracy"} <= set(rows[0])
    assert rows[-1]["val_loss"] < rows[0]["train_loss"]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["val_accuracy"] > 0.8
    weights = np.load(stage / "staging" / "weights.npy")
    assert weights.shape == (9,)
    summary = json.loads((stage / "staging" / "summary.json").read_text())
    assert summary["final"]["epoch"] == 3


def test_missing_env_warns_loudly_but_runs(tmp_path: Path) -> None:
    proc = payload(
        "demo", "--epochs", "1", "--step-delay", "0", env=clean_env(TMPDIR=str(tmp_path))
    )
    assert proc.returncode == 0, proc.stderr
    (warning,) = proc.stderr.splitlines()
    prefix = "blut: warning: BLUT_JOB_DIR/BLUT_STAGE_NAME not set: running outside a blut job"
    assert warning.startswith(prefix)
    job_dir = Path(warning.rsplit("events go to ", 1)[1])
    assert job_dir.parent == tmp_path
    evs = events(job_dir)
    assert isinstance(evs[0], Log) and evs[0].level == "warning"
    assert (job_dir / "stages" / "demo" / "staging" / "weights.npy").is_file()


def test_grow_holds_memory_in_steps(tmp_path: Path) -> None:
    env = clean_env(BLUT_JOB_DIR=str(tmp_path), BLUT_STAGE_NAME="main", BLUT_JOB_ID="j")
    proc = payload(
        "demo",
        "--epochs",
        "1",
        "--step-delay",
        "0",
        "--grow-mb",
        "25",
        "--grow-delay",
        "0",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    grown = [line for line in proc.stdout.splitlines() if line.startswith("grow:")]
    assert grown == [f"grow: holding {mb} MB" for mb in (10, 20, 25)]


def ctx_at(job_dir: Path) -> StageContext:
    return StageContext(job_dir=job_dir, stage="main", job_id="j")


def test_same_seed_same_weights(tmp_path: Path) -> None:
    for name in ("a", "b"):
        with ctx_at(tmp_path / name) as ctx:
            assert run(ctx, ["--epochs", "2", "--step-delay", "0", "--seed", "7"]) == 0
    staged = [tmp_path / n / "stages" / "main" / "staging" / "weights.npy" for n in ("a", "b")]
    np.testing.assert_array_equal(np.load(staged[0]), np.load(staged[1]))


def test_args_json_sets_defaults_and_argv_wins(tmp_path: Path) -> None:
    (tmp_path / "args.json").write_text('{"epochs": 2, "step-delay": 0, "unrelated": 1}')
    ctx = StageContext.from_env(
        "demo", {"BLUT_JOB_DIR": str(tmp_path), "BLUT_STAGE_NAME": "main", "BLUT_JOB_ID": "j"}
    )
    with ctx:
        assert run(ctx, []) == 0
        assert len(read_metrics(ctx.metrics_dir)) == 2
        assert run(ctx, ["--epochs", "1"]) == 0
    summary = json.loads((ctx.staging / "summary.json").read_text())
    assert summary["options"]["epochs"] == 1


@pytest.mark.parametrize("bad", [["--epochs", "0"], ["--lr", "x"], ["--nope"]])
def test_bad_options_are_usage_errors(tmp_path: Path, bad: list[str]) -> None:
    with ctx_at(tmp_path) as ctx, pytest.raises(SystemExit) as exc:
        run(ctx, bad)
    assert exc.value.code == 2
