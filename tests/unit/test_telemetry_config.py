"""Choosing a job's telemetry sinks: names, the [telemetry] table, --telemetry, a missing
sink refused before submit, the record in job.json, `blut outputs` and `blut doctor`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from blut.containment.extras import check_telemetry
from blut.jobs.errors import UsageError
from blut.jobs.telemetry import telemetry_config
from blut.status.telemetry import Record, TelemetryError, parse_sinks, read_record
from tests.conftest import blut
from tests.unit.test_bad_input_sweep import assert_one_line_error


def test_parse_sinks_keeps_order_drops_repeats_and_names_the_known_ones() -> None:
    assert parse_sinks(" TensorBoard,mlflow,,tensorboard ") == ("tensorboard", "mlflow")
    assert parse_sinks(["wandb", "jsonl"]) == ("wandb", "jsonl")
    assert parse_sinks("") == ()
    with pytest.raises(TelemetryError, match="unknown telemetry sink 'neptune' \\(sinks: jsonl,"):
        parse_sinks("console,neptune")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "xdg" / "blut").mkdir(parents=True)
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def test_config_tables_then_the_option(project: Path) -> None:
    assert telemetry_config(project) == Record()
    user = project.parent / "xdg" / "blut" / "config.toml"
    user.write_text('[telemetry]\nsinks = ["console", "tensorboard"]\ndir = "runs"\n')
    assert telemetry_config(project) == Record(
        ("console", "tensorboard"), str(user.parent / "runs")
    )
    (project / "blut.toml").write_text('[telemetry]\nsinks = "mlflow"\n')
    assert telemetry_config(project) == Record(("mlflow",), str(user.parent / "runs"))
    assert telemetry_config(project, "wandb,console").sinks == ("wandb", "console")
    assert telemetry_config(project, "").sinks == ()  # --telemetry '' turns them off
    for bad, needle in [
        ("sinks = 3", "sinks must be a list of sink names"),
        ('sinks = ["neptune"]', "unknown telemetry sink 'neptune'"),
        ('dir = ""', "dir must be a path"),
        ("where = 1", "[telemetry] has no key 'where'"),
    ]:
        (project / "blut.toml").write_text(f"[telemetry]\n{bad}\n")
        with pytest.raises(UsageError, match=needle.replace("[", r"\[").replace("]", r"\]")):
            telemetry_config(project)


def without_module(tmp_path: Path, module: str) -> dict[str, str]:
    """An environment whose Python cannot import ``module`` (a meta path finder refuses it)."""
    site = tmp_path / "hide"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.partition('.')[0] == {module!r}:\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
    )
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def test_a_missing_or_unknown_sink_is_one_line_and_nothing_is_submitted(
    blut_home: Path, tmp_path: Path
) -> None:
    env = {**without_module(tmp_path, "mlflow"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    for argv, needle in [
        (["--telemetry", "mlflow"], "telemetry sink mlflow needs mlflow, which is not installed: "),
        (["--telemetry", "console,neptune"], "--telemetry: unknown telemetry sink 'neptune'"),
        (["--telemetry", "mlflow", "--dry-run"], "pip install 'blut[mlflow]'"),
    ]:
        result = blut("recipe", "run", "smoke", "--detach", *argv, env=env)
        assert_one_line_error(result, needle)
    assert not (blut_home / "jobs").exists() or not any((blut_home / "jobs").iterdir())
    doctor = blut("doctor", "--format", "json", env=env)
    [check] = [c for c in json.loads(doctor.stdout) if c["name"] == "telemetry"]
    assert check["status"] == "ok" and "not installed: mlflow" in check["summary"]
    assert check["fix"] == "pip install 'blut[mlflow]'" and check["detail"]["console"]["available"]


def test_the_record_reaches_job_json_and_outputs_lists_it(blut_home: Path, tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    result = blut(
        "recipe", "run", "smoke", "--detach", "--uncontained", "--telemetry", "console,jsonl",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    job_dir = blut_home / "jobs" / job_id
    assert json.loads((job_dir / "job.json").read_text())["telemetry"] == {
        "sinks": ["console", "jsonl"],
        "dir": None,
    }
    assert read_record(job_dir) == Record(("console", "jsonl"))
    listed = json.loads(blut("outputs", job_id, "--format", "json", env=env).stdout)
    assert listed["telemetry"] == [
        {"sink": "console", "path": str(job_dir / "stages")},
        {"sink": "jsonl", "path": str(job_dir / "status.jsonl")},
    ]


def test_doctor_check_lists_every_sink() -> None:
    check = check_telemetry(lambda sink: ["wandb"] if sink == "wandb" else [])
    assert check.summary == (
        "telemetry sinks available: jsonl, console, tensorboard, mlflow; not installed: wandb"
    )
    assert check.status == "ok" and check.fix == "pip install 'blut[wandb]'"
