"""`blut jobs` / `blut --once` table: one line per job on an 80-column terminal."""

from __future__ import annotations

import time

from rich.console import Console

from blut.cockpit.render import jobs_table
from blut.jobs.rows import JobRow

NOW = time.mktime((2026, 11, 25, 15, 0, 0, 0, 0, -1))


def row(job_id: str, name: str, state: str, **more: object) -> JobRow:
    fields: dict[str, object] = {
        "reason": None, "exit_code": None, "signal": None, "detail": "", "stage": None,
        "memory_bytes": None, "memory_max_bytes": 2 << 30, "peak_stage": "main",
        "peak_memory_bytes": 1_300_000_000, "peak_max_bytes": 2 << 30, "progress": None,
        "submitted": NOW - 600, "started": NOW - 590, "finished": NOW - 10,
        "elapsed_seconds": 580.0, "command": ["true"], "contained": True,
    }  # fmt: skip
    fields.update(more)
    return JobRow(id=job_id, name=name, state=state, **fields)  # type: ignore[arg-type]


def render(rows: list[JobRow], width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None)
    console.print(jobs_table(rows, width=width, now=NOW))
    return console.export_text().splitlines()


def test_each_job_is_one_line_at_80_columns_and_only_the_name_gives_way() -> None:
    rows = [
        row("20261125-145000-ab12", "quant-train [sweep-20261125-1449-af01]", "succeeded"),
        row("20261125-145100-cd34", "smoke", "failed", reason="oom", exit_code=None),
        row("20261124-090000-ef56", "x", "failed", reason="exit", exit_code=3,
            started=NOW - 86400 * 2, submitted=NOW - 86400 * 2),
        row("20261125-145200-0a0b", "smoke", "cancelled", reason="cancelled"),
    ]  # fmt: skip
    lines = render(rows, 80)
    assert len(lines) == 1 + len(rows)
    assert all(len(line) <= 80 for line in lines)
    head, sweep, oom, exited, cancelled = lines
    assert head.split() == ["ID", "NAME", "STATE", "STARTED", "ELAPSED", "PEAK/MAX"]
    assert sweep.startswith("20261125-145000-ab12  quant-t") and "…" in sweep
    assert "succeeded" in sweep and "1.2G/2.0G" in sweep and "14:50:10" in sweep
    assert "failed (oom)" in oom
    assert "failed (exit 3)" in exited and "11-23 15:00" in exited
    assert "cancelled" in cancelled and "(cancelled)" not in cancelled


def test_a_wide_terminal_shows_names_in_full() -> None:
    rows = [row("20261125-145000-ab12", "quant-train [sweep-20261125-1449-af01]", "running")]
    (_, line) = render(rows, 140)
    assert "quant-train [sweep-20261125-1449-af01]" in line and "…" not in line
