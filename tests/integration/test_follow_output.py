"""What `blut run` (and `blut log -f`) print of a job's output: its bytes, all of them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from blut.containment.select import launcher_for
from blut.jobs.follow import LogLine, follow
from blut.jobs.store import JobStore
from blut.status.jobstate import JobView
from tests.conftest import blut


def blut_bytes(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "blut", *args],
        capture_output=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_last_line_without_newline_is_printed(blut_home: Path) -> None:
    result = blut("run", "--name", "partial", "--", "printf", "line1\\nno-newline-at-end")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "line1\nno-newline-at-end\n"
    again = blut("log", "-f", "partial")
    assert again.returncode == 0 and again.stdout == result.stdout


def test_output_bytes_pass_through_unchanged(blut_home: Path) -> None:
    script = "printf '\\377\\376 not utf-8\\n'; echo 'ünï 😀'"
    result = blut_bytes("run", "--", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"\xff\xfe not utf-8\n" + "ünï 😀\n".encode()


def test_a_terminal_that_is_not_utf8_does_not_crash(blut_home: Path) -> None:
    result = blut_bytes("run", "--", "echo", "ünï", env={"PYTHONIOENCODING": "ascii"})
    assert b"Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0
    assert result.stdout == "ünï\n".encode()


def test_weird_arguments_reach_the_command_as_given(blut_home: Path) -> None:
    weird = ["$HOME", 'it\'s "q"', "a\nb", "ünï😀", "", "--", "-x", "*"]
    script = 'for a in "$@"; do printf "[%s]" "$a"; done'
    result = blut_bytes("run", "--", "sh", "-c", script, "sh", *weird)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == "".join(f"[{a}]" for a in weird) + "\n"


def test_following_an_ended_job_reports_it_without_waiting_for_a_change(blut_home: Path) -> None:
    assert blut("run", "--name", "ended", "--", "echo", "done").returncode == 0
    (job,) = JobStore(blut_home).all()
    stopped = threading.Event()
    stopped.set()  # no change will ever be waited for: only the first pass can report
    launcher = launcher_for(job.spec.launcher)
    try:
        items = list(follow(job, launcher, stop=stopped))
    finally:
        launcher.close()
    assert [i.text for i in items if isinstance(i, LogLine)] == ["done"]
    assert isinstance(items[-1], JobView) and items[-1].state == "succeeded"
