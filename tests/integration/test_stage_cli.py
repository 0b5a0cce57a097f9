"""`blut stage run` end to end on the smoke recipe, every stage a real unit."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.conftest import blut
from tests.terminal import Terminal


def run_json(*args: str) -> Any:
    result = blut(*args, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def stage_states(job: str) -> dict[str, str]:
    return {row["name"]: row["state"] for row in run_json("plan", "inspect", job)["stages"]}


def jobs() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = run_json("jobs", "--all")
    return rows


def test_stage_run_computes_the_stage_and_its_upstream_only(blut_home: Path) -> None:
    first = blut("stage", "run", "smoke", "cube", "--set", "make.count=4")
    assert first.returncode == 0, first.stderr
    assert "stage make done" in first.stderr and "stage cube done" in first.stderr
    assert "square" not in first.stderr and "total" not in first.stderr
    [row] = jobs()
    assert (row["state"], row["name"], row["recipe"]) == ("succeeded", "smoke:cube", "smoke")
    assert stage_states(row["id"]) == {"make": "succeeded", "cube": "succeeded"}
    assert len(run_json("cache", "ls")["entries"]) == 2

    second = blut("stage", "run", "smoke", "cube", "--set", "make.count=4")
    assert second.returncode == 0, second.stderr
    assert second.stderr.count(" cached (") == 2 and "started" not in second.stderr
    assert stage_states(jobs()[-1]["id"]) == {"make": "cached", "cube": "cached"}

    # the whole recipe reuses what the stage run computed
    whole = blut("recipe", "run", "smoke", "--set", "make.count=4")
    assert whole.returncode == 0, whole.stderr
    assert "stage make cached" in whole.stderr and "stage cube cached" in whole.stderr
    assert "stage square done" in whole.stderr and "stage total done" in whole.stderr


def test_a_failing_stage_run_exits_1(blut_home: Path) -> None:
    result = blut("stage", "run", "smoke", "square", "--set", "square.fail=true")
    assert result.returncode == 1
    assert "stage square exited with code 3" in result.stderr
    assert stage_states(jobs()[0]["id"]) == {"make": "succeeded", "square": "failed"}


def test_foreground_stage_runs_on_the_terminal_contained(blut_home: Path) -> None:
    cached = blut("stage", "run", "smoke", "total", "--set", "make.count=3")
    assert cached.returncode == 0, cached.stderr
    argv = ["stage", "run", "smoke", "total", "--foreground", "--set", "make.count=3"]
    term = Terminal([sys.executable, "-m", "blut", *argv], env={"COLUMNS": "200"})
    assert term.wait(timeout=120) == 0, term.text
    screen = term.text
    # the upstream stages come from the cache; the stage itself runs although it is cached
    assert "stage make cached" in screen and "stage cube cached" in screen
    assert "stage total started as blut-" in screen
    assert "(contained, memory max 256.0 MiB)" in screen.split("stage total started")[1]
    assert "warning" not in screen  # its unit's memory limit was applied
    # what the stage printed reached the terminal (not its log)
    assert "total " in screen.split("stage total started")[1].split("stage total done")[0]
    job = jobs()[-1]["id"]
    assert stage_states(job) == {
        "make": "cached",
        "square": "cached",
        "cube": "cached",
        "total": "succeeded",
    }
    log = blut("log", job, "total")
    assert log.returncode == 0 and "total " not in log.stdout
    events = (blut_home / "jobs" / job / "status.jsonl").read_text()
    assert "attached to the terminal /dev/pts/" in events


def test_ctrl_c_before_the_foreground_stage_cancels_and_resume_runs_it_detached(
    blut_home: Path,
) -> None:
    argv = ["stage", "run", "smoke", "total", "--foreground", "--set", "make.sleep=10"]
    term = Terminal([sys.executable, "-m", "blut", *argv])
    term.expect("stage make started")
    term.type(b"\x03")
    assert term.wait() == 130
    assert "cancelled: stage total runs only on this terminal" in term.text
    [row] = jobs()
    assert row["state"] == "cancelled"
    # the terminal was that CLI's: a resumed run never writes to it
    resumed = blut("plan", "resume", row["id"], timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert "stage total done" in resumed.stderr
    events = (blut_home / "jobs" / row["id"] / "status.jsonl").read_text()
    assert "stage total runs detached (its terminal was the first run's)" in events
    assert "attached to the terminal" not in events
    log = blut("log", row["id"], "total")
    assert log.returncode == 0 and log.stdout.startswith("total "), log.stdout
