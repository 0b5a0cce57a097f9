"""Everything blut creates under BLUT_HOME is 0600 / 0700, whatever the umask; an existing home
open to others is made private (or refused with the fix)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import blut


def blut_with_umask(umask: int, *args: str) -> subprocess.CompletedProcess[str]:
    """`blut ARGS` run by a shell whose umask is ``umask``."""
    return subprocess.run(
        [sys.executable, "-m", "blut", *args],
        capture_output=True,
        text=True,
        timeout=120,
        umask=umask,
        check=False,
    )


def open_to_others(home: Path) -> list[str]:
    """``mode path`` of everything under ``home`` that group or others may use."""
    found = []
    for path in [home, *home.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            found.append(f"{mode:o} {path.relative_to(home)}")
    return found


def test_everything_is_private_under_umask_000(blut_home: Path) -> None:
    for args in (
        ["recipe", "run", "smoke", "--uncontained"],
        ["run", "--uncontained", "--", "sh", "-c", "echo hi; echo oops >&2"],
    ):
        result = blut_with_umask(0, *args)
        assert result.returncode == 0, result.stderr
    assert (blut_home / "cache" / "index.sqlite").is_file()
    assert len(list(blut_home.rglob("*"))) > 50
    assert open_to_others(blut_home) == []


def test_a_command_keeps_the_submitters_umask(blut_home: Path) -> None:
    result = blut_with_umask(0o002, "run", "--uncontained", "--", "sh", "-c", "umask")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0002"


def test_an_open_home_of_blut_files_is_made_private(blut_home: Path) -> None:
    (blut_home / "cache").mkdir(parents=True)
    (blut_home / "jobs").mkdir()
    blut_home.chmod(0o755)
    assert blut("jobs").returncode == 0
    assert stat.S_IMODE(blut_home.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("mode", "entry", "needle"),
    [
        (0o755, "notes.txt", "holds 'notes.txt', which is not blut's: run `chmod 700 "),
        (0o1777, None, "is shared: run `chmod 700 "),
    ],
)
def test_an_open_home_that_is_not_only_blut_is_refused(
    blut_home: Path, mode: int, entry: str | None, needle: str
) -> None:
    blut_home.mkdir()
    if entry:
        (blut_home / entry).write_text("mine")
    blut_home.chmod(mode)
    result = blut("jobs")
    assert result.returncode == 2
    assert result.stderr.startswith(f"blut: error: BLUT_HOME {blut_home} is open to other users")
    assert needle in result.stderr and len(result.stderr.splitlines()) == 1
    assert stat.S_IMODE(blut_home.stat().st_mode) == mode


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the folder away")
def test_an_open_home_of_another_user_is_refused(blut_home: Path) -> None:
    blut_home.mkdir(mode=0o755)
    blut_home.chmod(0o755)
    os.chown(blut_home, 65534, 65534)
    result = blut("jobs")
    assert result.returncode == 2
    assert "is open to other users (mode 755) and not yours" in result.stderr
