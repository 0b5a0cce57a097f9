"""Modal dialogs: confirm a destructive action, and the `?` help."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no; `y` confirms, `n` or Esc declines."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 60; height: auto; border: thick $error; background: $surface; padding: 1 2;
    }
    ConfirmScreen Horizontal { height: auto; align: center middle; margin-top: 1; }
    ConfirmScreen Button { margin: 0 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Back"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question, id="question")
            with Horizontal():
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class TextScreen(ModalScreen[None]):
    """Lines of plain text under a title (`x` on the Job screen: why a stage ran, or whose
    output it reused); Esc, `x` or `q` closes it."""

    DEFAULT_CSS = """
    TextScreen { align: center middle; }
    TextScreen > VerticalScroll {
        width: 90%; max-width: 100; max-height: 90%; height: auto; border: thick $accent;
        background: $surface; padding: 0 1;
    }
    TextScreen #text-title { text-style: bold; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back"),
        Binding("x", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
    ]

    def __init__(self, title: str, lines: list[str]) -> None:
        super().__init__()
        self.heading = title
        self.lines = lines

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label(self.heading, id="text-title", markup=False)
            yield Static(Text("\n".join(self.lines)), id="text-body")

    def action_close(self) -> None:
        self.dismiss(None)


HELP = [
    ("Everywhere", ""),
    ("?", "this help"),
    ("ctrl+p", "command palette (every action)"),
    ("1 2 3 4", "Jobs / System / Recipes / Cache screen"),
    ("esc", "back"),
    ("q", "quit (jobs keep running)"),
    ("Jobs", ""),
    ("↑ ↓ enter", "move, open the job"),
    ("/", "filter: a regex over id, name, state, stage (esc: leave, esc again: clear)"),
    ("s / r", "next sort column / reverse order"),
    ("c", "cancel the job (asks first; hidden with --readonly)"),
    ("p", "open the log in $PAGER"),
    ("R", "replay: scrub through the job's event history"),
    ("enter / space", "on a sweep row: expand or collapse its jobs"),
    ("Job", ""),
    ("↑ ↓ in stages", "pick the stage whose log and memory are shown"),
    ("l", "focus the log (scroll up pauses it; End follows again)"),
    ("u / e", "recipe jobs: resume / re-run with edited args (hidden with --readonly)"),
    ("C", "recipe jobs: cancel the selected stage; what needs it is skipped (asks first)"),
    ("x", "recipe jobs: why the selected stage ran, or which job's output it reused"),
    ("o", "on a cached stage: open the job that computed the output it reused"),
    ("Recipes", ""),
    ("enter", "open the recipe's form; a,b,c in a number field sweeps it"),
    ("ctrl+l", "launch (hidden with --readonly)"),
    ("Cache", ""),
    ("p", "prune: preview what goes, then confirm (hidden with --readonly)"),
    ("Replay", ""),
    ("← → / pgup pgdn", "one event / a tenth of the history"),
    ("home end space", "start / end / play-pause"),
]


class HelpScreen(ModalScreen[None]):
    """Every key, grouped by screen."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 76; max-height: 90%; height: auto; border: thick $accent;
        background: $surface; padding: 0 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back"),
        Binding("question_mark", "close", "Close"),
        Binding("q", "close", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in HELP:
            if not what:
                table.add_row(f"[bold underline]{key}[/]", "")
            else:
                table.add_row(key, what)
        with VerticalScroll():
            yield Static(table)

    def action_close(self) -> None:
        self.dismiss(None)
