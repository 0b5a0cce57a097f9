"""System: CPU, memory, disk under BLUT_HOME (jobs against cache), GPUs, with short
histories, and every running stage's CPU, memory against its ceiling, and GPUs (like htop's
process list); with the node it runs on while a stage runs on a cluster."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Header, Static

from blut.cockpit import fmt
from blut.cockpit.plot import Curve, Mark, Plot
from blut.cockpit.screens.base import StateScreen
from blut.cockpit.state import JobState
from blut.cockpit.sysinfo import ClusterSample, SystemSample
from blut.containment.nvml import GpuSample
from blut.jobs.quantities import short_size
from blut.status.jobstate import StageView

HOT = 0.9
"""A stage at or above this fraction of its ceiling is shown red."""
MEM_BAR_CELLS = 5
STAGE_COLUMNS = (
    ("job", "JOB"),
    ("stage", "STAGE"),
    ("cpu", "CPU"),
    ("mem", "MEM/MAX"),
    ("gpu", "GPU"),
    ("unit", "UNIT"),
)
NODE_COLUMN = ("node", "NODE")
"""After STAGE, while a running stage runs on a cluster node."""


def stage_columns(nodes: bool) -> tuple[tuple[str, str], ...]:
    """The running stages table's columns (``nodes``: with the node column)."""
    return (*STAGE_COLUMNS[:2], NODE_COLUMN, *STAGE_COLUMNS[2:]) if nodes else STAGE_COLUMNS


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
    if s.cluster is not None:
        add_cluster_rows(table, s.cluster)
    return table


def add_cluster_rows(table: Table, cluster: ClusterSample) -> None:
    """The Ray cluster: its address, then one row per node (CPUs, GPUs, memory, alive)."""
    alive = sum(n.alive for n in cluster.nodes)
    what = cluster.note or f"{alive} of {len(cluster.nodes)} nodes alive"
    table.add_row(
        "cluster", Text(f"{cluster.address}: {what}", style="red" if cluster.note else "")
    )
    for node in cluster.nodes:
        custom = "".join(f", {k}={v:g}" for k, v in sorted(node.custom.items()))
        state = "alive" if node.alive else "DEAD"
        line = (
            f"{node.ip}{' (head)' if node.head else ''}: {node.cpus:g} CPUs, {node.gpus:g} GPUs, "
            f"{short_size(node.memory)}, {state}{custom}"
        )
        table.add_row(f"node {node.node_id[:8]}", Text(line, style="" if node.alive else "red"))


def memory_bar(now: int | None, ceiling: int | None) -> Text:
    """``██░░░  45% 230M/512M``: red at or above :data:`HOT` of the ceiling."""
    if now is None:
        return Text("-" if ceiling is None else f"-/{short_size(ceiling)}", style="dim")
    if not ceiling:
        return Text(f"{short_size(now)} (no ceiling)")
    fraction = now / ceiling
    style = "bold red" if fraction >= HOT else "green"
    filled = min(MEM_BAR_CELLS, round(fraction * MEM_BAR_CELLS))
    text = Text("█" * filled, style=style)
    text.append("░" * (MEM_BAR_CELLS - filled), style="dim")
    text.append(f" {fraction:4.0%} {short_size(now)}/{short_size(ceiling)}", style=style)
    return text


def gpu_cell(stage: StageView, gpus: list[GpuSample]) -> str:
    """``0: 87% 10G/80G`` for each GPU the stage holds; ``-`` when none (or no GPU here)."""
    by_index = {g.index: g for g in gpus}
    parts = []
    for index in stage.gpus or []:
        g = by_index.get(index)
        if g is None:
            continue
        util = "-" if g.utilisation is None else f"{g.utilisation:.0f}%"
        parts.append(f"{index}: {util} {short_size(g.memory_used)}/{short_size(g.memory_total)}")
    return ", ".join(parts) or "-"


def stage_ceiling(job: JobState, stage: StageView) -> int | None:
    """The stage's own ceiling, else its job's (a command's)."""
    if stage.memory_max is not None:
        return stage.memory_max
    return job.spec.memory_max if job.spec.memory_max is not None else job.view.memory_max


def stage_row(
    job: JobState, stage: StageView, sample: SystemSample | None, *, nodes: bool = False
) -> tuple[Text, ...]:
    """One row of the running stages table (``nodes``: with the node it runs on)."""
    cpu = sample.unit_cpu.get(stage.unit or "") if sample is not None else None
    node = (Text(stage.node or "-"),) if nodes else ()
    return (
        Text(job.id),
        Text(stage.name),
        *node,
        Text("-" if cpu is None else f"{cpu:.0f}%", justify="right"),
        memory_bar(stage.memory_now, stage_ceiling(job, stage)),
        Text(gpu_cell(stage, sample.gpus if sample is not None else [])),
        Text(stage.unit or "-", style="dim"),
    )


class SystemScreen(StateScreen):
    """The machine the jobs run on, and what each running stage uses of it."""

    DEFAULT_CSS = """
    SystemScreen #numbers { height: auto; padding: 0 1; }
    SystemScreen #histories { height: 8; }
    SystemScreen Plot { width: 1fr; height: 8; }
    SystemScreen #stages { height: 1fr; border: round $panel; }
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
        table: DataTable[Text] = DataTable(id="stages", cursor_type="row")
        for key, label in STAGE_COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.title = "blut"
        self.sub_title = "system"
        self.cockpit.space_wanted.set()
        self.update_state()

    def on_screen_resume(self) -> None:
        self.cockpit.space_wanted.set()
        super().on_screen_resume()

    def on_screen_suspend(self) -> None:
        self.cockpit.measured_units = frozenset()
        self.cockpit.space_wanted.clear()

    def on_unmount(self) -> None:
        self.cockpit.measured_units = frozenset()
        self.cockpit.space_wanted.clear()

    def update_state(self) -> None:
        if not self.is_mounted:
            return
        history = self.cockpit.system_history
        self._update_stages(history[-1] if history else None)
        if not history:
            return
        last = history[-1]
        self.query_one("#numbers", Static).update(system_table(last))
        t0 = history[0].ts
        self.query_one("#cpu", Plot).set_data(
            [Curve("cpu", [(s.ts - t0, s.cpu_percent) for s in history], "cyan")]
        )
        self.query_one("#mem", Plot).set_data(  # on the scale of the whole memory
            [Curve("used", [(s.ts - t0, float(s.memory_used)) for s in history], "green")],
            [Mark("total", float(last.memory_total), "dim")],
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

    def _update_stages(self, sample: SystemSample | None) -> None:
        """The running stages table; the system worker measures the CPU of their units."""
        running = self.cockpit.state.running_stages()
        clusters = [job.spec.ray_address for job, _ in running if job.spec.ray_address]
        self.cockpit.cluster_address = next(iter(clusters), self.cockpit.configured_cluster)
        self.cockpit.measured_units = frozenset(
            s.unit for job, s in running if s.unit and job.spec.launcher == "systemd"
        )
        table = self.query_one("#stages", DataTable)
        nodes = any(stage.node for _, stage in running)
        columns = stage_columns(nodes)
        keys = [f"{job.id}/{stage.name}" for job, stage in running]
        rows = [stage_row(job, stage, sample, nodes=nodes) for job, stage in running]
        if [str(k.value) for k in table.columns] != [key for key, _ in columns]:
            table.clear(columns=True)
            for key, label in columns:
                table.add_column(label, key=key)
        if keys != [str(k.value) for k in table.rows]:
            table.clear()
            for key, row in zip(keys, rows, strict=True):
                table.add_row(*row, key=key)
        else:
            for key, row in zip(keys, rows, strict=True):
                for (col, _), value in zip(columns, row, strict=True):
                    table.update_cell(key, col, value, update_width=True)
        table.border_title = f"running stages: {len(running)}"

    def action_back(self) -> None:
        self.app.pop_screen()
