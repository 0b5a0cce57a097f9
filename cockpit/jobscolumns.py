"""The Jobs table's columns at a given width: what matters first, the rest when wider.

At 80 columns the table shows NAME, STATE (with why it failed), STAGE,
PROGRESS, ELAPSED and MEM/MAX, and never scrolls sideways: NAME takes what the
others leave, cut with an ellipsis. Wider terminals add a short ID, then
PEAK/MAX and GPU, then the full ID. Cells are made here, as text, so widths are
measured from what is shown (no column keeps the width of its first paint).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.text import Text

from blut.cockpit import fmt, render
from blut.cockpit.state import SweepGroup
from blut.jobs.quantities import short_size
from blut.jobs.rows import JobRow

LABELS: Mapping[str, str] = {
    "id": "ID",
    "name": "NAME",
    "state": "STATE",
    "stage": "STAGE",
    "progress": "PROGRESS",
    "elapsed": "ELAPSED",
    "memory": "MEM/MAX",
    "peak": "PEAK/MAX",
    "gpus": "GPU",
    "node": "NODE",
}
ORDER = ("id", "name", "state", "stage", "progress", "elapsed", "memory", "peak", "gpus", "node")
CORE = ("name", "state", "stage", "progress", "elapsed", "memory")
"""Shown at any width."""
EXTRA_FROM = {"id": 100, "peak": 120, "gpus": 130, "node": 170}
"""The terminal width from which each other column is shown."""
FULL_ID_FROM = 150
"""From this width the ID column shows the whole id (date included), else its time and suffix."""
PADDING = 2
"""Cells a DataTable column adds around its content (one each side)."""
RESERVED = 2
"""Columns kept free for the vertical scrollbar."""
MIN_NAME = 8
CAPS = {"state": 18, "stage": 10}
"""Most cells a column may take (its values are cut beyond)."""

Cells = tuple[Text, ...]


def columns_for(width: int) -> tuple[str, ...]:
    """The column keys shown at ``width`` terminal columns, in table order."""
    shown = set(CORE) | {key for key, least in EXTRA_FROM.items() if width >= least}
    return tuple(key for key in ORDER if key in shown)


def short_id(job_id: str) -> str:
    """``103005-ab12``: the id without its date (a suffix every command accepts)."""
    return job_id.split("-", 1)[1] if job_id.count("-") >= 2 else job_id


def _short_id(job_id: str, width: int) -> str:
    """``103005-ab12`` (time and suffix) below :data:`FULL_ID_FROM`, the whole id above."""
    return job_id if width >= FULL_ID_FROM else short_id(job_id)


def row_cells(row: JobRow, width: int, member: Text | None = None) -> dict[str, Text]:
    """Every cell of one job's line (``member``: its name under its sweep's group row)."""
    name = Text(row.name) if member is None else Text("└ ").append_text(member)
    if row.origin:
        name.append(f" ({row.origin})", style="dim")
    return {
        "id": Text(_short_id(row.id, width)),
        "name": name,
        "state": render.state_cell(row) if row.state != "loading" else fmt.state_text("loading"),
        "stage": Text(row.stage or ""),
        "progress": fmt.bar(row.progress, cells=6),
        "elapsed": Text(fmt.duration(row.elapsed_seconds)),
        "memory": fmt.memory_cell(row.memory_bytes, row.memory_max_bytes),
        "peak": Text(render.memory_cell(row)),
        "gpus": _gpus(row.gpus),
        "node": _nodes(row.nodes),
    }


def group_cells(group: SweepGroup, expanded: bool, width: int, note: str = "") -> dict[str, Text]:
    """Every cell of a sweep's group line: its size, overall state and summary figures
    (``note``: after the name, e.g. the metric its members show)."""
    head = Text("▾ " if expanded else "▸ ", style="bold")
    name = group.members[0].recipe or group.members[0].name
    head.append(f"{name} ×{len(group.members)}", style="bold")
    head.append(note, style="dim")
    return {
        "id": Text(_short_id(group.sweep.removeprefix("sweep-"), width), style="bold"),
        "name": head,
        "state": fmt.state_text(group.state),
        "stage": Text(group.counts(), style="dim"),
        "progress": fmt.bar(group.progress, cells=6),
        "elapsed": Text(fmt.duration(group.elapsed)),
        "memory": Text("-", style="dim"),
        "peak": Text(short_size(group.peak)),
        "gpus": _gpus(tuple(sorted({g for r in group.members for g in r.gpus}))),
        "node": _nodes(tuple(sorted({n for r in group.members for n in r.nodes}))),
    }


def _gpus(gpus: tuple[int, ...]) -> Text:
    """``0,1`` (the GPUs a job's running stages hold) or a dim ``-``."""
    return Text(",".join(map(str, gpus))) if gpus else Text("-", style="dim")


def _nodes(nodes: tuple[str, ...]) -> Text:
    """The cluster nodes a job's running stages run on, or a dim ``-`` (this machine)."""
    return Text(",".join(nodes)) if nodes else Text("-", style="dim")


@dataclass(frozen=True)
class Layout:
    """The columns shown, the width NAME may take, and each column's width."""

    keys: tuple[str, ...]
    name_width: int
    widths: tuple[int, ...] = ()
    """Cells each shown column takes (label included), in :attr:`keys` order."""
    sorted_by: str = ""

    @property
    def labels(self) -> list[tuple[str, str]]:
        """(key, label) of each shown column."""
        return [(key, LABELS[key]) for key in self.keys]


SORT_MARK = " ▼"
"""What the sorted column's header adds to its label (▼ or ▲)."""


def cell_widths(line: Mapping[str, Text]) -> dict[str, int]:
    """The width of each cell of ``line`` (what :func:`layout` measures)."""
    return {key: cell.cell_len for key, cell in line.items()}


def layout(width: int, widths: Sequence[Mapping[str, int]], sorted_by: str = "") -> Layout:
    """The columns for ``width``, NAME taking what the others (as wide as their widest
    cell within :data:`CAPS`, or their label, with :data:`SORT_MARK` on ``sorted_by``)
    leave; ``widths``: :func:`cell_widths` of every line."""
    keys = columns_for(width)
    used = RESERVED + PADDING * len(keys)
    taken: dict[str, int] = {}
    for key in keys:
        label = len(LABELS[key]) + (len(SORT_MARK) if key == sorted_by else 0)
        widest = max([label] + [line[key] for line in widths])
        taken[key] = max(label, min(widest, CAPS.get(key, widest)))
        if key != "name":
            used += taken[key]
    name_width = max(MIN_NAME, width - used)
    taken["name"] = min(taken["name"], name_width) if "name" in taken else 0
    return Layout(keys, name_width, tuple(taken[key] for key in keys), sorted_by)


def fit(line: Mapping[str, Text], shown: Layout) -> Cells:
    """The cells of ``line`` for the shown columns, each cut to its column."""
    out = []
    for key in shown.keys:
        cell = line[key]
        limit = shown.name_width if key == "name" else CAPS.get(key)
        if limit is not None and cell.cell_len > limit:
            cell = cell.copy()  # the line's own cell stays whole for a wider layout
            cell.truncate(limit, overflow="ellipsis")
        out.append(cell)
    return tuple(out)
