"""Short text forms for table cells (sizes, durations, progress bars, states)."""

from __future__ import annotations

import shlex

from rich.text import Text

from blut.cockpit.render import STATE_STYLES
from blut.jobs.quantities import format_duration, short_size
from blut.jobs.store import JobSpec
from blut.status.usage import HomeUsage

STATE_STYLES_ALL = {**STATE_STYLES, "loading": "dim", "cached": "green", "skipped": "dim"}
BAR_CELLS = 10


def duration(seconds: float | None) -> str:
    """``4.2s``, ``3m05s``, ``1h02m``, ``-``."""
    return format_duration(seconds)


def state_text(state: str) -> Text:
    """The state in its colour."""
    return Text(state, style=STATE_STYLES_ALL.get(state, ""))


def bar(fraction: float | None, cells: int = BAR_CELLS) -> Text:
    """``██████░░░░  60%`` (blank when unknown)."""
    if fraction is None:
        return Text("")
    filled = round(fraction * cells)
    text = Text("█" * filled, style="blue")
    text.append("░" * (cells - filled), style="dim")
    text.append(f" {fraction * 100:3.0f}%")
    return text


def memory_cell(now: int | None, ceiling: int | None) -> Text:
    """``1.2G/2.0G``, red when over 90 % of the ceiling."""
    if now is None and ceiling is None:
        return Text("-", style="dim")
    text = f"{short_size(now)}/{short_size(ceiling)}" if ceiling else short_size(now)
    hot = now is not None and ceiling is not None and now >= 0.9 * ceiling
    return Text(text, style="bold red" if hot else "")


def size_arg(value: int) -> str:
    """A size as `blut run --memory-max` takes it: ``2G``, ``512M``, or bytes."""
    for unit, power in (("T", 4), ("G", 3), ("M", 2), ("K", 1)):
        if value % 1024**power == 0:
            return f"{value // 1024**power}{unit}"
    return str(value)


def rerun_command(spec: JobSpec) -> str:
    """The `blut run` line that runs the same command again."""
    parts = ["blut", "run", "--name", spec.name]
    if spec.memory_max is not None:
        parts += ["--memory-max", size_arg(spec.memory_max)]
    if spec.timeout is not None:
        parts += ["--timeout", f"{spec.timeout:g}s"]
    return shlex.join([*parts, "--", *spec.argv])


def space(use: HomeUsage) -> str:
    """``jobs 3.6M in 12 folders · cache 2.6M``: what BLUT_HOME holds."""
    folders = f"{use.job_count} folder{'' if use.job_count == 1 else 's'}"
    return f"jobs {short_size(use.jobs)} in {folders} · cache {short_size(use.cache)}"
