"""Pure logic of `blut doctor`: verdicts, thresholds, BLUT_HOME mode, JSON shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blut.containment.doctor import (
    GIB,
    Check,
    _guarded,
    check_home,
    check_stoppost,
    check_versions,
    disk_status,
    exit_code,
)


def check(status: str) -> Check:
    return Check("x", status, "summary")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ([], 0),
        (["ok", "ok"], 0),
        (["ok", "warn"], 1),
        (["warn", "fail", "ok"], 2),
        (["fail"], 2),
    ],
)
def test_exit_code(statuses: list[str], code: int) -> None:
    assert exit_code([check(s) for s in statuses]) == code


@pytest.mark.parametrize(
    ("free", "status"),
    [
        (0, "fail"),
        (GIB - 1, "fail"),
        (GIB, "warn"),
        (10 * GIB - 1, "warn"),
        (10 * GIB, "ok"),
        (500 * GIB, "ok"),
    ],
)
def test_disk_thresholds(free: int, status: str) -> None:
    assert disk_status(free) == status


def test_private_home_is_ok(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    home.chmod(0o700)
    assert check_home(home).status == "ok"


def test_wide_home_warns_with_chmod_fix(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)
    result = check_home(home)
    assert result.status == "warn"
    assert result.fix == f"chmod 700 {home}"
    assert result.detail["mode"] == "755"


def test_missing_home_will_be_created(tmp_path: Path) -> None:
    assert check_home(tmp_path / "not" / "yet").status == "ok"


def test_home_that_is_a_file_fails(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("")
    assert check_home(path).status == "fail"


def test_stoppost_must_be_executable(tmp_path: Path) -> None:
    script = tmp_path / "stoppost.sh"
    assert check_stoppost(script).status == "fail"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    assert check_stoppost(script).fix == f"chmod +x {script}"
    script.chmod(0o755)
    assert check_stoppost(script).status == "ok"


def test_versions_are_informational() -> None:
    result = check_versions()
    assert result.status == "ok"
    assert set(result.detail) == {"python", "blut", "systemd", "kernel", "torch", "textual"}


def test_a_crashing_check_becomes_a_failed_check() -> None:
    def broken() -> Check:
        raise OSError("disk on fire")

    result = _guarded("disk", broken)
    assert (result.name, result.status) == ("disk", "fail")
    assert "disk on fire" in result.summary


def test_to_dict_is_json_serialisable() -> None:
    item = Check("disk", "warn", "5.0 GiB free", "free space", {"free": 5 * GIB, "path": "/"})
    assert json.loads(json.dumps(item.to_dict())) == {
        "name": "disk",
        "status": "warn",
        "summary": "5.0 GiB free",
        "fix": "free space",
        "detail": {"free": 5 * GIB, "path": "/"},
    }
