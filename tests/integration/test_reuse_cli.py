"""Why a stage ran, or whose output it reused: `blut log` and `blut cache explain` on real
jobs (systemd units), after the jobs ended."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import blut


def run_smoke(*sets: str) -> tuple[str, str]:
    """Run the smoke recipe to its end; its job id and the CLI's stderr."""
    args = [a for s in sets for a in ("--set", s)]
    result = blut("recipe", "run", "smoke", *args)
    assert result.returncode == 0, result.stderr
    found = re.search(r"job (\S+) \(smoke\) submitted", result.stderr)
    assert found, result.stderr
    return found.group(1), result.stderr


def reuse_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "did not run" in line]


def test_a_cached_job_names_the_job_it_reused_in_log_and_explain(blut_home: Path) -> None:
    first, _ = run_smoke()
    second, followed = run_smoke()
    assert "stage total cached (" in followed and f"reused the output of job {first}" in followed

    log = blut("log", second)
    assert log.returncode == 0 and log.stdout == "", log
    assert reuse_lines(log.stderr) == [
        f"blut: stage {name} did not run: it reused the output of job {first} "
        f"(its log: blut log {first} {name})"
        for name in ("make", "square", "cube", "total")
    ]
    # ... and that log holds the results the second job reused
    produced = blut("log", first, "total")
    assert re.fullmatch(r"total -?\d+ \(cube -?\d+, square -?\d+\)\n", produced.stdout), produced

    inspected = json.loads(blut("plan", "inspect", second, "--format", "json").stdout)
    assert {s["name"]: s["producer"] for s in inspected["stages"]} == dict.fromkeys(
        ("make", "square", "cube", "total"), first
    )
    tree = blut("plan", "inspect", second, env={"COLUMNS": "200"}).stdout
    assert tree.count(f"reused from job {first}") == 4, tree

    explained = blut("cache", "explain", second, "total")
    assert explained.returncode == 0, explained.stderr
    lines = explained.stdout.splitlines()
    assert lines[0].startswith(f"stage total: did not run; it reused the output of job {first}")
    assert f"that run's log: blut log {first} total" in lines[1]
    assert any(line.strip().startswith("square ") and first in line for line in lines)

    # the first job ran its stages: explain says so once it has ended, and for a changed
    # arg what differs from the closest cached key
    ran = blut("cache", "explain", first, "make").stdout
    assert ran.startswith("stage make: computed by this job"), ran
    third, _ = run_smoke("make.count=5")
    changed = blut("cache", "explain", third, "make").stdout
    assert "computed by this job" in changed and f"(job {first}) differs in:" in changed
    assert "arg count: 5 now, 8 cached" in changed

    # once pruned, the cached job still says whose output it reused
    assert blut("cache", "prune", "--max-size", "1").returncode == 0
    pruned = blut("cache", "explain", second, "total").stdout
    assert f"reused the output of job {first}" in pruned and "no longer cached" in pruned
    assert reuse_lines(blut("log", second).stderr)[-1].endswith(f"blut log {first} total)")


def test_a_job_from_before_the_producer_was_recorded_finds_it_in_the_cache(
    blut_home: Path,
) -> None:
    first, _ = run_smoke()
    second, _ = run_smoke()
    job = blut_home / "jobs" / second
    lines = []
    for line in (job / "status.jsonl").read_text().splitlines():
        event = json.loads(line)
        event.pop("producer", None)  # as written before stage_cached named its producer
        lines.append(json.dumps(event, separators=(",", ":")))
    (job / "status.jsonl").write_text("\n".join(lines) + "\n")
    (job / "summary.json").unlink(missing_ok=True)

    log = blut("log", second, "square")
    assert reuse_lines(log.stderr) == [
        f"blut: stage square did not run: it reused the output of job {first} "
        f"(its log: blut log {first} square)"
    ]
    explained = blut("cache", "explain", second, "square").stdout
    assert explained.startswith(f"stage square: did not run; it reused the output of job {first}")

    # the producer's folder is gone: the line says so instead of pointing at its log
    for path in sorted((blut_home / "jobs" / first).rglob("*"), reverse=True):
        path.unlink() if not path.is_dir() else path.rmdir()
    (blut_home / "jobs" / first).rmdir()
    gone = reuse_lines(blut("log", second, "square").stderr)
    assert gone == [
        f"blut: stage square did not run: it reused the output of job {first} "
        "(that job has been deleted since)"
    ]
