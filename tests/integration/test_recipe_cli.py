"""`blut recipe|plan|cache` end to end on the smoke recipe, every stage a real unit."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import blut


def run_json(*args: str) -> Any:
    result = blut(*args, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def stage_states(job: str) -> dict[str, str]:
    data = run_json("plan", "inspect", job)
    return {row["name"]: row["state"] for row in data["stages"]}


def test_run_then_rerun_is_fully_cached(blut_home: Path) -> None:
    first = blut("recipe", "run", "smoke", "--set", "make.count=5")
    assert first.returncode == 0, first.stderr
    assert "stage total done" in first.stderr and "succeeded" in first.stderr
    second = blut("recipe", "run", "smoke", "--set", "make.count=5")
    assert second.returncode == 0, second.stderr
    assert second.stderr.count(" cached (") == 4
    [_, job] = [row["id"] for row in run_json("jobs", "--all")]
    assert set(stage_states(job).values()) == {"cached"}
    listing = run_json("cache", "ls")
    assert len(listing["entries"]) == 4 and listing["total_bytes"] > 0


def test_failed_stage_skips_dependents_and_exits_1(blut_home: Path) -> None:
    result = blut("recipe", "run", "smoke", "--set", "square.fail=true")
    assert result.returncode == 1
    assert "stage square exited with code 3" in result.stderr
    [row] = run_json("jobs", "--all")
    assert (row["state"], row["recipe"]) == ("failed", "smoke")
    states = stage_states(row["id"])
    assert (states["square"], states["cube"], states["total"]) == ("failed", "succeeded", "failed")
    tree = blut("plan", "inspect", row["id"], env={"COLUMNS": "200"})
    assert "square failed/exit" in tree.stdout and "exited with code 3" in tree.stdout
    assert "total failed/skipped" in tree.stdout and "upstream stage square failed" in tree.stdout
    explain = blut("cache", "explain", row["id"], "total")
    assert explain.returncode == 0 and "never reached" in explain.stdout


def test_bad_args_are_one_line_each(blut_home: Path) -> None:
    result = blut("recipe", "run", "smoke", "--set", "make.cout=5", "--set", "make.count=-1")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith("blut: error: ") for line in lines), lines
    assert any("did you mean" in line and "count" in line for line in lines), lines
    assert "Traceback" not in result.stderr
    assert blut("recipe", "run", "smok").returncode == 2


def test_sweep_submits_one_job_per_point(blut_home: Path) -> None:
    result = blut("recipe", "run", "smoke", "--sweep", "make.count=3,4,5")
    assert result.returncode == 0, result.stderr
    ids = result.stdout.split()
    assert len(ids) == 3
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = run_json("jobs", "--all")
        if all(r["state"] == "succeeded" for r in rows):
            break
        time.sleep(0.5)
    assert {r["state"] for r in rows} == {"succeeded"}
    assert len({r["sweep"] for r in rows}) == 1 and rows[0]["sweep"].startswith("sweep-")


def test_prune_dry_run_then_prune_then_verify(blut_home: Path) -> None:
    assert blut("recipe", "run", "smoke").returncode == 0
    dry = blut("cache", "prune", "--max-size", "1", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.count("would remove") == 4
    assert len(run_json("cache", "ls")["entries"]) == 4
    real = blut("cache", "prune", "--max-size", "1")
    assert real.returncode == 0 and real.stdout.count("removed") == 4
    assert run_json("cache", "ls")["entries"] == []
    assert blut("cache", "verify").returncode == 0
    assert blut("cache", "prune").returncode == 2


def test_corrupt_object_is_found_by_verify(blut_home: Path) -> None:
    assert blut("recipe", "run", "smoke").returncode == 0
    objects = sorted(p for p in (blut_home / "cache" / "objects").rglob("*") if p.is_file())
    victim = objects[0]
    victim.chmod(0o600)
    victim.write_bytes(b"bit rot")
    result = blut("cache", "verify")
    assert result.returncode == 1 and "corrupt object" in result.stderr


def test_resume_after_the_executor_was_killed(blut_home: Path, manager_env: dict[str, str]) -> None:
    submitted = blut("recipe", "run", "smoke", "--detach", "--set", "square.sleep=3")
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip()
    deadline = time.monotonic() + 30
    while stage_states(job).get("square") != "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    subprocess.run(
        ["systemctl", "--user", "kill", "--signal=KILL", f"blut-{job}.service"], check=True
    )
    time.sleep(4)  # the orphaned square unit finishes on its own meanwhile
    [row] = run_json("jobs", "--all")  # reconcile records the lost executor
    assert row["state"] == "failed" and "blut plan resume" in row["detail"]
    resumed = blut("plan", "resume", job)
    assert resumed.returncode == 0, resumed.stderr
    [row] = run_json("jobs", "--all")
    assert row["state"] == "succeeded"
    assert set(stage_states(job).values()) == {"succeeded"}


def test_resume_of_a_succeeded_job_is_refused(blut_home: Path) -> None:
    assert blut("recipe", "run", "smoke").returncode == 0
    [row] = run_json("jobs", "--all")
    refused = blut("plan", "resume", row["id"])
    assert refused.returncode == 2 and "already succeeded" in refused.stderr
