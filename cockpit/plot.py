"""Braille line plots: 2×4 dots per terminal cell, any number of curves, horizontal marks.

:func:`render_plot` is pure (points in, rich ``Text`` lines out); :class:`Plot`
is the widget that draws it at its current size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.widget import Widget

_BASE = 0x2800
_DOT = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # [row % 4][col % 2]
AXIS_WIDTH = 7
"""The narrowest y-axis column (labels widen it: they are never cut)."""
LOG_FROM = 10.0
"""A curve of positive values spanning this many times its minimum gets a log y axis."""


def wants_log(curves: Sequence[Curve]) -> bool:
    """True when every value is positive and they span a decade or more (losses do)."""
    ys = [y for c in curves for _, y in _finite(c.points)]
    return bool(ys) and min(ys) > 0 and max(ys) / min(ys) >= LOG_FROM


def short_number(value: float) -> str:
    """A y label that fits in a few cells and is never cut: ``0.538``, ``4.25``, ``1.2e-4``."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e5:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


@dataclass(frozen=True)
class Curve:
    """One line: points (x, y), a rich style and a legend label."""

    label: str
    points: Sequence[tuple[float, float]]
    style: str


@dataclass(frozen=True)
class Mark:
    """A horizontal line at ``y`` (e.g. a memory ceiling)."""

    label: str
    y: float
    style: str


def _finite(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]


def render_plot(
    curves: Sequence[Curve],
    width: int,
    height: int,
    *,
    marks: Sequence[Mark] = (),
    y_format: Callable[[float], str] = short_number,
    y_zero: bool = False,
    log_y: bool = False,
    empty_text: str = "no data yet",
) -> list[Text]:
    """``height`` lines of at most ``width`` cells: a y axis label column, then the plot.

    ``log_y`` spaces y logarithmically (values must be positive): a loss falling
    from 5 to 0.05 then shows as a slope, not a cliff and a flat line.
    """
    if height < 1 or width < AXIS_WIDTH + 2:
        return [Text("")] * max(0, height)
    clean = [(c, _finite(c.points)) for c in curves]
    if log_y:
        clean = [(c, [(x, y) for x, y in pts if y > 0]) for c, pts in clean]
    xs = [x for _, pts in clean for x, _ in pts]
    ys = [y for _, pts in clean for _, y in pts] + [
        m.y for m in marks if math.isfinite(m.y) and (m.y > 0 or not log_y)
    ]
    if not xs:
        empty = [Text("")] * height
        empty[height // 2] = Text(empty_text.center(width), style="dim")
        return empty
    x0, x1 = min(xs), max(xs)
    y0, y1 = (0.0 if y_zero and not log_y else min(ys)), max(ys)
    if y1 <= y0:
        y0, y1 = (y0 / 2, y1 * 2) if log_y else (y0 - 1, y1 + 1)
    top, bottom = y_format(y1), y_format(y0)
    axis = max(AXIS_WIDTH, len(top) + 1, len(bottom) + 1)
    plot_w = max(1, width - axis)
    scale: Callable[[float], float] = math.log10 if log_y else float
    s0, s1 = scale(y0), scale(y1)
    cols, rows = plot_w * 2, height * 4
    dots = [[0] * plot_w for _ in range(height)]
    owner: list[list[str | None]] = [[None] * plot_w for _ in range(height)]

    def to_col(x: float) -> int:
        return 0 if x1 == x0 else round((x - x0) / (x1 - x0) * (cols - 1))

    def to_row(y: float) -> int:
        return rows - 1 - round((scale(y) - s0) / (s1 - s0) * (rows - 1))

    def put(c: int, r: int, style: str) -> None:
        if 0 <= c < cols and 0 <= r < rows:
            dots[r // 4][c // 2] |= _DOT[r % 4][c % 2]
            owner[r // 4][c // 2] = style

    for mark in marks:
        if log_y and mark.y <= 0:
            continue
        r = to_row(mark.y)
        for c in range(0, cols, 2):
            put(c, r, mark.style)
    for curve, pts in clean:
        prev: tuple[int, int] | None = None
        for x, y in pts:
            c, r = to_col(x), to_row(y)
            if prev is None:
                put(c, r, curve.style)
            else:
                pc, pr = prev
                steps = max(abs(c - pc), abs(r - pr), 1)
                for i in range(1, steps + 1):
                    put(
                        pc + round((c - pc) * i / steps),
                        pr + round((r - pr) * i / steps),
                        curve.style,
                    )
            prev = (c, r)
    lines: list[Text] = []
    for i in range(height):
        if i == 0:
            label = top
        elif i == height - 1:
            label = bottom
        else:
            label = ""
        line = Text(label.rjust(axis - 1) + "│", style="dim")
        for j in range(plot_w):
            bits = dots[i][j]
            line.append(chr(_BASE + bits) if bits else " ", style=owner[i][j] or "")
        lines.append(line)
    return lines


def legend(curves: Sequence[Curve], marks: Sequence[Mark] = ()) -> Text:
    """``━ loss  ━ val_loss  ┄ ceiling`` in the curves' colours."""
    text = Text()
    for curve in curves:
        text.append("━ ", style=curve.style)
        text.append(f"{curve.label}  ")
    for mark in marks:
        text.append("┄ ", style=mark.style)
        text.append(f"{mark.label}  ")
    return text


class Plot(Widget):
    """A braille plot widget; set :attr:`curves` / :attr:`marks` via :meth:`set_data`."""

    DEFAULT_CSS = """
    Plot { height: 8; border: round $panel; padding: 0 0; }
    """

    def __init__(
        self,
        title: str,
        *,
        y_format: Callable[[float], str] = short_number,
        y_zero: bool = False,
        empty_text: str = "no data yet",
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.heading = title
        self.border_title = title
        self.curves: list[Curve] = []
        self.marks: list[Mark] = []
        self.log_y = False
        self.note = ""
        self.y_format = y_format
        self.y_zero = y_zero
        self.empty_text = empty_text

    def set_data(
        self,
        curves: Sequence[Curve],
        marks: Sequence[Mark] = (),
        *,
        log_y: bool = False,
        note: str = "",
    ) -> None:
        """Replace what is drawn; ``note`` joins the title (values not plotted, the x range)."""
        curves, marks = list(curves), list(marks)
        if (curves, marks, log_y, note) == (self.curves, self.marks, self.log_y, self.note):
            return
        self.curves, self.marks, self.log_y, self.note = curves, marks, log_y, note
        scale = " (log)" if log_y else ""
        self.border_title = f"{self.heading}{scale}" + (f" · {note}" if note else "")
        self.border_subtitle = legend(curves, marks).plain.strip()
        self.refresh()

    def render(self) -> Text:
        lines = render_plot(
            self.curves,
            self.content_size.width,
            self.content_size.height,
            marks=self.marks,
            y_format=self.y_format,
            y_zero=self.y_zero,
            log_y=self.log_y,
            empty_text=self.empty_text,
        )
        return Text("\n").join(lines)
