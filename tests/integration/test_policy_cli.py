"""The policy on real jobs (systemd units): peaks recorded by real smoke runs become
`blut policy suggest`'s ceilings, a learned ceiling is applied at submit and shown by
`blut plan inspect`, and ``limits.stages`` keeps a job's stages one at a time."""

from __future__ import annotations

import json
import re
from pathlib import Path

from blut.jobs.policy import MIB
from blut.jobs.quantities import format_size
from blut.jobs.store import JobStore
from tests.conftest import blut, wait_for_job


def run_smoke(*sets: str) -> str:
    args = [a for s in sets for a in ("--set", s)]
    result = blut("recipe", "run", "smoke", *args)
    assert result.returncode == 0, result.stderr
    found = re.search(r"job (\S+) \(smoke\) submitted", result.stderr)
    assert found, result.stderr
    return found.group(1)


def inspect(job: str) -> dict[str, dict[str, object]]:
    data = json.loads(blut("plan", "inspect", job, "--format", "json").stdout)
    return {s["name"]: s for s in data["stages"]}


def test_peaks_of_real_runs_become_the_learned_ceiling(blut_home: Path) -> None:
    for key, value in [
        ("ceiling.source", "learned"),
        ("ceiling.min_runs", "2"),
        ("ceiling.floor", "16M"),
        ("limits.stages", "1"),
    ]:
        assert blut("policy", "set", key, value).returncode == 0
    first = run_smoke("make.count=40")
    before = blut("policy", "suggest", "smoke", "--format", "json")
    assert before.returncode == 0, before.stderr
    make = next(s for s in json.loads(before.stdout)["stages"] if s["stage"] == "make")
    assert make["runs"] == 1 and make["suggested"] is None  # one run of two needed
    second = run_smoke("make.count=41")  # other args: the stages run again, not reused
    assert inspect(second)["make"]["memory_max"] == 256 * MIB  # learned from one run only

    peaks = [inspect(j)["make"]["peak_memory"] for j in (first, second)]
    assert all(isinstance(p, int) and p > 0 for p in peaks)
    wanted = max(16 * MIB, -(-int(max(peaks) * 1.5) // MIB) * MIB)  # type: ignore[arg-type]
    suggested = blut("policy", "suggest", "smoke")
    line = next(x for x in suggested.stdout.splitlines() if x.startswith("make "))
    assert f"→ {format_size(wanted)}" in line and "2 runs of payload smoke-make" in line, line
    assert f"max peak {format_size(max(peaks))}" in line  # type: ignore[arg-type]

    third = run_smoke("make.count=42")
    stages = inspect(third)
    assert stages["make"]["memory_max"] == wanted and stages["make"]["state"] == "succeeded"
    assert "learned: 2 runs" in str(stages["make"]["policy"])
    tree = blut("plan", "inspect", third, env={"COLUMNS": "250"}).stdout
    assert f"policy: ceiling {format_size(wanted)} learned" in tree
    assert "at most 1 stages at once" in tree
    # limits.stages = 1: square and cube (both after make) never overlapped
    square, cube = stages["square"], stages["cube"]
    spans = sorted((s["started"], s["finished"]) for s in (square, cube))
    assert spans[0][1] <= spans[1][0], spans  # type: ignore[operator]

    # a sweep's points all get it (history is read once for the whole sweep)
    swept = blut("recipe", "run", "smoke", "--sweep", "make.count=43,44")
    assert swept.returncode == 0, swept.stderr
    ids = swept.stdout.split()
    assert len(ids) == 2
    for job_id in ids:
        assert inspect(job_id)["make"]["memory_max"] == wanted
        wait_for_job(JobStore(blut_home).get(job_id))


def test_limits_retries_runs_a_failing_stage_again_then_fails_the_job(blut_home: Path) -> None:
    assert blut("policy", "set", "limits.retries", "2").returncode == 0
    result = blut("recipe", "run", "smoke", "--set", "cube.fail=true")
    assert result.returncode != 0
    assert "retry 1 of 2" in result.stderr and "retry 2 of 2" in result.stderr
    job = re.search(r"job (\S+) \(smoke\) submitted", result.stderr)
    assert job, result.stderr
    events = [
        json.loads(line)
        for line in (blut_home / "jobs" / job.group(1) / "status.jsonl").read_text().splitlines()
    ]
    started = [e for e in events if e["event"] == "stage_started" and e["stage"] == "cube"]
    assert len(started) == 3  # the first run and two retries
    stages = inspect(job.group(1))
    assert stages["cube"]["state"] == "failed" and stages["cube"]["reason"] == "exit"
    assert stages["square"]["state"] == "succeeded" and stages["total"]["reason"] == "skipped"
    tree = blut("plan", "inspect", job.group(1), env={"COLUMNS": "200"}).stdout
    assert "policy: 2 retries per stage" in tree
