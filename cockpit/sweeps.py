"""The cockpit's loaded sweeps: when to (re)load a sweep's points, and how a member reads.

A sweep's points (:class:`~blut.jobs.sweeps.Sweep`: varied args, Parquet metrics) are
read by a worker through :func:`blut.jobs.api.load_sweep`; :class:`SweepCache` keeps
the last load of each sweep and says when another is due: never while one runs, and
again only when a member changed (its state version moved) and the last load is
:data:`REFRESH` seconds old, so an ended sweep is read once.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from blut.cockpit.plot import short_number
from blut.jobs.sweeps import Sweep

REFRESH = 2.0
"""Least seconds between two loads of one sweep while its members change."""
COLORS = ("cyan", "magenta", "yellow", "green", "red", "blue", "bright_white", "bright_magenta")
"""One colour per point (in the sweep's stable point order), in the table and the plot."""

Mark = tuple[tuple[str, int], ...]
"""(job id, state version) of each member: a load is due when it moves."""


@dataclass
class _Entry:
    data: Sweep | None = None
    mark: Mark | None = None
    loaded_at: float = float("-inf")
    busy: bool = False


class SweepCache:
    """The last load of each sweep the screens asked about."""

    def __init__(self, refresh: float = REFRESH) -> None:
        self.refresh = refresh
        self._entries: dict[str, _Entry] = {}
        self.version = 0
        """Bumped by every stored load (screens repaint when it moves)."""

    def get(self, sweep: str) -> Sweep | None:
        """The last load of ``sweep`` (None before the first)."""
        entry = self._entries.get(sweep)
        return entry.data if entry is not None else None

    def due(self, sweep: str, mark: Mark, now: float) -> bool:
        """True (and the sweep is marked loading) when a load of ``sweep`` should start."""
        entry = self._entries.setdefault(sweep, _Entry())
        if entry.busy or entry.mark == mark:
            return False
        if entry.data is not None and now - entry.loaded_at < self.refresh:
            return False
        entry.busy = True
        return True

    def store(self, sweep: str, data: Sweep | None, mark: Mark, now: float) -> None:
        """A load finished (``data`` None: it failed; it is tried again when due)."""
        entry = self._entries.setdefault(sweep, _Entry())
        entry.busy = False
        entry.loaded_at = now
        if data is not None:
            entry.data, entry.mark = data, mark
        self.version += 1


def point_color(sweep: Sweep, job_id: str) -> str:
    """The colour of ``job_id``'s point."""
    ids = [p.job_id for p in sweep.points]
    return COLORS[ids.index(job_id) % len(COLORS)] if job_id in ids else ""


def metric_number(value: float | None) -> str:
    """A metric in a comparison: four significant digits (points often differ in the third)."""
    if value is None:
        return "-"
    return f"{value:.4g}" if 1e-3 <= abs(value) < 1e5 else short_number(value)


def member_label(sweep: Sweep | None, job_id: str, fallback: str) -> Text:
    """A member's name in the Jobs table: ``lr=0.01  0.5321`` (its varied args and the final
    value of the sweep's primary metric, which its group row names), ``fallback`` until
    the sweep is loaded."""
    point = sweep.point(job_id) if sweep is not None else None
    if sweep is None or point is None or not sweep.varied:
        return Text(fallback)
    text = Text(sweep.label(point), style=point_color(sweep, job_id))
    metric = sweep.primary
    summary = point.summary(metric) if metric is not None else None
    if summary is not None:
        text.append(f"  {metric_number(summary.final)}")
    return text


def group_note(sweep: Sweep | None) -> str:
    """What a group row adds once its members show their metric: the metric's name."""
    return f" · {sweep.primary}" if sweep is not None and sweep.primary else ""


BRANCHES = "branches:"
"""Prefix of the group of a snapshot's runs (compared like a sweep's points)."""


def branches_group(snapshot: str) -> str:
    """The group of the runs of snapshot ``snapshot``: the job it was taken from and every
    job started from it (continued or branched)."""
    return f"{BRANCHES}{snapshot}"


def group_snapshot(group: str) -> str | None:
    """The snapshot id of a branches group; None for a sweep id."""
    return group.removeprefix(BRANCHES) if group.startswith(BRANCHES) else None
