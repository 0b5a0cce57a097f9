"""Replay: open a job's whole event history and scrub through it."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header, Static

from blut.cockpit import fmt
from blut.cockpit.screens.base import StateScreen
from blut.jobs.quantities import short_size
from blut.status.events import Event
from blut.status.jobstate import JobView

CHECKPOINT_EVERY = 1000
"""A copy of the fold is kept every this many events, so any position folds quickly."""
PLAY_STEPS = 200
"""Playing crosses the whole history in this many ticks (10 per second)."""
CONTEXT = 8
"""Events listed around the position."""


class Timeline:
    """A job's events and the fold at any position (0 = before the first event)."""

    def __init__(self, job_id: str, events: Sequence[Event]) -> None:
        self.job_id = job_id
        self.events = list(events)
        self._checkpoints: list[JobView] = []
        view = JobView(job_id)
        for i, event in enumerate(self.events):
            if i % CHECKPOINT_EVERY == 0:
                self._checkpoints.append(copy.deepcopy(view))
            view.apply(event)
        self.final = view

    def __len__(self) -> int:
        return len(self.events)

    def view_at(self, position: int) -> JobView:
        """The job as it was after ``position`` events."""
        position = max(0, min(position, len(self.events)))
        if position == len(self.events):
            return self.final
        base = position // CHECKPOINT_EVERY
        view = copy.deepcopy(self._checkpoints[base]) if self._checkpoints else JobView(self.job_id)
        for event in self.events[base * CHECKPOINT_EVERY : position]:
            view.apply(event)
        return view


def describe(event: Event) -> str:
    """One line for an event: its kind, stage and own fields."""
    data = event.to_dict()
    fields = " ".join(
        f"{k}={v}" for k, v in data.items() if k not in ("v", "ts", "job", "stage", "event")
    )
    stage = f"[{event.stage}] " if event.stage else ""
    return f"{stage}{event.event} {fields}"[:200]


class ReplayScreen(StateScreen):
    """Scrub through a job's history: the job state as it was at each event."""

    DEFAULT_CSS = """
    ReplayScreen #where { height: 3; padding: 0 1; }
    ReplayScreen #snapshot { height: auto; padding: 0 1; }
    ReplayScreen #around { height: 1fr; padding: 0 1; border: round $panel; }
    """
    HELP_TITLE = "Replay"
    KEY_HELP = (
        ("← → / pgup pgdn", "one event / a tenth of the history"),
        ("home end space", "start / end / play-pause"),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("left", "step(-1)", "-1"),
        Binding("right", "step(1)", "+1"),
        Binding("pageup", "jump(-1)", "-10%"),
        Binding("pagedown", "jump(1)", "+10%"),
        Binding("home", "go(0)", "Start", show=False),
        Binding("end", "go(-1)", "End", show=False),
        Binding("space", "play", "Play/pause"),
    ]

    def __init__(self, job_id: str, timeline: Timeline | None = None) -> None:
        super().__init__()
        self.job_id = job_id
        self.timeline = timeline
        self.position = len(timeline) if timeline else 0
        self.playing = False

    @property
    def selected_job_id(self) -> str | None:
        return self.job_id

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading the history…", id="where")
        yield Static(id="snapshot")
        yield Static(id="around")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "blut"
        self.sub_title = f"replay {self.job_id}"
        if self.timeline is None:
            self.cockpit.load_timeline(self.job_id, self)
        self.set_interval(0.1, self._tick)
        self.render_position()

    def set_timeline(self, timeline: Timeline) -> None:
        """Called by the app once the history was read (starts at the beginning)."""
        self.timeline = timeline
        self.position = 0
        self.render_position()

    def render_position(self) -> None:
        """Show the job as it was at :attr:`position`."""
        tl = self.timeline
        if tl is None or not self.is_mounted:
            return
        n = len(tl)
        view = tl.view_at(self.position)
        where = Text()
        t0 = tl.events[0].ts if n else 0.0
        if self.position:
            ev = tl.events[self.position - 1]
            stamp = datetime.fromtimestamp(ev.ts).strftime("%Y-%m-%d %H:%M:%S")
            where.append(f"event {self.position}/{n}  {stamp}  +{fmt.duration(ev.ts - t0)}")
        else:
            where.append(f"event 0/{n}  (before the first event)")
        if self.playing:
            where.append("  ▶ playing", style="green")
        width = max(10, self.size.width - 4)
        filled = round(width * self.position / max(1, n))
        where.append("\n" + "━" * filled, style="blue")
        where.append("─" * (width - filled), style="dim")
        self.query_one("#where", Static).update(where)
        self.query_one("#snapshot", Static).update(self._snapshot(view))
        lo = max(0, self.position - CONTEXT)
        around = Text()
        for i in range(lo, min(n, self.position + CONTEXT // 2)):
            mark = "▶ " if i == self.position - 1 else "  "
            line = f"{mark}{i + 1:>7} +{fmt.duration(tl.events[i].ts - t0):>7} {describe(tl.events[i])}"
            around.append(line + "\n", style="bold" if mark.strip() else "dim")
        self.query_one("#around", Static).update(around)

    def _snapshot(self, view: JobView) -> Table:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("STAGE", "STATE", "PROGRESS", "MEM", "PEAK", "NOTE"):
            table.add_column(col, no_wrap=True)
        table.add_row(
            "(job)",
            fmt.state_text(view.state),
            "",
            "",
            short_size(view.peak_memory),
            view.reason or "",
        )
        for s in view.stages.values():
            frac = None
            if s.progress is not None and s.progress[1]:
                frac = s.progress[0] / s.progress[1]
            table.add_row(
                s.name,
                fmt.state_text(s.state),
                fmt.bar(frac),
                short_size(s.memory_now),
                short_size(s.peak_memory),
                s.reason or "",
            )
        return table

    def _go(self, position: int) -> None:
        n = len(self.timeline) if self.timeline else 0
        self.position = max(0, min(n, position))
        self.render_position()

    def action_step(self, delta: int) -> None:
        self._go(self.position + delta)

    def action_jump(self, direction: int) -> None:
        n = len(self.timeline) if self.timeline else 0
        self._go(self.position + direction * max(1, n // 10))

    def action_go(self, position: int) -> None:
        n = len(self.timeline) if self.timeline else 0
        self._go(n if position < 0 else position)

    def action_play(self) -> None:
        n = len(self.timeline) if self.timeline else 0
        if not self.playing and self.position >= n:
            self.position = 0
        self.playing = not self.playing
        self.render_position()

    def _tick(self) -> None:
        if not self.playing or self.timeline is None:
            return
        n = len(self.timeline)
        self.position = min(n, self.position + max(1, n // PLAY_STEPS))
        if self.position >= n:
            self.playing = False
        self.render_position()

    def action_back(self) -> None:
        self.app.pop_screen()
