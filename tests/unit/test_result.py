"""Classifying a unit's result record: OOM is told apart from a plain SIGKILL."""

from __future__ import annotations

from pathlib import Path

import pytest

from blut.containment.result import outcome_from_record, read_record, write_record


def rec(result: str, code: str, status: str, oom: str = "0", peak: str = "1000") -> dict[str, str]:
    return {
        "service_result": result,
        "exit_code": code,
        "exit_status": status,
        "oom_kill": oom,
        "peak_bytes": peak,
    }


@pytest.mark.parametrize(
    ("record", "kind", "exit_code", "signal"),
    [
        (rec("success", "exited", "0"), "success", 0, None),
        (rec("exit-code", "exited", "3"), "exit", 3, None),
        (rec("signal", "killed", "KILL", oom="1"), "oom", None, "KILL"),  # hybrid cgroups: OOM
        (rec("signal", "killed", "KILL", oom="0"), "signal", None, "KILL"),  # plain SIGKILL
        (rec("oom-kill", "killed", "KILL", oom=""), "oom", None, "KILL"),  # cgroup v2 systemd
        (rec("timeout", "killed", "TERM"), "timeout", None, None),
        (rec("success", "killed", "TERM"), "signal", None, "TERM"),  # stopped
        (rec("resources", "", ""), "error", None, None),
    ],
)
def test_classification(
    record: dict[str, str], kind: str, exit_code: int | None, signal: str | None
) -> None:
    outcome = outcome_from_record(record)
    assert (outcome.kind, outcome.exit_code, outcome.signal) == (kind, exit_code, signal)
    assert outcome.peak_memory == 1000
    assert outcome.ok == (kind == "success")


def test_systemd_exec_failure_is_explained() -> None:
    outcome = outcome_from_record(rec("exit-code", "exited", "203"))
    assert outcome.kind == "exit" and "203/EXEC" in outcome.detail


def test_record_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "result"
    assert read_record(path) is None
    write_record(path, rec("success", "exited", "0"))
    assert read_record(path) == rec("success", "exited", "0")
    assert list(tmp_path.iterdir()) == [path]
