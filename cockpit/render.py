"""rich renderers for jobs, outcomes and doctor checks (fixed-width friendly)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from blut.containment.doctor import Check
from blut.jobs.listing import JobRow
from blut.jobs.quantities import format_duration, format_size
from blut.jobs.store import MAIN_STAGE
from blut.status.jobstate import JobView

STATE_STYLES = {
    "queued": "cyan",
    "running": "bold blue",
    "succeeded": "green",
    "failed": "bold red",
    "cancelled": "yellow",
}
CHECK_STYLES = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def describe_end(view: JobView, memory_max: int | None) -> str:
    """One line on how a finished job ended, e.g. ``killed: out of memory (peak 1.9 GiB of 2.0 GiB)``."""
    peak = view.peak_memory
    if view.state == "succeeded":
        return f"succeeded in {format_duration(view.elapsed(view.finished or 0))}" + (
            f" (peak {format_size(peak)})" if peak else ""
        )
    if view.state == "cancelled":
        return "cancelled"
    stage = next(
        (s for s in view.stages.values() if s.state == "failed" and s.reason != "skipped"), None
    )
    if stage is None:
        return f"failed: {view.detail or 'unknown error'}"
    where = "" if stage.name == MAIN_STAGE else f"stage {stage.name} "
    if stage.reason == "oom":
        ceiling_bytes = stage.memory_max or memory_max
        ceiling = f" of {format_size(ceiling_bytes)}" if ceiling_bytes else ""
        return (
            f"{where}killed: out of memory (peak {format_size(stage.peak_memory or peak)}{ceiling})"
        )
    if stage.reason == "exit":
        return f"{where}exited with code {stage.exit_code}"
    if stage.reason == "signal":
        return f"{where}killed by signal SIG{stage.signal}"
    if stage.reason == "timeout":
        return f"{where}killed: ran past its time limit"
    return f"{where}failed: {stage.detail or view.detail or 'unknown error'}"


def memory_cell(row: JobRow) -> str:
    """``peak / ceiling``."""
    if row.memory_max_bytes is None:
        return format_size(row.peak_memory_bytes)
    return f"{format_size(row.peak_memory_bytes)} / {format_size(row.memory_max_bytes)}"


def jobs_table(rows: Sequence[JobRow]) -> Table:
    """The jobs table of `blut jobs` (and `blut --once` later)."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for header in ("ID", "NAME", "STATE", "REASON", "EXIT", "STARTED", "ELAPSED", "PEAK / MAX"):
        table.add_column(header, no_wrap=header in ("ID", "STATE"))
    for row in rows:
        started = row.started or row.submitted
        table.add_row(
            row.id,
            row.name if row.sweep is None else f"{row.name} [{row.sweep}]",
            Text(row.state, style=STATE_STYLES.get(row.state, "")),
            row.reason or "",
            "" if row.exit_code is None else str(row.exit_code),
            _clock(started),
            format_duration(row.elapsed_seconds),
            memory_cell(row),
        )
    return table


def _clock(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%m-%d %H:%M:%S", time.localtime(ts))


def doctor_table(checks: Sequence[Check]) -> Table:
    """One row per check: status, name, summary and the fix when there is one."""
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, style="bold")
    table.add_column()
    for check in checks:
        text = Text(check.summary)
        if check.fix:
            text.append(f"\n  fix: {check.fix}", style="cyan")
        table.add_row(
            Text(check.status.upper(), style=CHECK_STYLES[check.status]), check.name, text
        )
    return table
