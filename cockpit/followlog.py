"""A `Log` that keeps following its end until the user scrolls away from it.

Textual's `Log` follows only while its scroll position *is* the end when lines
arrive; a layout change that shrinks the pane (a panel appearing, a resize to
80×24) moves the end without moving the position, and the log would stop
following by itself. Here following is a state: the user's scrolling up
leaves it, reaching the end (End, scrolling down) resumes it, and while it
holds, new lines and resizes keep the end in view.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Log


class FollowLog(Log):
    """A log pane with an explicit "following" state (see the module docstring)."""

    def __init__(self, *, max_lines: int | None = None, id: str | None = None) -> None:
        super().__init__(max_lines=max_lines, auto_scroll=False, id=id)
        self.following = True

    def add_lines(self, lines: list[str]) -> None:
        """Append ``lines``; while following, the end stays in view."""
        self.write_lines(lines, scroll_end=False)
        self._keep_end()

    def reset(self, lines: list[str]) -> None:
        """Replace every line, and follow again."""
        self.clear()
        self.following = True
        self.add_lines(lines)

    def _keep_end(self) -> None:
        if self.following:
            self.call_after_refresh(self.scroll_end, animate=False, x_axis=False)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value < old_value and new_value < self.max_scroll_y:
            self.following = False  # the user went up: stay where they are
        elif new_value >= self.max_scroll_y:
            self.following = True

    def on_resize(self, event: events.Resize) -> None:
        self._keep_end()
