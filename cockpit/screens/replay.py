"""Replay: a job's stream played through the Job screen, with speed and a scrubber."""

from __future__ import annotations

import time
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Static

from blut.cockpit import fmt
from blut.cockpit.screens.job import JobScreen
from blut.cockpit.state import CockpitState
from blut.cockpit.timeline import StreamReader, Timeline
from blut.status.events import Event

SPEEDS: tuple[float | None, ...] = (1.0, 10.0, 100.0, None)
"""Play speeds (times real time); None: max, the whole run in :data:`MAX_SECONDS`."""
DEFAULT_SPEED = 1
"""Index in :data:`SPEEDS` a replay starts at (10×)."""
MAX_SECONDS = 5.0
TICK = 0.1
"""Seconds between two frames while playing."""
TAIL_EVERY = 1.0
"""Seconds between two reads of a running job's stream (its timeline grows)."""
STEP = 0.02
"""←/→ move by this fraction of the run (at least one event)."""
JUMP = 0.1
"""PageUp/PageDown move by this fraction of the run."""
_REFUSED = frozenset({"cancel", "cancel_stage", "resume", "rerun", "replay"})


def speed_label(speed: float | None) -> str:
    """``10×`` or ``max``."""
    return "max" if speed is None else f"{speed:g}×"


class ReplayScreen(JobScreen):
    """The Job screen, drawn from a :class:`Timeline` instead of the live state."""

    DEFAULT_CSS = """
    ReplayScreen #replaybar { height: 1; padding: 0 1; background: $panel; }
    """
    HELP_TITLE = "Replay"
    KEY_HELP: ClassVar[tuple[tuple[str, str], ...]] = (
        ("space", "play / pause (at the end: from the start)"),
        ("+ -", "faster / slower: 1×, 10×, 100×, max (the whole run in 5 s)"),
        ("← →", "back / forward 2 % of the run (at least one event)"),
        ("pgup pgdn", "back / forward 10 % of the run"),
        ("home end", "the start / the end"),
        ("f", "follow the stage the job was on (after picking one with ↑ ↓)"),
        ("l / p", "focus the log / open the stage's whole log in $PAGER"),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "play", "Play/pause"),
        Binding("left", "step(-1)", "Back", priority=True),
        Binding("right", "step(1)", "Fwd", priority=True),
        Binding("pageup", "jump(-1)", "-10%", show=False, priority=True),
        Binding("pagedown", "jump(1)", "+10%", show=False, priority=True),
        Binding("home", "go(0)", "Start", show=False, priority=True),
        Binding("end", "go(-1)", "End", show=False, priority=True),
        Binding("plus,equals_sign", "speed(1)", "Faster"),
        Binding("minus", "speed(-1)", "Slower"),
    ]

    live = False

    def __init__(self, job_id: str, timeline: Timeline | None = None) -> None:
        super().__init__(job_id)
        self.timeline = timeline
        self.playing = False
        self.speed_index = DEFAULT_SPEED
        self.reader: StreamReader | None = None
        self._empty = CockpitState()
        self._played = 0.0

    @property
    def source(self) -> CockpitState:
        return self.timeline.state if self.timeline is not None else self._empty

    def now(self) -> float:
        return self.timeline.time if self.timeline is not None else self.cockpit.clock()

    @property
    def speed(self) -> float | None:
        """Times real time (None: max)."""
        return SPEEDS[self.speed_index]

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if isinstance(widget, Footer):
                yield Static(id="replaybar")
            yield widget

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in _REFUSED:
            return False
        return super().check_action(action, parameters)

    def on_mount(self) -> None:
        if self.timeline is None:
            self.cockpit.load_timeline(self.job_id, self)
        self.set_interval(TICK, self._tick)
        self.set_interval(TAIL_EVERY, self._tail)

    def set_timeline(self, timeline: Timeline, reader: StreamReader | None = None) -> None:
        """Called by the app once the history was read (stands at the start); ``reader``
        goes on reading a running job's stream."""
        self.timeline, self.reader = timeline, reader
        self.update_state()

    def _tail(self) -> None:
        if self.timeline is not None and self.reader is not None and not self.timeline.ended:
            self.cockpit.tail_timeline(self, self.reader)

    def extend_timeline(self, events: list[Event], logs: dict[str, list[str]]) -> None:
        """What the running job appended (from the app's worker)."""
        if self.timeline is not None:
            self.timeline.extend(events, logs)
            self.update_state()

    def update_state(self) -> None:
        if not self.is_mounted:
            return
        if self.timeline is None:
            self.query_one("#title", Static).update(Text("reading the history…", style="dim"))
            return
        super().update_state()
        self.query_one("#replaybar", Static).update(self._bar())

    def _bar(self) -> Text:
        """``▶ 10×  +1m05s/5m00s  10:01:05  ━━━━━━────  42%``."""
        tl = self.timeline
        assert tl is not None
        span = max(0.0, tl.end - tl.start)
        at = tl.time - tl.start
        fraction = at / span if span else (1.0 if tl.position else 0.0)
        text = Text()
        text.append("▶ " if self.playing else "⏸ ", style="green" if self.playing else "yellow")
        text.append(f"{speed_label(self.speed):>4}  ")
        text.append(f"+{fmt.duration(at)}/{fmt.duration(span)}  ")
        text.append(datetime.fromtimestamp(tl.time).strftime("%H:%M:%S") + "  ", style="dim")
        text.append(f"{tl.position}/{len(tl)}  ", style="dim")
        width = max(4, self.size.width - text.cell_len - 8)
        filled = round(width * fraction)
        text.append("━" * filled, style="blue")
        text.append("─" * (width - filled), style="dim")
        text.append(f" {fraction:4.0%}")
        return text

    def _move(self, position: int) -> None:
        if self.timeline is None:
            return
        self.timeline.seek(position)
        self.update_state()

    def action_step(self, direction: int) -> None:
        """Back or forward by :data:`STEP` of the run (at least one event)."""
        self._by(direction, STEP)

    def action_jump(self, direction: int) -> None:
        """Back or forward by :data:`JUMP` of the run."""
        self._by(direction, JUMP)

    def _by(self, direction: int, fraction: float) -> None:
        tl = self.timeline
        if tl is None:
            return
        target = tl.position_at(tl.time + direction * fraction * (tl.end - tl.start))
        least = tl.position + direction  # at least one event
        self._move(max(target, least) if direction > 0 else min(target, least))

    def action_go(self, position: int) -> None:
        """To the start (0) or the end (-1)."""
        if self.timeline is not None:
            self._move(len(self.timeline) if position < 0 else position)

    def action_speed(self, direction: int) -> None:
        """Faster or slower: 1×, 10×, 100×, max."""
        self.speed_index = max(0, min(len(SPEEDS) - 1, self.speed_index + direction))
        self.update_state()

    def action_play(self) -> None:
        """Play from here (from the start when at the end), or pause."""
        tl = self.timeline
        if tl is None:
            return
        if not self.playing and tl.position >= len(tl):
            tl.seek(0)
        self.playing = not self.playing
        self._played = time.monotonic()
        self.update_state()

    def _tick(self) -> None:
        tl = self.timeline
        if not self.playing or tl is None:
            return
        now = time.monotonic()
        elapsed, self._played = now - self._played, now
        speed = self.speed
        rate = speed if speed is not None else max(1.0, (tl.end - tl.start) / MAX_SECONDS)
        tl.go_to_time(tl.time + elapsed * rate)
        if tl.position >= len(tl):
            tl.seek(len(tl))
            self.playing = False
        self.update_state()
