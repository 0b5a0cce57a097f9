"""System: CPU, memory, disk under BLUT_HOME (jobs against cache), GPUs, with short histories."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Footer, Header, Static

from blut.cockpit import fmt
from blut.cockpit.plot import Curve, Plot
from blut.cockpit.screens.base import StateScreen
from blut.cockpit.sysinfo import SystemSample
from blut.jobs.quantities import short_size


def system_table(s: SystemSample) -> Table:
    """The numbers of one sample."""
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row("CPU", f"{s.cpu_percent:.0f}% of {s.cpu_count} cores, load {s.load[0]:.2f}")
    table.add_row(
        "memory",
        f"{short_size(s.memory_used)} of {short_size(s.memory_total)} used"
        f" ({s.memory_used / max(1, s.memory_total):.0%}), swap {short_size(s.swap_used)}",
    )
    table.add_row(
        "disk",
        f"{short_size(s.disk_used)} of {short_size(s.disk_total)} used under {s.disk_path}",
    )
    if s.space is not None:
        table.add_row("space", fmt.space(s.space))
    if not s.gpus:
        table.add_row("GPUs", Text(s.gpu_note or "no NVIDIA GPU", style="dim"))
    for g in s.gpus:
        mem = f"{short_size(g.memory_used)}/{short_size(g.memory_total)}"
        util = "-" if g.utilisation is None else f"{g.utilisation:.0f}%"
        temp = "-" if g.temperature is None else f"{g.temperature:.0f}°C"
        table.add_row(f"GPU {g.index}", f"{g.name}: util {util}, mem {mem}, {temp}")
    return table


class SystemScreen(StateScreen):
    """The machine the jobs run on."""

    DEFAULT_CSS = """
    SystemScreen #numbers { height: auto; padding: 1 2; }
    SystemScreen #histories { height: 10; }
    SystemScreen Plot { width: 1fr; height: 10; }
    """
    HELP_TITLE = "System"
    KEY_HELP = (("esc", "back to where you were"),)
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("sampling…", id="numbers")
        with Horizontal(id="histories"):
            yield Plot("CPU %", y_zero=True, id="cpu")
            yield Plot("memory", y_format=short_size, y_zero=True, id="mem")
            yield Plot("GPU util %", y_zero=True, empty_text="no NVIDIA GPU", id="gpu")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "blut"
        self.sub_title = "system"
        self.cockpit.space_wanted.set()
        self.update_state()

    def on_unmount(self) -> None:
        self.cockpit.space_wanted.clear()

    def update_state(self) -> None:
        if not self.is_mounted:
            return
        history = self.cockpit.system_history
        if not history:
            return
        last = history[-1]
        self.query_one("#numbers", Static).update(system_table(last))
        t0 = history[0].ts
        self.query_one("#cpu", Plot).set_data(
            [Curve("cpu", [(s.ts - t0, s.cpu_percent) for s in history], "cyan")]
        )
        self.query_one("#mem", Plot).set_data(
            [Curve("used", [(s.ts - t0, float(s.memory_used)) for s in history], "green")]
        )
        gpus = [
            Curve(
                f"gpu{i}",
                [(s.ts - t0, s.gpus[i].utilisation or 0.0) for s in history if len(s.gpus) > i],
                ("magenta", "yellow", "cyan", "green")[i % 4],
            )
            for i in range(len(last.gpus))
        ]
        self.query_one("#gpu", Plot).set_data(gpus)

    def action_back(self) -> None:
        self.app.pop_screen()
