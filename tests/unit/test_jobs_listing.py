"""`blut jobs` and `blut --once` print the same rows, from the job index."""

from __future__ import annotations

import json
from pathlib import Path

from blut.status.summary import read_summary
from tests.cockpit.fakejobs import oom_job, succeeded_job
from tests.conftest import blut


def many_jobs(home: Path, n: int) -> list[str]:
    ids = []
    for i in range(n):
        job_id = f"20250615-{i:06d}-{i:04x}"
        (oom_job if i % 5 == 0 else succeeded_job)(home, job_id, name=f"job{i}")
        ids.append(job_id)
    return ids


def test_jobs_and_once_are_the_same_rows(blut_home: Path) -> None:
    ids = many_jobs(blut_home, 23)  # more than the 20 recent ones `blut jobs` shows
    env = {"COLUMNS": "80"}
    listed = blut("jobs", env=env)
    once = blut("--once", env=env)
    assert listed.returncode == once.returncode == 0, listed.stderr + once.stderr
    assert listed.stdout == once.stdout
    shown = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
    assert shown == ids[-20:]
    assert all(len(line) <= 80 for line in listed.stdout.splitlines())


def test_listing_saves_the_index_and_then_reads_only_it(blut_home: Path) -> None:
    ids = many_jobs(blut_home, 3)
    first = json.loads(blut("jobs", "--format", "json").stdout)
    jobs_dir = blut_home / "jobs"
    from blut.status.layout import JobPaths

    for job_id in ids:
        assert read_summary(JobPaths(jobs_dir / job_id), job_id) is not None
    again = json.loads(blut("jobs", "--format", "json").stdout)
    assert again == first
    oom = next(r for r in first if r["state"] == "failed")
    assert (oom["reason"], oom["peak_memory_bytes"], oom["peak_max_bytes"]) == (
        "oom",
        256 << 20,
        256 << 20,
    )
