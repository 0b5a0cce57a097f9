"""StageContext: paths, frozen args, event helpers and the loud standalone fallback."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from blut.payload.context import StageContext
from blut.status.events import Log, Metric, Progress, parse_line


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_from_env_reads_the_driver_variables(tmp_path: Path) -> None:
    (tmp_path / "args.json").write_text(json.dumps({"epochs": 3}))
    env = {
        "BLUT_JOB_DIR": str(tmp_path),
        "BLUT_STAGE_NAME": "main",
        "BLUT_JOB_ID": "j1",
        "BLUT_CONTAINED": "0",
    }
    ctx = StageContext.from_env("demo", env)
    assert (ctx.job_dir, ctx.stage, ctx.job_id) == (tmp_path, "main", "j1")
    assert ctx.args == {"epochs": 3}
    assert not ctx.contained
    assert ctx.staging == tmp_path / "stages" / "main" / "staging"
    assert ctx.staging.is_dir()
    assert ctx.metrics_dir == tmp_path / "stages" / "main" / "metrics"


def test_defaults_contained_no_args_job_id_from_dir(tmp_path: Path) -> None:
    ctx = StageContext.from_env("demo", {"BLUT_JOB_DIR": str(tmp_path), "BLUT_STAGE_NAME": "s"})
    assert ctx.contained
    assert ctx.args == {}
    assert ctx.job_id == tmp_path.name


def test_args_json_must_be_an_object(tmp_path: Path) -> None:
    (tmp_path / "args.json").write_text("[1]")
    with pytest.raises(ValueError, match="JSON object"):
        StageContext.from_env("demo", {"BLUT_JOB_DIR": str(tmp_path), "BLUT_STAGE_NAME": "s"})


def test_helpers_append_typed_events(tmp_path: Path) -> None:
    with StageContext(job_dir=tmp_path, stage="train", job_id="j") as ctx:
        ctx.progress(3, 10, "step")
        ctx.metric({"loss": 0.5}, step=3)
        ctx.log("hello")
    progress, metric, log = (parse_line(line) for line in lines(tmp_path / "status.jsonl"))
    assert progress == Progress(
        job="j", stage="train", ts=progress.ts, step=3, total=10, unit="step"
    )
    assert metric == Metric(job="j", stage="train", ts=metric.ts, values={"loss": 0.5}, step=3)
    assert log == Log(job="j", stage="train", ts=log.ts, level="info", msg="hello")


def test_standalone_fallback_warns_on_stderr_and_in_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with StageContext.from_env("demo", {}) as ctx:
        assert ctx.job_dir.parent == tmp_path
        assert (ctx.stage, ctx.contained) == ("demo", False)
    err = capsys.readouterr().err
    assert err == (
        "blut: warning: BLUT_JOB_DIR/BLUT_STAGE_NAME not set: running outside a blut job, "
        f"uncontained; events go to {ctx.job_dir}\n"
    )
    (event,) = (parse_line(line) for line in lines(ctx.status_path))
    assert isinstance(event, Log) and event.level == "warning"


def test_missing_stage_name_warns_into_the_existing_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    job = tmp_path / "job"
    job.mkdir()
    (job / "status.jsonl").write_text("")
    with StageContext.from_env("demo", {"BLUT_JOB_DIR": str(job), "BLUT_JOB_ID": "j9"}) as ctx:
        assert ctx.job_dir.parent == tmp_path / "tmp"
    assert "BLUT_STAGE_NAME not set" in capsys.readouterr().err
    (event,) = (parse_line(line) for line in lines(job / "status.jsonl"))
    assert isinstance(event, Log) and event.level == "warning" and event.job == "j9"
    assert str(ctx.job_dir) in event.msg
