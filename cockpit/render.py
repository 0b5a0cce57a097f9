"""rich renderers for jobs, outcomes and doctor checks (fixed-width friendly)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from blut.jobs.diskfull import disk_full_cause
from blut.jobs.quantities import format_duration, format_size, short_size
from blut.jobs.rows import JobRow
from blut.jobs.store import MAIN_STAGE
from blut.status.jobstate import JobView

if TYPE_CHECKING:
    from blut.containment.doctor import Check

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
    full = disk_full_cause(stage.detail)
    because = f" ({full})" if full else ""  # what ended it: e.g. its last write did not fit
    if stage.reason == "exit":
        return f"{where}exited with code {stage.exit_code}{because}"
    if stage.reason == "signal":
        return f"{where}killed by signal SIG{stage.signal}{because}"
    if stage.reason == "timeout":
        return f"{where}killed: ran past its time limit"
    return f"{where}failed: {stage.detail or view.detail or 'unknown error'}"


def memory_cell(row: JobRow) -> str:
    """A stage's peak against that stage's own ceiling, compact: ``8.6M/256M``."""
    if row.peak_memory_bytes is None:
        return (
            short_size(None)
            if row.memory_max_bytes is None
            else f"-/{short_size(row.memory_max_bytes)}"
        )
    if row.peak_max_bytes is None:
        return short_size(row.peak_memory_bytes)
    return f"{short_size(row.peak_memory_bytes)}/{short_size(row.peak_max_bytes)}"


def state_cell(row: JobRow) -> Text:
    """The state, coloured, with why a job failed: ``failed (exit 3)``, ``failed (oom)``."""
    reason = None if row.reason == row.state else row.reason  # not "cancelled (cancelled)"
    code = None if row.exit_code in (None, 0) else str(row.exit_code)
    why = " ".join(part for part in (reason, code) if part)
    return Text(f"{row.state} ({why})" if why else row.state, style=STATE_STYLES.get(row.state, ""))


_GAP = "  "
"""Between two columns."""


def jobs_table(rows: Sequence[JobRow], width: int | None = None, now: float | None = None) -> Text:
    """The jobs table of `blut jobs` and `blut --once`: one line per job.

    With ``width`` (the console's), only NAME gives way, with an ellipsis, so a
    job stays one line on an 80-column terminal. Laid out here rather than by a
    rich ``Table``, which takes half a second to measure and wrap 1,000 rows
    whose cells never wrap.
    """
    today = time.localtime(time.time() if now is None else now)[:3]
    headers = ("ID", "NAME", "STATE", "STARTED", "ELAPSED", "PEAK/MAX")
    lines = [
        (
            Text(row.id),
            Text(
                (row.name if row.sweep is None else f"{row.name} [{row.sweep}]")
                + (f" ({row.origin})" if row.origin else "")
            ),
            state_cell(row),
            Text(_clock(row.started or row.submitted, today)),
            Text(format_duration(row.elapsed_seconds)),
            Text(memory_cell(row)),
        )
        for row in rows
    ]
    widths = [
        max([len(header)] + [line[i].cell_len for line in lines])
        for i, header in enumerate(headers)
    ]
    if width is not None:
        others = sum(w for i, w in enumerate(widths) if i != 1) + len(_GAP) * (len(headers) - 1)
        widths[1] = min(widths[1], max(4, width - others))
    out = Text()
    out.append(_GAP.join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), "bold")
    for line in lines:
        out.append("\n")
        for i, (cell, cell_width) in enumerate(zip(line, widths, strict=True)):
            if i:
                out.append(_GAP)
            if cell.cell_len > cell_width:
                cell.truncate(cell_width, overflow="ellipsis")
            if i < len(line) - 1:
                cell.pad_right(cell_width - cell.cell_len)
            out.append_text(cell)
    return out


def _clock(ts: float | None, today: tuple[int, int, int]) -> str:
    """``HH:MM:SS`` for today, ``MM-DD HH:MM`` before."""
    if ts is None:
        return "-"
    local = time.localtime(ts)
    return time.strftime("%H:%M:%S" if local[:3] == today else "%m-%d %H:%M", local)


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
