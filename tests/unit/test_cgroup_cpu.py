"""A unit's CPU time from its cgroup: v2, a hybrid host's unified tree, v1 cpuacct."""

from __future__ import annotations

from pathlib import Path

import pytest

from blut.containment.cgroup import cpu_seconds

GROUP = "/app.slice/blut-x-main.service"


@pytest.mark.parametrize(
    ("where", "name", "text", "seconds"),
    [
        ("", "cpu.stat", "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n", 2.5),
        ("unified", "cpu.stat", "usage_usec 1000\n", 0.001),
        ("cpuacct", "cpuacct.usage", "3000000000\n", 3.0),
    ],
)
def test_cpu_seconds_from_each_layout(
    tmp_path: Path, where: str, name: str, text: str, seconds: float
) -> None:
    folder = tmp_path / where / GROUP.lstrip("/")
    folder.mkdir(parents=True)
    (folder / name).write_text(text)
    assert cpu_seconds(GROUP, tmp_path) == pytest.approx(seconds)


def test_cpu_seconds_of_a_missing_or_odd_group_is_none(tmp_path: Path) -> None:
    assert cpu_seconds(GROUP, tmp_path) is None
    folder = tmp_path / GROUP.lstrip("/")
    folder.mkdir(parents=True)
    (folder / "cpu.stat").write_text("user_usec 5\n")
    assert cpu_seconds(GROUP, tmp_path) is None
