"""`blut sweep SWEEP`: a sweep's points compared (the cockpit's Sweep screen as a table)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from blut.commands.common import check_format, format_option, out, store

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

    from blut.jobs.rows import JobRow
    from blut.jobs.sweeps import Sweep


@click.command("sweep")
@click.argument(
    "sweep_ref", metavar="SWEEP", help="A sweep id, or a part of one only it has (`blut jobs`)."
)
@format_option
def sweep(sweep_ref: str, fmt: str) -> None:
    """Compare a sweep's points: the arguments that vary, state, final and best metrics."""
    from blut.jobs.api import list_jobs, load_sweep
    from blut.jobs.errors import UsageError, clip

    check_format(fmt)
    jobs = store()
    rows = list_jobs(jobs).rows
    sweeps = sorted({r.sweep for r in rows if r.sweep is not None})
    found = [s for s in sweeps if s == sweep_ref] or [s for s in sweeps if sweep_ref in s]
    if len(found) != 1:
        what = "no sweep" if not found else "more than one sweep"
        known = f" (sweeps: {', '.join(sweeps[-5:])})" if sweeps else " (no sweeps yet)"
        raise UsageError(f"{what} matches {clip(sweep_ref)!r}{known}")
    members = {r.id: r for r in rows if r.sweep == found[0]}
    data = load_sweep(jobs, found[0], list(members))
    if fmt == "json":
        out.print_json(json.dumps(sweep_json(data, members)))
    else:
        out.print(sweep_table(data, members, out.width))


def sweep_json(data: Sweep, rows: dict[str, JobRow]) -> dict[str, Any]:
    """The sweep as JSON: its varied keys and, per point, args, state and metric summaries."""
    points = []
    for point in data.points:
        row = rows.get(point.job_id)
        metrics = {}
        for name in sorted(point.curves):
            summary = point.summary(name)
            if summary is not None:
                metrics[name] = {
                    "final": summary.final,
                    "best": summary.best,
                    "best_at": summary.best_x,
                    "last_at": summary.last_x,
                }
        points.append(
            {
                "job": point.job_id,
                "params": point.params,
                "state": row.state if row is not None else None,
                "reason": row.reason if row is not None else None,
                "metrics": metrics,
            }
        )
    return {"sweep": data.id, "varied": list(data.varied), "points": points}


def sweep_table(data: Sweep, rows: dict[str, JobRow], width: int) -> Table:
    """One line per point (in argument order): id, varied args, state, and the final and
    best value of each compared metric that fits in ``width`` columns (losses first)."""
    from rich.table import Table
    from rich.text import Text

    from blut.cockpit.render import STATE_STYLES
    from blut.jobs.sweeps import direction

    def state(job_id: str) -> Text:
        row = rows.get(job_id)
        if row is None:
            return Text("?")
        why = f" ({row.reason})" if row.reason and row.state == "failed" else ""
        return Text(row.state + why, style=STATE_STYLES.get(row.state, ""))

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    columns: list[tuple[str, list[Text]]] = [
        ("JOB", [Text(p.job_id) for p in data.points]),
        *((data.names[k], [Text(p.value_text(k)) for p in data.points]) for k in data.varied),
        ("STATE", [state(p.job_id) for p in data.points]),
    ]
    used = sum(_width(label, cells) for label, cells in columns)
    for name in data.metrics:
        summaries = [p.summary(name) for p in data.points]
        pair = [
            (name, [Text(number(s.final if s else None)) for s in summaries]),
            (direction(name) or "best", [Text(number(s.best if s else None)) for s in summaries]),
        ]
        need = sum(_width(label, cells) for label, cells in pair)
        if used + need > width:
            break
        used += need
        columns += pair
    table = Table(box=None, header_style="bold", pad_edge=False, title_justify="left")
    table.title = f"{data.id}: {len(data.points)} points, varies {', '.join(data.varied) or '-'}"
    fixed = len(data.varied) + 2  # JOB, the varied args, STATE; then the numbers
    for i, (label, _) in enumerate(columns):
        table.add_column(label, no_wrap=True, justify="right" if i >= fixed else "left")
    for i in range(len(data.points)):
        table.add_row(*(cells[i] for _, cells in columns))
    return table


def _width(label: str, cells: list[Text]) -> int:
    """Columns a table column takes: its widest cell or label and the gap after it."""
    return max([len(label), *(c.cell_len for c in cells)]) + 2
