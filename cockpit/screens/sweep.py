"""Sweep: every point of one sweep side by side, and their loss curves overlaid.

The same screen compares the runs of one snapshot (`branches_group`): the job it
was taken from and every job started from it; the title names the snapshot and
an ORIGIN column says what each run changed of its config (``lr 0.001 → 0.01``,
``continued``; ``parent`` for the run it was taken from). A sweep of branches
shows the same column.

One row per point: its colour, the arguments that vary, its state, and the final
and best value of each compared metric (losses first), sortable by any column
(`s` / `r`, or a click on the header; the header carries the sort marker). The plot
overlays one metric's curve per point, in the point's colour, legend by parameter
value; `m` picks the next metric. Points are read by the app's sweep worker
(:meth:`~blut.cockpit.app.CockpitApp.want_sweep`); states are live.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Static

from blut.cockpit import fmt
from blut.cockpit.plot import Curve, Plot, legend, wants_log
from blut.cockpit.screens.base import StateScreen
from blut.cockpit.state import JobState
from blut.cockpit.sweeps import group_snapshot, metric_number, point_color
from blut.jobs.snapshotorigin import describe_change, origin_point
from blut.jobs.sweeps import Sweep, SweepPoint, direction

STATE_ORDER = ("running", "queued", "loading", "failed", "cancelled", "succeeded")
PADDING = 2
"""Cells a DataTable column adds around its content."""
RESERVED = 2
"""Columns kept free for the vertical scrollbar."""

Cell = Text
Row = dict[str, Cell]
SortValue = tuple[Any, ...]


class SweepScreen(StateScreen):
    """One sweep, compared."""

    DEFAULT_CSS = """
    SweepScreen #title { height: auto; max-height: 2; padding: 0 1; background: $panel; }
    SweepScreen #points { height: auto; max-height: 10; }
    SweepScreen #curves { height: 1fr; min-height: 6; }
    SweepScreen #legend { height: auto; max-height: 2; padding: 0 1; }
    """
    HELP_TITLE = "Sweep"
    KEY_HELP = (
        ("↑ ↓ enter", "move, open the point's job"),
        ("s / r", "sort by the next column / reverse it (a click on a header sorts by it)"),
        ("m", "plot the next metric (one curve per point, legend by argument value)"),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("o", "open", "Open job"),
        Binding("s", "sort", "Sort"),
        Binding("r", "reverse", "Reverse"),
        Binding("m", "metric", "Metric"),
    ]

    def __init__(self, sweep: str) -> None:
        super().__init__()
        self.sweep = sweep
        self.sort: str | None = None
        """The column the points are sorted by (None: the first varied argument)."""
        self.reverse = False
        self.metric: str | None = None
        """The plotted metric (None: the sweep's primary one)."""
        self._columns: list[tuple[str, str]] = []
        self._keys: list[str] = []
        self._painted: tuple[object, ...] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="title")
        yield DataTable(id="points", cursor_type="row", zebra_stripes=True)
        yield Plot("metric", id="curves", empty_text="no metrics yet")
        yield Static(id="legend")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "blut"
        self.sub_title = f"sweep {self.sweep}"
        self.query_one(DataTable).focus()
        self.update_state()
        self.set_interval(1.0, self.update_state)

    def on_resize(self) -> None:
        self.update_state()

    @property
    def data(self) -> Sweep | None:
        """The sweep's points as last loaded."""
        return self.cockpit.sweeps.get(self.sweep)

    @property
    def selected_job_id(self) -> str | None:
        if not self._keys:  # not painted yet (the feed may ask before the table exists)
            return None
        table = self.query_one(DataTable)
        if 0 <= table.cursor_row < len(self._keys):
            return self._keys[table.cursor_row]
        return None

    # ---- what is shown ----------------------------------------------------------

    def state_of(self, job_id: str) -> str:
        """The live state of a point's job."""
        job = self.cockpit.state.jobs.get(job_id)
        return job.view.state if job is not None else "loading"

    def origin_of(self, job_id: str) -> str:
        """What a point's job changed of the snapshot it started from (``lr 0.001 → 0.01``,
        ``continued``), ``parent`` for the job the compared snapshot was taken from."""
        job = self.cockpit.state.jobs.get(job_id)
        record = job.spec.snapshot if job is not None else None
        if record:
            return describe_change(record)
        return "parent" if group_snapshot(self.sweep) is not None else "-"

    def _from_snapshot(self) -> bool:
        """Whether the compared runs started from a snapshot (the ORIGIN column is shown)."""
        if group_snapshot(self.sweep) is not None:
            return True
        return any(j.spec.snapshot for j in self.cockpit.sweep_members(self.sweep))

    def metric_columns(self, data: Sweep, rows: list[Row]) -> list[str]:
        """The compared metrics whose final and best columns fit beside the fixed ones
        (at least the first), in :attr:`Sweep.metrics` order."""
        room = self.size.width - RESERVED - sum(_width(k, lbl, rows) for k, lbl in self._fixed)
        shown: list[str] = []
        for metric in data.metrics:
            cols = [(f"final:{metric}", metric), (f"best:{metric}", _best_label(metric))]
            need = sum(_width(k, lbl, rows) for k, lbl in cols)
            if need > room and shown:
                break
            room -= need
            shown.append(metric)
        return shown

    @property
    def _fixed(self) -> list[tuple[str, str]]:
        data = self.data
        names = data.names if data is not None else {}
        origin = [("origin", "ORIGIN")] if self._from_snapshot() else []
        return [
            ("color", " "),
            *((f"param:{k}", names[k]) for k in (data.varied if data else ())),
            *origin,
            ("state", "STATE"),
        ]

    def _rows(self, data: Sweep) -> list[Row]:
        """One row of cells per point, in point order (every compared metric)."""
        rows = []
        for point in data.points:
            row: Row = {
                "color": Text("●", style=point_color(data, point.job_id)),
                "state": fmt.state_text(self.state_of(point.job_id)),
                "origin": Text(self.origin_of(point.job_id), style="cyan"),
            }
            for key in data.varied:
                row[f"param:{key}"] = Text(point.value_text(key))
            for metric in data.metrics:
                summary = point.summary(metric)
                final = metric_number(summary.final if summary is not None else None)
                best = metric_number(summary.best if summary is not None else None)
                row[f"final:{metric}"] = Text(final, justify="right")
                row[f"best:{metric}"] = Text(best, justify="right", style="dim")
            rows.append(row)
        return rows

    def sort_value(self, data: Sweep, point: SweepPoint, column: str) -> SortValue | None:
        """Where ``point`` goes when sorted by ``column`` (None: it has no value there)."""
        kind, _, name = column.partition(":")
        if kind == "param":
            return point.order(name)
        if kind == "origin":
            return (self.origin_of(point.job_id),)
        if kind == "state":
            state = self.state_of(point.job_id)
            return (STATE_ORDER.index(state) if state in STATE_ORDER else len(STATE_ORDER),)
        summary = point.summary(name)
        if summary is None:
            return None
        value = summary.final if kind == "final" else summary.best
        return None if value is None else (value,)

    def sorted_points(self, data: Sweep) -> list[SweepPoint]:
        """The points in the chosen order; those without a value in that column last."""
        column = self.sort_column(data)
        if column is None:
            return list(data.points)
        keyed = [(self.sort_value(data, p, column), p) for p in data.points]
        present = [(v, p) for v, p in keyed if v is not None]
        present.sort(key=lambda vp: (vp[0], vp[1].job_id), reverse=self.reverse)
        return [p for _, p in present] + [p for v, p in keyed if v is None]

    def sort_column(self, data: Sweep) -> str | None:
        """The sort column in effect."""
        if self.sort is not None and self.sort in dict(self._columns):
            return self.sort
        return f"param:{data.varied[0]}" if data.varied else "state"

    def plotted(self, data: Sweep) -> str | None:
        """The plotted metric."""
        metrics = data.metrics
        if self.metric in metrics:
            return self.metric
        return metrics[0] if metrics else None

    # ---- painting -----------------------------------------------------------------

    def _paint_key(self, data: Sweep | None) -> tuple[object, ...]:
        members = tuple((j.id, j.version) for j in self.cockpit.sweep_members(self.sweep))
        return (id(data), members, self.sort, self.reverse, self.metric, self.size.width)

    def update_state(self) -> None:
        if not self.is_mounted:
            return
        data = self.cockpit.want_sweep(self.sweep)
        paint = self._paint_key(data)
        if paint == self._painted:
            return
        self._painted = paint
        self._paint_title(data)
        if data is None:
            return
        self._paint_table(data)
        self._paint_plot(data)

    def _paint_title(self, data: Sweep | None) -> None:
        members = self.cockpit.sweep_members(self.sweep)  # the header names the sweep
        head = Text()
        snapshot = _shared_snapshot(self.sweep, members)
        if members:
            name = members[0].view.recipe or members[0].spec.name
            if group_snapshot(self.sweep) is not None:
                name = f"runs of snapshot {snapshot}"
            head.append(f"{name} ×{len(members)}", style="bold")
            head.append("  ")
            tally: dict[str, int] = {}
            for job in members:
                tally[job.view.state] = tally.get(job.view.state, 0) + 1
            for i, state in enumerate(sorted(tally, key=_state_rank)):
                head.append(", " if i else "")
                head.append(f"{tally[state]} {state}", style=fmt.state_text(state).style)
        if snapshot and group_snapshot(self.sweep) is None:
            head.append(f"  from snapshot {snapshot}", style="cyan")
        if data is None:
            head.append("  reading its points…", style="yellow")
        elif data.varied:
            head.append("  varies " + ", ".join(data.varied), style="dim")
        self.query_one("#title", Static).update(head)

    def _paint_table(self, data: Sweep) -> None:
        table: DataTable[Text] = self.query_one("#points", DataTable)
        rows = self._rows(data)
        metrics = self.metric_columns(data, rows)
        columns = list(self._fixed)
        for metric in metrics:
            columns += [(f"final:{metric}", metric), (f"best:{metric}", _best_label(metric))]
        self._columns = columns
        sort = self.sort_column(data)
        by_id = dict(zip((p.job_id for p in data.points), rows, strict=True))
        order = self.sorted_points(data)
        selected = self.selected_job_id
        table.clear(columns=True)
        for key, label in columns:
            text = Text(label)
            if key == sort:
                text.append(" ▼" if self.reverse else " ▲", style="bold")
            table.add_column(text, key=key)
        for point in order:
            cells = by_id[point.job_id]
            table.add_row(*(cells[key] for key, _ in columns), key=point.job_id)
        self._keys = [p.job_id for p in order]
        if selected in self._keys:
            table.move_cursor(row=self._keys.index(selected), animate=False)

    def _paint_plot(self, data: Sweep) -> None:
        metric = self.plotted(data)
        curves = [
            Curve(data.label(p), p.curves[metric], point_color(data, p.job_id))
            for p in data.points
            if metric is not None and metric in p.curves
        ]
        plot = self.query_one("#curves", Plot)
        plot.heading = metric or "metric"
        note = "m: next metric" if len(data.metrics) > 1 else ""
        plot.set_data(curves, log_y=wants_log(curves), note=note)
        plot.border_subtitle = ""  # the legend below has the points' colours
        self.query_one("#legend", Static).update(legend(curves))

    # ---- keys -----------------------------------------------------------------------

    def _sortable(self) -> list[str]:
        return [key for key, _ in self._columns if key != "color"]

    def _sort_by(self, column: str) -> None:
        if column == self.sort_column_now():
            self.reverse = not self.reverse
        else:
            self.sort, self.reverse = column, natural_reverse(column)
        self.update_state()

    def sort_column_now(self) -> str | None:
        """The sort column in effect now (None before the points are read)."""
        data = self.data
        return self.sort_column(data) if data is not None else None

    def action_sort(self) -> None:
        """Sort by the next column."""
        columns = self._sortable()
        if not columns:
            return
        now = self.sort_column_now()
        at = columns.index(now) if now in columns else -1
        self.sort = columns[(at + 1) % len(columns)]
        self.reverse = natural_reverse(self.sort)
        self.update_state()
        label = dict(self._columns).get(self.sort, self.sort)
        self.notify(f"sorted by {label}", timeout=1.5)

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self.update_state()

    def action_metric(self) -> None:
        """Plot the next compared metric."""
        data = self.data
        if data is None or not data.metrics:
            return
        metrics = data.metrics
        now = self.plotted(data)
        self.metric = metrics[(metrics.index(now) + 1) % len(metrics)] if now else metrics[0]
        self.update_state()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = event.column_key.value
        if column is not None and column != "color":
            self._sort_by(column)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.cockpit.open_job(event.row_key.value)

    def action_open(self) -> None:
        job_id = self.selected_job_id
        if job_id is not None:
            self.cockpit.open_job(job_id)

    def action_back(self) -> None:
        self.app.pop_screen()


def natural_reverse(column: str) -> bool:
    """A column starts in its natural order, best first: a metric where higher is better
    (an accuracy) descending, everything else ascending (losses, arguments, running first)."""
    kind, _, name = column.partition(":")
    return kind in ("final", "best") and direction(name) == "max"


def _shared_snapshot(group: str, members: list[JobState]) -> str:
    """``1a2b3c4d5e6f (train, epoch 5)``: the snapshot every compared run started from
    (the group's own, for a snapshot's runs); empty when they did not share one."""
    records = [j.spec.snapshot for j in members if j.spec.snapshot]
    wanted = group_snapshot(group)
    ids = {str(r.get("id")) for r in records}
    if wanted is None and (len(ids) != 1 or len(records) != len(members)):
        return ""
    snap_id = wanted or ids.pop()
    record = next((r for r in records if r.get("id") == snap_id), None)
    if record is None:
        return snap_id[:12]
    return f"{snap_id[:12]} ({record.get('stage')}, {origin_point(record)})"


def _state_rank(state: str) -> int:
    return STATE_ORDER.index(state) if state in STATE_ORDER else len(STATE_ORDER)


def _best_label(metric: str) -> str:
    """``min`` for a loss, ``max`` for an accuracy: the best column says which way is best."""
    return direction(metric) or "best"


def _width(key: str, label: str, rows: list[Row]) -> int:
    """The cells a column takes: its widest cell or label, plus padding."""
    widest = max([len(label) + 2, *(r[key].cell_len for r in rows if key in r)])
    return widest + PADDING
