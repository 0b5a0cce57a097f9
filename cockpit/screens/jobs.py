"""Jobs (home): every job, live, with a regex filter and sort keys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual.widgets.data_table import ColumnKey, RowKey

from blut.cockpit import fmt
from blut.cockpit.jobscolumns import (
    SORT_MARK,
    Cells,
    Layout,
    cell_widths,
    fit,
    group_cells,
    layout,
    row_cells,
)
from blut.cockpit.screens.base import StateScreen
from blut.cockpit.state import (
    GROUP_PREFIX,
    NATURAL_REVERSE,
    SORT_KEYS,
    SortKey,
    compile_filter,
    group_rows,
)
from blut.cockpit.sweeps import group_note, member_label
from blut.jobs.rows import JobRow

REFILL_ABOVE = 32
"""Rows leaving at once above which the table is refilled rather than pruned row by row
(`DataTable.remove_row` costs a pass over every row: 875 removals took ~1 s)."""

STALE_AFTER = 5.0
"""Seconds the feed may go without confirming the data before screens say how old it is."""


class JobsTable(DataTable[str | Text]):
    """The Jobs table, with the moves a new sort needs that DataTable lacks."""

    def reorder(self, keys: Sequence[str]) -> None:
        """Show the rows (the same ones) in the order of ``keys``, without rebuilding any
        (what `DataTable.sort` does, with the order given instead of computed)."""
        self._row_locations = TwoWayDict({RowKey(key): i for i, key in enumerate(keys)})
        self._update_count += 1
        self.refresh()

    def relabel(self, labels: Mapping[str, Text]) -> None:
        """Give columns new header labels (their widths: :meth:`resize`)."""
        for key, label in labels.items():
            self.columns[ColumnKey(key)].label = label
        self._require_update_dimensions = True
        self.refresh()

    def resize(self, widths: Mapping[str, int]) -> None:
        """Set columns' widths, narrower too (DataTable only ever widens a column)."""
        for key, width in widths.items():
            self.columns[ColumnKey(key)].content_width = width
        self._require_update_dimensions = True
        self.refresh()


class JobsScreen(StateScreen):
    """The home screen."""

    DEFAULT_CSS = """
    JobsScreen #filter { display: none; height: 3; }
    JobsScreen #filter.shown { display: block; }
    JobsScreen DataTable { height: 1fr; }
    JobsScreen #status { height: 1; background: $panel; color: $text-muted; padding: 0 1; }
    """
    HELP_TITLE = "Jobs"
    KEY_HELP = (
        ("↑ ↓ enter", "move, open the job"),
        ("home end g G", "first / last row"),
        ("/", "filter: a regex over id, name, state, reason, stage (esc: leave, esc again: clear)"),
        ("s / r", "next sort column (each starts in its natural order) / reverse it"),
        ("c", "cancel the job (asks first; hidden with --readonly)"),
        ("p", "open the job's log in $PAGER"),
        ("R", "replay: play the job's stream through the Job screen"),
        ("space", "on a sweep row: expand or collapse its jobs (each shows its args, metric)"),
        ("enter / w", "on a sweep row (w: also on a member): compare the sweep's points"),
        ("w", "on a job started from (or snapshotted into) a snapshot: compare its runs"),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "open", "Open"),
        Binding("slash", "filter", "Filter"),
        Binding("s", "sort", "Sort"),
        Binding("r", "reverse", "Reverse", show=False),
        Binding("c", "cancel", "Cancel"),
        Binding("p", "pager", "Pager"),
        Binding("R", "replay", "Replay"),
        Binding("w", "sweep", "Sweep"),
        Binding("space", "toggle_group", "Expand", show=False),
        Binding("escape", "back", "Back", show=False),
        Binding("home", "first", "Top", show=False, priority=True),
        Binding("end", "last", "Bottom", show=False, priority=True),
        Binding("g", "first", "Top", show=False),
        Binding("G", "last", "Bottom", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter_text = ""
        self.sort: SortKey = "id"
        self.reverse = NATURAL_REVERSE["id"]
        self._keys: list[str] = []
        self._cells: dict[str, Cells] = {}
        self.filter_error: str | None = None
        self._row_cells: dict[str, tuple[JobRow, dict[str, Text]]] = {}
        self._cells_width = 0
        self._layout: Layout | None = None
        self._sorted: tuple[SortKey, bool] | None = None
        """The sort column and direction the header's marker shows."""
        self._fitted: dict[str, tuple[dict[str, Text], Layout, Cells]] = {}
        self._widths: dict[str, tuple[dict[str, Text], dict[str, int]]] = {}
        self._groups: dict[str, tuple[tuple[JobRow, ...], tuple[bool, str], dict[str, Text]]] = {}
        self._painted: tuple[object, ...] | None = None
        self._shown = 0
        self._status: Text | None = None
        self._bound: tuple[str | None, str | None] | None = None
        self.expanded: set[str] = set()
        """Sweeps whose member rows are shown (groups start collapsed)."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter: regex over id, name, state, reason, stage", id="filter")
        yield JobsTable(id="jobs", cursor_type="row", zebra_stripes=True)
        yield Static("loading…", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "blut"
        self.sub_title = "jobs" + (" (readonly)" if self.cockpit.readonly else "")
        self.query_one(DataTable).focus()
        self.update_state()
        self.set_interval(1.0, self.update_state)

    def on_resize(self) -> None:
        self.update_state()

    @property
    def table(self) -> JobsTable:
        """The jobs table."""
        return self.query_one("#jobs", JobsTable)

    @property
    def selected_job_id(self) -> str | None:
        table = self.table
        if not self._keys or table.cursor_row < 0 or table.cursor_row >= len(self._keys):
            return None
        key = self._keys[table.cursor_row]
        return None if key.startswith(GROUP_PREFIX) else key

    @property
    def selected_group(self) -> str | None:
        """The sweep of the group row under the cursor, if it is one."""
        table = self.table
        if 0 <= table.cursor_row < len(self._keys):
            key = self._keys[table.cursor_row]
            if key.startswith(GROUP_PREFIX):
                return key.removeprefix(GROUP_PREFIX)
        return None

    def table_rows(self, rows: list[JobRow], width: int) -> list[tuple[str, dict[str, Text]]]:
        """Table lines: plain jobs, sweep group rows and the members of expanded groups."""
        out: list[tuple[str, dict[str, Text]]] = []
        if width != self._cells_width:
            self._row_cells.clear()  # the ID column's form depends on the width
            self._groups.clear()
            self._cells_width = width
        cache = self._row_cells
        for item in group_rows(rows):
            if isinstance(item, JobRow):
                hit = cache.get(item.id)
                if hit is None or hit[0] is not item:
                    hit = cache[item.id] = (item, row_cells(item, width))
                out.append((item.id, hit[1]))
                continue
            expanded = item.sweep in self.expanded
            points = self.cockpit.sweeps.get(item.sweep) if expanded else None
            note = group_note(points)
            members = tuple(item.members)
            group = self._groups.get(item.key)
            # Its cells are totals: the same member rows in another order give the same.
            if (
                group is None
                or group[1] != (expanded, note)
                or set(map(id, group[0])) != set(map(id, members))
            ):
                cells = group_cells(item, expanded, width, note)
                group = self._groups[item.key] = (members, (expanded, note), cells)
            out.append((item.key, group[2]))
            if expanded:
                out.extend(
                    (r.id, row_cells(r, width, member=member_label(points, r.id, r.name)))
                    for r in item.members
                )
        return out

    def visible_rows(self) -> list[JobRow]:
        """The rows the table shows now."""
        pattern, self.filter_error = compile_filter(self.filter_text)
        app = self.cockpit
        return app.state.rows(app.clock(), pattern=pattern, sort=self.sort, reverse=self.reverse)

    def _paint_key(self) -> tuple[object, ...]:
        """What the table shows depends on: nothing else changes it (an idle cockpit over
        1,000 ended jobs repaints nothing)."""
        state = self.cockpit.state
        live = state.active > 0
        tick = int(self.cockpit.clock()) if live else None  # elapsed times move each second
        expanded = (frozenset(self.expanded), self.cockpit.sweeps.version)  # and their points
        width = self.size.width
        return (state.version, tick, self.filter_text, self.sort, self.reverse, expanded, width)

    def update_state(self) -> None:
        if not self.is_mounted:
            return
        for sweep in self.expanded:  # their members show each point's args and metric
            self.cockpit.want_sweep(sweep)
        paint = self._paint_key()
        if paint == self._painted:
            self._update_status()
            return
        self._painted = paint
        rows = self.visible_rows()
        table = self.table
        lines = self.table_rows(rows, self.size.width)
        shown = layout(self.size.width, self._measure(lines), sorted_by=self.sort)
        keys = [key for key, _ in lines]
        new = self._fit(lines, shown)
        if self._layout is not None and shown.keys == self._layout.keys:
            self._patch(table, keys, new, shown)
        else:
            selected = (
                self._keys[table.cursor_row] if 0 <= table.cursor_row < len(self._keys) else None
            )
            table.clear(columns=True)  # and measure the columns afresh for what they hold now
            for key, label in shown.labels:
                table.add_column(self._label(key, label), key=key)
            for key in keys:
                table.add_row(*new[key], key=key)
            if selected in new:
                table.move_cursor(row=keys.index(selected), animate=False)
            self._layout, self._sorted = shown, (self.sort, self.reverse)
        self._keys, self._cells = keys, new
        self._shown = len(rows)
        self._update_status()
        self._refresh_keys()

    def _measure(self, lines: list[tuple[str, dict[str, Text]]]) -> list[dict[str, int]]:
        """:func:`cell_widths` of each line, measured once per line."""
        cache, self._widths = self._widths, {}
        for key, line in lines:
            hit = cache.get(key)
            self._widths[key] = (
                hit if hit is not None and hit[0] is line else (line, cell_widths(line))
            )
        return [hit[1] for hit in self._widths.values()]

    def _fit(self, lines: list[tuple[str, dict[str, Text]]], shown: Layout) -> dict[str, Cells]:
        """Each line's cells cut to ``shown``; a line fitted before to the same layout is
        not fitted again (a sort or a repaint refits only what changed)."""
        cache, self._fitted = self._fitted, {}
        for key, line in lines:
            hit = cache.get(key)
            if hit is None or hit[0] is not line or hit[1] != shown:
                hit = (line, shown, fit(line, shown))
            self._fitted[key] = hit
        return {key: hit[2] for key, hit in self._fitted.items()}

    def _patch(
        self, table: JobsTable, keys: list[str], new: dict[str, Cells], shown: Layout
    ) -> None:
        """Bring the table to ``keys`` / ``new`` in place: drop, update, add, reorder (the
        cursor stays on its job)."""
        row = table.cursor_row
        selected = self._keys[row] if 0 <= row < len(self._keys) else None
        gone = set(self._keys) - set(new)
        if len(gone) > REFILL_ABOVE:  # a filter typed: removing rows one by one is quadratic
            table.clear()
            for key in keys:
                table.add_row(*new[key], key=key)
        else:
            for key in gone:
                table.remove_row(key)
            for key in self._keys:
                old, now = self._cells[key], new.get(key)
                if now is not None and old != now:
                    for col, a, b in zip(shown.keys, old, now, strict=True):
                        if a != b:
                            table.update_cell(key, col, b, update_width=True)
            for key in keys:
                if key not in self._cells:
                    table.add_row(*new[key], key=key)
            kept = [key for key in self._keys if key in new]
            if keys != kept + [key for key in keys if key not in self._cells]:
                table.reorder(keys)
        if selected in new and keys.index(selected) != table.cursor_row:
            table.move_cursor(row=keys.index(selected), animate=False)
        if (self.sort, self.reverse) != self._sorted:
            table.relabel({key: self._label(key, label) for key, label in shown.labels})
            self._sorted = (self.sort, self.reverse)
        if shown != self._layout:  # a column (NAME, a marked one) narrower or wider now
            table.resize(dict(zip(shown.keys, shown.widths, strict=True)))
            self._layout = shown

    def _label(self, key: str, label: str) -> Text:
        """A column's header, with ▼ or ▲ on the column the table is sorted by (sort keys
        are column keys; a sort column hidden at this width is named in the status line)."""
        if self.sort != key:
            return Text(label)
        return Text(
            label + (SORT_MARK if self.reverse else SORT_MARK.replace("▼", "▲")), style="bold"
        )

    def _refresh_keys(self) -> None:
        """Offer only what applies to the job under the cursor (no Cancel for one that ended)."""
        job = self.cockpit.state.jobs.get(self.selected_job_id or "")
        bound = (self.selected_job_id or self.selected_group, job.view.state if job else None)
        if bound != self._bound:
            self._bound = bound
            self.refresh_bindings()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._refresh_keys()

    def action_first(self) -> None:
        """Move to the first row (in the filter box: to the start of its text)."""
        box = self.query_one("#filter", Input)
        if box.has_focus:
            box.action_home()
        elif self._keys:
            self.table.move_cursor(row=0, animate=False)

    def action_last(self) -> None:
        """Move to the last row (in the filter box: to the end of its text)."""
        box = self.query_one("#filter", Input)
        if box.has_focus:
            box.action_end()
        elif self._keys:
            self.table.move_cursor(row=len(self._keys) - 1, animate=False)

    def _update_status(self) -> None:
        line = self.status_line(self._shown)
        if line != self._status:
            self._status = line
            self.query_one("#status", Static).update(line)

    def status_line(self, shown: int) -> Text:
        """Counts, sort, filter, loading progress and the age of the data."""
        app = self.cockpit
        state = app.state
        running = sum(1 for j in state.jobs.values() if j.view.state == "running")
        text = Text(f"{len(state.jobs)} jobs, {running} running")
        if shown != len(state.jobs):
            text.append(f", {shown} shown")
        arrow = "▼" if self.reverse else "▲"
        text.append(f" · sort {self.sort} {arrow}")
        if self.filter_text:
            text.append(f" · filter /{self.filter_text}/")
        if self.filter_error:
            text.append(f" ({self.filter_error})", style="yellow")
        if state.loading:
            text.append(f" · reading history of {state.loading} jobs…", style="yellow")
        if state.updated is None:
            text.append(" · waiting for data", style="yellow")
        else:
            age = app.clock() - max(state.updated, state.checked or state.updated)
            if age > STALE_AFTER and any(not j.view.terminal for j in state.jobs.values()):
                text.append(f" · data {fmt.duration(age)} old", style="yellow")
        if app.readonly:
            text.append(" · readonly", style="bold")
        return text

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if key is None:
            return
        if key.startswith(GROUP_PREFIX):
            self.cockpit.open_sweep(key.removeprefix(GROUP_PREFIX))
        else:
            self.cockpit.open_job(key)

    def action_open(self) -> None:
        job_id = self.selected_job_id
        if job_id is not None:
            self.cockpit.open_job(job_id)
        elif self.selected_group is not None:
            self.cockpit.open_sweep(self.selected_group)

    @property
    def selected_sweep(self) -> str | None:
        """The sweep of the row under the cursor: its group row or one of its members (for
        a job of a snapshot, the group of that snapshot's runs)."""
        return self.selected_group or self.cockpit.compare_group(self.selected_job_id or "")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "sweep" and self.selected_sweep is None:
            return False
        return super().check_action(action, parameters)

    def action_sweep(self) -> None:
        """Compare the points of the sweep under the cursor."""
        sweep = self.selected_sweep
        if sweep is not None:
            self.cockpit.open_sweep(sweep)

    def action_toggle_group(self) -> None:
        """Expand or collapse the sweep group under the cursor."""
        sweep = self.selected_group
        if sweep is None:
            return
        if sweep in self.expanded:
            self.expanded.discard(sweep)
        else:
            self.expanded.add(sweep)
        self.update_state()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("shown")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self.update_state()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.table.focus()

    def action_back(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_focus:
            if not box.value:
                box.remove_class("shown")
            self.table.focus()
        elif self.filter_text:
            box.value = ""
            box.remove_class("shown")
            self.filter_text = ""
            self.update_state()

    def action_sort(self) -> None:
        self.sort = SORT_KEYS[(SORT_KEYS.index(self.sort) + 1) % len(SORT_KEYS)]
        self.reverse = NATURAL_REVERSE[self.sort]
        self.update_state()
        self.notify(f"sorted by {self.sort}", timeout=1.5)

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self.update_state()
