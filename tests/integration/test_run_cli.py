"""`blut run` end to end, every job a real systemd unit with a real memory ceiling."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import blut, unreachable_manager_env

PY = sys.executable
ALLOCATE = "b = []\nwhile True:\n    b.append(bytearray(10 * 2**20))\n    print(len(b) * 10, 'MB', flush=True)\n"


def jobs_json(*extra: str) -> list[dict[str, Any]]:
    result = blut("jobs", "--all", "--format", "json", *extra)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def wait_for(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_success_streams_log_and_records_job(blut_home: Path) -> None:
    result = blut(
        "run", "--name", "hello", "--memory-max", "256M", "--", "sh", "-c", "echo hi; echo err >&2"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["hi", "err"]
    assert "contained" in result.stderr and "succeeded" in result.stderr
    [row] = jobs_json()
    assert row["name"] == "hello"
    assert row["state"] == "succeeded"
    assert (row["reason"], row["exit_code"], row["contained"]) == (None, 0, True)
    assert row["memory_max_bytes"] == 256 << 20
    assert row["peak_memory_bytes"] > 0
    assert row["started"] and row["finished"]


def test_allocation_past_ceiling_is_oom(blut_home: Path) -> None:
    result = blut("run", "--memory-max", "100M", "--", PY, "-c", ALLOCATE)
    assert result.returncode == 1
    assert "killed: out of memory (peak" in result.stderr
    assert "of 100.0 MiB)" in result.stderr
    [row] = jobs_json()
    assert (row["state"], row["reason"]) == ("failed", "oom")
    assert row["peak_memory_bytes"] >= 90 << 20


def test_sigkill_is_not_reported_as_oom(blut_home: Path) -> None:
    result = blut("run", "--memory-max", "1G", "--", "sh", "-c", "kill -KILL $$")
    assert result.returncode == 1
    [row] = jobs_json()
    assert (row["state"], row["reason"], row["signal"]) == ("failed", "signal", "KILL")


def test_exit_code_is_recorded(blut_home: Path) -> None:
    result = blut("run", "--", "sh", "-c", "exit 3")
    assert result.returncode == 1
    assert "exited with code 3" in result.stderr
    [row] = jobs_json()
    assert (row["state"], row["reason"], row["exit_code"]) == ("failed", "exit", 3)


def test_timeout(blut_home: Path) -> None:
    started = time.monotonic()
    result = blut("run", "--timeout", "1s", "--", "sleep", "60")
    assert result.returncode == 1
    assert time.monotonic() - started < 30
    assert "time limit" in result.stderr
    [row] = jobs_json()
    assert (row["state"], row["reason"]) == ("failed", "timeout")


def test_log_lines_arrive_in_order(blut_home: Path) -> None:
    result = blut("run", "--", PY, "-c", "for i in range(3000): print(i)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(i) for i in range(3000)]
    job_id = jobs_json()[0]["id"]
    logged = blut("log", job_id)
    assert logged.stdout.split() == [str(i) for i in range(3000)]


def test_detach_then_follow(blut_home: Path) -> None:
    result = blut("run", "--detach", "--", "sh", "-c", "sleep 1; echo done")
    assert result.returncode == 0
    job_id = result.stdout.strip()
    followed = blut("log", job_id, "-f")
    assert followed.returncode == 0
    assert followed.stdout.strip() == "done"


def test_cancel_stops_the_whole_tree(blut_home: Path, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = (
        f"sleep 300 & echo $! >> {pids}; "
        f"setsid sleep 300 & echo $! >> {pids}; "
        f"(sleep 300 & echo $! >> {pids}; wait) & "
        f"echo $$ >> {pids}; wait"
    )
    job_id = blut("run", "--detach", "--", "bash", "-c", script).stdout.strip()
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) >= 4)
    children = [int(p) for p in pids.read_text().split()]
    assert all(psutil.pid_exists(p) for p in children)
    result = blut("cancel", "--yes", job_id)
    assert result.returncode == 0, result.stderr
    assert "cancelled" in result.stderr
    [row] = jobs_json()
    assert (row["state"], row["reason"]) == ("cancelled", "cancelled")
    survivors = [
        p for p in children if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
    ]
    assert survivors == []


def test_cancel_finished_job_is_refused(blut_home: Path) -> None:
    job_id = blut("run", "--detach", "--", "true").stdout.strip()
    wait_for(lambda: jobs_json()[0]["state"] == "succeeded")
    result = blut("cancel", "--yes", job_id)
    assert result.returncode == 2
    assert "already ended" in result.stderr


def test_sigkilled_follower_leaves_a_job_that_completes(blut_home: Path) -> None:
    follower = subprocess.Popen(
        [PY, "-m", "blut", "run", "--name", "survivor", "--", "sh", "-c", "sleep 2; exit 0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    wait_for(lambda: any(r["state"] == "running" for r in jobs_json()))
    follower.send_signal(signal.SIGKILL)
    follower.wait()
    row = wait_for(lambda: next((r for r in jobs_json() if r["state"] == "succeeded"), None))
    assert row["name"] == "survivor"


def test_ctrl_c_detaches_and_job_keeps_running(blut_home: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"  # the job waits for it: Ctrl-C surely comes while it runs
    script = f"while [ ! -e {go} ]; do sleep 0.05; done; echo finished"
    follower = subprocess.Popen(
        [PY, "-m", "blut", "run", "--", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: any(r["state"] == "running" for r in jobs_json()))
    follower.send_signal(signal.SIGINT)
    _, stderr = follower.communicate(timeout=30)
    assert follower.returncode == 130
    assert "keeps running" in stderr and "blut log" in stderr
    assert jobs_json()[0]["state"] == "running"
    go.touch()
    row = wait_for(lambda: next((r for r in jobs_json() if r["state"] == "succeeded"), None))
    assert blut("log", row["id"]).stdout.strip() == "finished"


def test_unreachable_manager_falls_back_loudly(blut_home: Path, tmp_path: Path) -> None:
    env = unreachable_manager_env(tmp_path)
    result = blut("run", "--memory-max", "100M", "--", PY, "-c", ALLOCATE, env=env)
    assert "UNCONTAINED" in result.stderr
    assert result.returncode == 1
    [row] = jobs_json()
    assert (row["state"], row["reason"], row["contained"]) == ("failed", "oom", False)


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_jobs_lists_without_jobs(blut_home: Path, fmt: str) -> None:
    result = blut("jobs", "--format", fmt)
    assert result.returncode == 0
    if fmt == "json":
        assert json.loads(result.stdout) == []


def test_a_failed_command_resumes_and_only_the_new_run_is_shown(blut_home: Path) -> None:
    marker = blut_home / "second"
    script = f"if [ -e {marker} ]; then echo again; exit 0; fi; touch {marker}; exit 3"
    first = blut("run", "--", "sh", "-c", script)
    assert first.returncode == 1
    job_id = jobs_json()[0]["id"]
    resumed = blut("plan", "resume", job_id)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("stage main started") == 1  # not the first run's again
    assert resumed.stdout.strip() == "again"
    assert jobs_json()[0]["state"] == "succeeded"
    explained = blut("cache", "explain", job_id, "main")
    assert "never cached" in explained.stdout
