"""`python -m blut.containment.noderun`: what a cluster node runs for a stage (no Ray needed).

It runs the unit contained under the node's user manager, exactly as on one box, or, where
the node has none, takes the loud bare fallback and says so in the log and its node note.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from blut.containment.noderun import read_node_note, read_node_spec, write_node_spec
from blut.containment.result import outcome_from_record, read_record
from blut.containment.spec import Placement, UnitSpec
from tests.conftest import unreachable_manager_env

pytestmark = pytest.mark.systemd

ALLOCATE = "b = []\nwhile True:\n    b.append(bytearray(10 * 2**20))\n"


def spec(tmp_path: Path, name: str, *argv: str, memory_max: int | None = None) -> UnitSpec:
    return UnitSpec(
        name=f"blut-noderun-{name}-{tmp_path.name[-8:]}",
        argv=argv,
        log_path=tmp_path / "log",
        result_path=tmp_path / "result",
        env={"PATH": "/usr/bin:/bin", "BLUT_CONTAINED": "1"},
        cwd=tmp_path,
        memory_max=memory_max,
        placement=Placement(cpus=2, resources={"node2": 1}),
    )


def noderun(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "blut.containment.noderun", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_the_spec_round_trips_without_its_placement(tmp_path: Path) -> None:
    unit = spec(tmp_path, "rt", "true", memory_max=1 << 20)
    back = read_node_spec(write_node_spec(unit))
    assert back == UnitSpec(**{**unit.__dict__, "argv": list(unit.argv), "placement": None})


def test_a_stage_past_its_ceiling_ends_oom_under_the_nodes_user_manager(tmp_path: Path) -> None:
    unit = spec(tmp_path, "oom", sys.executable, "-c", ALLOCATE, memory_max=100 << 20)
    done = noderun(write_node_spec(unit))
    assert done.returncode == 1, done.stderr
    record = read_record(unit.result_path)
    assert record is not None
    outcome = outcome_from_record(record)
    assert outcome.kind == "oom" and (outcome.peak_memory or 0) >= 90 << 20, record
    note = read_node_note(unit.result_path)
    assert note is not None and (note.launcher, note.warning) == ("systemd", None)


def test_success_and_exit_codes_come_back(tmp_path: Path) -> None:
    ok = spec(tmp_path, "ok", "sh", "-c", "echo hello")
    assert noderun(write_node_spec(ok)).returncode == 0
    assert (tmp_path / "log").read_text() == "hello\n"
    failed = spec(tmp_path, "exit", "sh", "-c", "exit 3")
    assert noderun(write_node_spec(failed)).returncode == 3


def test_a_node_without_a_user_manager_falls_back_loudly(tmp_path: Path) -> None:
    env = unreachable_manager_env(tmp_path)
    unit = spec(tmp_path, "bare", sys.executable, "-c", ALLOCATE, memory_max=100 << 20)
    done = noderun(write_node_spec(unit), env)
    assert done.returncode == 1
    assert "UNCONTAINED" in done.stderr and "UNCONTAINED" in unit.log_path.read_text()
    note = read_node_note(unit.result_path)
    assert note is not None and note.launcher == "bare" and "UNCONTAINED" in (note.warning or "")
    record = read_record(unit.result_path)
    assert record is not None and outcome_from_record(record).kind == "oom"


def test_an_unreadable_spec_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "spec.json"
    bad.write_text("{")
    done = noderun(bad)
    assert done.returncode == 2
    assert (
        done.stderr.startswith("blut noderun: unreadable unit spec")
        and "Traceback" not in done.stderr
    )
