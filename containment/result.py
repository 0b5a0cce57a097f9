"""The result record a finished unit leaves behind, and its mapping to an `Outcome`.

systemd units write it from their ExecStopPost helper (``stoppost.sh``); the bare
launcher writes the same ``key=value`` lines itself, so readers need one parser.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from blut.containment.spec import Outcome
from blut.status.atomic import atomic_write, fsync_dir
from blut.status.reserve import RECORD_RESERVE, hold, record_reserve

# systemd's own exit codes for failures before the program ran (systemd.exec(5)).
SYSTEMD_EXIT_CODES = {
    200: "could not change to the working directory (200/CHDIR)",
    203: "could not execute the program (203/EXEC)",
    209: "could not set up stdout/stderr to the log file (209/STDOUT)",
    226: "could not set up the namespace (226/NAMESPACE)",
}


def reserve_record(path: Path) -> None:
    """Pre-fill the space the result record at ``path`` will be written over (before the
    unit starts), so that a unit ending on a full disk still records how it ended."""
    path.unlink(missing_ok=True)
    hold(record_reserve(path), RECORD_RESERVE, b"\n")


def write_record(path: Path, record: Mapping[str, str]) -> None:
    """Atomically write a result record (same format and way as stoppost.sh): over its
    reserve in place, then renamed (no free space needed), else through a temp file."""
    data = "".join(f"{k}={v}\n" for k, v in record.items()).encode()
    reserve = record_reserve(path)
    try:
        fd = os.open(reserve, os.O_WRONLY | os.O_CLOEXEC)  # no O_TRUNC: keep its blocks
    except FileNotFoundError:
        atomic_write(path, data)
        return
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    reserve.replace(path)  # the padding after the record is blank lines, which readers skip
    fsync_dir(path.parent)


def read_record(path: Path) -> dict[str, str] | None:
    """The record at ``path``, or None while it does not exist yet."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    record: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            record[key.strip()] = value.strip()
    return record


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def outcome_from_record(record: Mapping[str, str]) -> Outcome:
    """Classify a finished unit: success, exit N, signal, oom, timeout or error.

    An OOM kill is read from the cgroup's ``oom_kill`` counter: on hybrid cgroup
    hosts systemd reports it as a plain ``signal`` result, exactly like SIGKILL.
    Whether a signal was a cancel is decided by the caller, who knows whether
    it asked to stop the unit.
    """
    result = record.get("service_result", "")
    code = record.get("exit_code", "")
    status = record.get("exit_status", "")
    peak = _int_or_none(record.get("peak_bytes"))
    oom_kills = _int_or_none(record.get("oom_kill")) or 0
    exit_status = _int_or_none(status)
    if oom_kills > 0 or result == "oom-kill":
        return Outcome("oom", signal=status or "KILL", peak_memory=peak, detail="out of memory")
    if result == "timeout":
        return Outcome("timeout", peak_memory=peak, detail="ran past its time limit")
    if code == "exited" and exit_status == 0:
        return Outcome("success", exit_code=0, peak_memory=peak)
    if code == "exited" and exit_status is not None:
        detail = SYSTEMD_EXIT_CODES.get(exit_status, f"exited with code {exit_status}")
        return Outcome("exit", exit_code=exit_status, peak_memory=peak, detail=detail)
    if code in ("killed", "dumped"):
        sig = status.removeprefix("SIG") or "?"
        return Outcome("signal", signal=sig, peak_memory=peak, detail=f"killed by SIG{sig}")
    return Outcome(
        "error",
        peak_memory=peak,
        detail=f"unit ended without an exit status (result={result or '?'})",
    )
