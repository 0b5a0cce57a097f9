"""Job: its stages, live metric and memory plots, the log tail, and why it failed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from blut.cockpit import fmt
from blut.cockpit.followlog import FollowLog
from blut.cockpit.jobscolumns import short_id
from blut.cockpit.plot import Curve, Mark, Plot, short_number, wants_log
from blut.cockpit.render import describe_end
from blut.cockpit.screens.base import StateScreen
from blut.cockpit.screens.dialogs import TextScreen
from blut.cockpit.screens.jobs import STALE_AFTER
from blut.cockpit.state import CockpitState, JobState
from blut.cockpit.sweeps import point_color
from blut.jobs.quantities import short_size
from blut.jobs.rows import focus_stage
from blut.jobs.snapshotorigin import describe_origin
from blut.status.jobstate import StageView
from blut.status.layout import JobPaths, job_paths

if TYPE_CHECKING:
    from blut.jobs.history import CeilingOffer

LOG_WIDGET_LINES = 2000
EXPLAIN_LOG_LINES = 20
CURVE_STYLES = ("cyan", "magenta", "yellow", "green")
STAGE_COLUMNS = (
    ("stage", "STAGE"),
    ("state", "STATE"),
    ("progress", "PROGRESS"),
    ("time", "TIME"),
    ("peak", "PEAK"),
    ("note", "NOTE"),
)
RECIPE_STAGE_COLUMNS = (("stage", "STAGE"), ("after", "AFTER"), *STAGE_COLUMNS[1:])


@dataclass(frozen=True)
class PlanInfo:
    """The static facts of a recipe job's plan: stage order and dependencies."""

    order: tuple[str, ...]
    deps: dict[str, tuple[str, ...]]
    memory_max: dict[str, int | None]


def load_plan_info(job_dir: Path) -> PlanInfo | None:
    """The plan of a job (worker thread); None when its plan.json is missing or bad."""
    from blut.jobs.errors import JobsError
    from blut.jobs.plan import Plan

    try:
        plan = Plan.load(JobPaths(job_dir).plan)
    except (JobsError, OSError, ValueError, KeyError, TypeError):
        return None
    order = tuple(plan.order())
    return PlanInfo(
        order,
        {n: tuple(plan.deps[n]) for n in order},
        {n: plan.stages[n].memory_max for n in order},
    )


class StageTable(DataTable[str | Text]):
    """The stage table; it remembers that the user moved its cursor (keys or mouse), which
    is what pins the Job screen to a stage."""

    user_moved = False

    def _moved(self) -> None:
        self.user_moved = True

    def action_cursor_up(self) -> None:
        self._moved()
        super().action_cursor_up()

    def action_cursor_down(self) -> None:
        self._moved()
        super().action_cursor_down()

    def action_page_up(self) -> None:
        self._moved()
        super().action_page_up()

    def action_page_down(self) -> None:
        self._moved()
        super().action_page_down()

    def action_scroll_top(self) -> None:
        self._moved()
        super().action_scroll_top()

    def action_scroll_bottom(self) -> None:
        self._moved()
        super().action_scroll_bottom()

    async def _on_click(self, event: events.Click) -> None:
        self._moved()
        await super()._on_click(event)


def reused_from(
    job: JobState, stage: str | None, looked_up: Mapping[str, str] | None = None
) -> str | None:
    """The job whose output ``stage`` of ``job`` reused from the cache: as the job recorded
    it, else as ``looked_up`` in the cache (a job from before that was recorded); None
    when it ran, or nothing tells."""
    found = job.view.stages.get(stage or "")
    if found is None or found.state != "cached":
        return None
    return found.producer or (looked_up or {}).get(found.name)


def is_skipped(stage: StageView) -> bool:
    """A stage the executor never ran because an upstream stage failed."""
    return stage.state == "failed" and (
        stage.reason == "skipped" or stage.detail.startswith("skipped")
    )


def failed_stage(job: JobState) -> StageView | None:
    """The stage whose failure failed the job (not one skipped because of it)."""
    failed = [s for s in job.view.stages.values() if s.state == "failed"]
    real = [s for s in failed if not is_skipped(s)]
    return (real or failed)[0] if failed else None


SPEED = ("eta_s", "tokens_per_s", "steps_per_s")
"""Speed metrics a trainer reports (`blut.payload.llm.progress`): the ETA is shown on its
stage's row, the rate after the step in the metrics plot's title; neither is plotted."""


def plotted_metrics(names: Iterable[str]) -> list[str]:
    """The metrics that share the plot: the losses (train and validation side by side), else
    rewards, else the first metric. Others (lr, memory, counts) have other scales and
    units: they would flatten the losses, so they are shown as numbers instead."""
    ordered = sorted(n for n in names if n not in SPEED)
    for word in ("loss", "reward"):
        found = [n for n in ordered if word in n.lower()]
        if found:
            return found[: len(CURVE_STYLES)]
    return ordered[:1]


def metric_curves(job: JobState) -> tuple[list[Curve], str]:
    """The curves of :func:`plotted_metrics`, and a note with the latest value of the rest
    and the step the newest point is at."""
    metrics = job.metrics
    names = plotted_metrics(metrics)
    curves = [
        Curve(name, metrics[name].values(), CURVE_STYLES[i % len(CURVE_STYLES)])
        for i, name in enumerate(names)
    ]
    others = [
        f"{name} {short_number(series.last[1])}"
        for name, series in sorted(metrics.items())
        if name not in names and name not in SPEED and series.last is not None
    ]
    newest = max((s.last[0] for s in metrics.values() if s.last is not None), default=None)
    step = [f"step {newest:.0f}"] if newest is not None else []
    rate = [r] if (r := rate_note(job)) else []
    return curves, " · ".join([*step, *rate, *others])


def _last(job: JobState, name: str) -> float | None:
    series = job.metrics.get(name)
    return series.last[1] if series is not None and series.last is not None else None


def eta_note(job: JobState) -> str:
    """``eta 1m05s`` from the newest ``eta_s`` metric ('' when there is none)."""
    eta = _last(job, "eta_s")
    return "" if eta is None else f"eta {fmt.duration(eta)}"


def rate_note(job: JobState) -> str:
    """``2.3k tok/s`` (or ``1.5 step/s``) from the newest speed metrics ('' when none)."""
    tokens = _last(job, "tokens_per_s")
    if tokens is not None:
        return f"{tokens / 1000:.1f}k tok/s" if tokens >= 1000 else f"{tokens:.0f} tok/s"
    steps = _last(job, "steps_per_s")
    return "" if steps is None else f"{steps:.3g} step/s"


def stage_cells(
    stage: StageView,
    now: float,
    after: tuple[str, ...] | None = None,
    producer: str | None = None,
    speed: str = "",
) -> tuple[str | Text, ...]:
    """One row of the stages table (``after``: a recipe job's AFTER column; ``producer``:
    the job whose output a cached stage reused, when its event did not record it;
    ``speed``: an `eta_note`, shown while the stage runs)."""
    producer = stage.producer or producer
    end = stage.finished if stage.finished is not None else now
    took = None if stage.started is None else end - stage.started
    frac = None
    if stage.progress is not None and stage.progress[1]:
        frac = max(0.0, min(1.0, stage.progress[0] / stage.progress[1]))
    if stage.state in ("succeeded", "cached"):
        frac = 1.0
    note: str = stage.reason or ("" if stage.contained else "UNCONTAINED")
    if stage.state == "running" and speed:
        note = " · ".join(n for n in (note, speed) if n)
    if stage.exit_code not in (None, 0):
        note += f" (exit {stage.exit_code})"
    style = "red" if stage.reason else "yellow"
    if stage.state == "cached":  # nothing ran: the job whose output it reused, by its short
        # id alone, which fits at 80 columns (STATE says "cached")
        note = short_id(producer) if producer else f"cache hit {(stage.artifact or '')[:10]}"
        style = "green"
    elif is_skipped(stage):
        note, style = stage.detail.removeprefix("skipped: ") or "skipped", "dim"
    cells: tuple[str | Text, ...] = (
        fmt.state_text("skipped" if is_skipped(stage) else stage.state),
        fmt.bar(frac),
        fmt.duration(took),
        short_size(stage.peak_memory),
        Text(note, style=style),
    )
    if after is None:
        return (stage.name, *cells)
    return (stage.name, ",".join(after) or "-", *cells)


def explanation(job: JobState, recipe: bool = False, offer: CeilingOffer | None = None) -> Group:
    """Why a failed job failed: reason, peak vs ceiling, exit code, last log lines, what next.

    ``recipe``: a recipe job (names the failing stage, offers resume and re-run);
    ``offer``: the ceiling the policy suggests after an out-of-memory kill, and why."""
    view = job.view
    stage = failed_stage(job)
    reason = (stage.reason if stage else None) or view.reason or "error"
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row("what", Text(describe_end(view, job.memory_max), style="bold red"))
    table.add_row("reason", reason)
    if stage is not None:
        table.add_row("stage", stage.name)
    # The failing stage's peak against that stage's own ceiling (never another stage's).
    peak = stage.peak_memory if stage is not None and stage.peak_memory else view.peak_memory
    ceiling = stage.memory_max if stage is not None and stage.memory_max else job.memory_max
    mem = f"{short_size(peak)} of {short_size(ceiling)}" if ceiling else short_size(peak)
    if peak and ceiling:
        mem += f" ({peak / ceiling:.0%})"
    table.add_row("peak / ceiling", mem)
    code = view.exit_code if view.exit_code is not None else (stage.exit_code if stage else None)
    table.add_row("exit code", "-" if code is None else str(code))
    if view.signal or (stage and stage.signal):
        table.add_row("signal", f"SIG{view.signal or (stage.signal if stage else '')}")
    detail = view.detail or (stage.detail if stage else "")
    if detail:
        table.add_row("detail", detail)
    if reason == "oom" and recipe and stage is not None:
        hint = f"raise its ceiling (--set {stage.name}.memory_max=…), or lower the batch size"
    elif reason == "oom":
        hint = "raise --memory-max, or lower the batch size"
    elif reason == "timeout":
        hint = "raise --timeout" if not recipe else "it ran past its time limit"
    else:
        hint = "read the log below"
    table.add_row("next", hint)
    if reason == "oom" and offer is not None:
        table.add_row("suggested", Text(f"--set {offer}", style="cyan"))
    if recipe:
        skipped = [s.name for s in view.stages.values() if is_skipped(s)]
        if skipped:
            table.add_row("skipped", ", ".join(skipped))
        table.add_row("resume", Text(f"blut plan resume {job.id}   (or u)", style="cyan"))
        form = "e: the recipe form with this job's args"
        if reason == "oom" and offer is not None:
            form += f" and {offer.setting}"
        table.add_row("re-run", Text(form, style="cyan"))
    else:
        table.add_row("re-run", Text(fmt.rerun_command(job.spec), style="cyan"))
    stage_name = stage.name if stage else (view.current_stage or "main")
    table.add_row("full log", Text(f"blut log {job.id} {stage_name}   (or p)", style="cyan"))
    lines = list(job.log(stage_name).lines)[-EXPLAIN_LOG_LINES:]
    log = Text("\n".join(lines) if lines else "(no log lines)", style="dim" if not lines else "")
    title = Text(f"last {len(lines)} log lines of {stage_name}:", style="bold")
    return Group(table, Text(""), title, log)


def stage_summary(job: JobState, plan: PlanInfo | None) -> Text:
    """``  stages 2/4: 1 cached, 1 done, 1 running`` for a recipe job's title."""
    stages = job.view.stages
    total = len(plan.order) if plan is not None else len(stages)
    counts: dict[str, int] = {}
    for stage in stages.values():
        state = "skipped" if is_skipped(stage) else stage.state
        counts[state] = counts.get(state, 0) + 1
    finished = counts.get("cached", 0) + counts.get("succeeded", 0)
    text = Text(f"  stages {finished}/{total}")
    parts = [
        (f"{counts[k]} {label}", style)
        for k, label, style in (
            ("cached", "cached", "green"),
            ("succeeded", "done", "green"),
            ("running", "running", "yellow"),
            ("failed", "failed", "red"),
            ("skipped", "skipped", "dim"),
        )
        if counts.get(k)
    ]
    for i, (part, style) in enumerate(parts):
        text.append(": " if i == 0 else ", ")
        text.append(part, style=style)
    return text


class JobScreen(StateScreen):
    """One job, live."""

    DEFAULT_CSS = """
    JobScreen #title { height: 1; padding: 0 1; background: $panel; }
    JobScreen #sweep { height: 1; padding: 0 1; display: none; }
    JobScreen.member #sweep { display: block; }
    JobScreen #stages { height: auto; max-height: 6; }
    JobScreen #plots { height: 8; }
    JobScreen Plot { width: 1fr; height: 8; }
    JobScreen #log { height: 1fr; border: round $panel; }
    JobScreen #logstatus { height: 1; padding: 0 1; color: $text-muted; }
    JobScreen #explain { height: 1fr; border: round $error; padding: 0 1; display: none; }
    JobScreen.failed #explain { display: block; }
    JobScreen.failed #log { display: none; }
    JobScreen.failed #logstatus { display: none; }
    """
    HELP_TITLE = "Job"
    KEY_HELP: ClassVar[tuple[tuple[str, str], ...]] = (
        ("↑ ↓ in stages", "pick the stage whose log and memory are shown (stops following)"),
        ("f", "follow the running (or failing) stage again"),
        ("l", "focus the log (scroll up pauses it; End follows again)"),
        ("p", "open the stage's log in $PAGER"),
        ("c", "cancel the job (asks first; hidden with --readonly)"),
        ("C", "recipe jobs: cancel the selected stage; what needs it is skipped (asks first)"),
        ("u / e", "recipe jobs: resume / re-run with edited args (hidden with --readonly)"),
        ("R", "replay: play the job's stream through the Job screen"),
        ("x", "recipe jobs: why the selected stage ran, or which job's output it reused"),
        ("o", "on a reused (cached) stage: open the job that computed its output"),
        ("w", "a sweep's job: compare the sweep's points (a snapshot's: its runs)"),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("c", "cancel", "Cancel"),
        Binding("C", "cancel_stage", "Cancel stage"),
        Binding("p", "pager", "Pager"),
        Binding("l", "focus_log", "Log"),
        Binding("R", "replay", "Replay"),
        Binding("u", "resume", "Resume"),
        Binding("e", "rerun", "Edit+rerun"),
        Binding("f", "follow", "Follow"),
        Binding("x", "explain", "Explain"),
        Binding("o", "open_producer", "Producer"),
        Binding("w", "sweep", "Sweep"),
    ]

    live = True
    """Drawn from the live feed (the feed reads its stage logs); a replay is not."""

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.recipe = False
        """A recipe job (not a `blut run` command): AFTER column, re-run, stage cancel."""
        self.plan: PlanInfo | None = None
        self._stage_keys: list[str] = []
        self._log_stage: str | None = None
        self._log_total = 0
        self._log_resets = 0
        self._paused_new = 0
        self._terminal: bool | None = None
        self._borrowed: frozenset[str] = frozenset()
        """The jobs whose outputs this job's cached stages reused (their logs are read too)."""
        self._producer: str | None = None
        self._looked_up: dict[str, str] = {}
        """Producers of cached stages found in the cache (a job from before its events
        recorded them)."""
        self._looking_up = False
        """The job whose output the shown stage reused (None: it ran, or not recorded)."""
        self._oom_offer: CeilingOffer | None = None
        """The ceiling the policy offers a stage that ran out of memory (found by a worker)."""
        self._oom_asked = False
        self.pinned: str | None = None
        """The stage the user moved the cursor to; None: the screen follows the job's
        running (or failing) stage."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="title")
        yield Static(id="sweep")
        known = self.source.jobs.get(self.job_id)
        if known is not None:
            self.recipe = known.spec.recipe is not None or known.view.recipe is not None
        else:  # opened before the feed delivered it (`blut --open`): a recipe has args.json
            self.recipe = job_paths(self.cockpit.home, self.job_id).args.is_file()
        table = StageTable(id="stages", cursor_type="row")
        for key, label in self.columns:
            table.add_column(label, key=key)
        yield table
        with Horizontal(id="plots"):
            yield Plot("metrics", id="metrics")
            yield Plot("memory", y_format=short_size, y_zero=True, id="memory")
        yield FollowLog(max_lines=LOG_WIDGET_LINES, id="log")
        yield Static(id="logstatus")
        with VerticalScroll(id="explain"):
            yield Static(id="explain-body")
        yield Footer()

    @property
    def source(self) -> CockpitState:
        """The state the screen draws from (the app's live state; replay has its own)."""
        return self.cockpit.state

    def now(self) -> float:
        """The time the screen shows the job at (replay: the replayed moment)."""
        return self.cockpit.clock()

    @property
    def columns(self) -> tuple[tuple[str, str], ...]:
        """The stage table's columns (recipe jobs add AFTER)."""
        return RECIPE_STAGE_COLUMNS if self.recipe else STAGE_COLUMNS

    @property
    def selected_job_id(self) -> str | None:
        return self.job_id

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("rerun", "cancel_stage", "explain") and not self.recipe:
            return False
        if action == "open_producer" and self._producer is None:
            return False
        if action == "sweep" and self.sweep is None:
            return False
        return super().check_action(action, parameters)

    @work(thread=True, group="plan", exit_on_error=False)
    def _load_plan(self) -> None:
        info = load_plan_info(job_paths(self.cockpit.home, self.job_id).dir)
        self.app.call_from_thread(self._plan_loaded, info)

    @work(thread=True, group="producers", exit_on_error=False)
    def _look_up_producers(self) -> None:
        """A job from before its events named the producers of its cached stages: the
        cache entries of their keys tell (the cache is opened only for such a job)."""
        from blut.jobs.api import reused_stages

        try:
            found = reused_stages(self.cockpit.store, self.cockpit.stored_job(self.job_id))
        except Exception:  # JobsError, OSError, sqlite: the table says "cache hit" then
            return
        known = {stage: job for stage, job in found.items() if job is not None}
        self.app.call_from_thread(self._producers_found, known)

    @work(thread=True, group="ceiling", exit_on_error=False)
    def _suggest_ceiling(self, stage: str) -> None:
        """The ceiling the policy offers ``stage``, which ran out of memory (reads history)."""
        from blut.jobs.api import oom_suggestion

        try:
            offer = oom_suggestion(self.cockpit.store, self.cockpit.stored_job(self.job_id), stage)
        except Exception:  # JobsError, OSError: the panel keeps its generic hint
            return
        self.app.call_from_thread(self._ceiling_found, offer)

    def _ceiling_found(self, offer: CeilingOffer | None) -> None:
        self._oom_offer = offer
        self.update_state()

    def _producers_found(self, known: dict[str, str]) -> None:
        self._looked_up = known
        self._stage_keys = []  # repaint every row
        self.update_state()

    def _plan_loaded(self, info: PlanInfo | None) -> None:
        self.plan = info
        self._stage_keys = []  # rebuild in plan order
        self.update_state()

    def selected_stage(self) -> str | None:
        """The stage the screen is about: the one the user chose, else the job's running
        (or failing, or last) stage."""
        if self.pinned is not None:
            return self.pinned
        job = self.source.jobs.get(self.job_id)
        focus = focus_stage(job.view) if job is not None else None
        return focus.name if focus is not None else None

    def cancel_target(self) -> str | None:
        """The stage `C` cancels: the one shown."""
        return self.selected_stage()

    def action_follow(self) -> None:
        """Follow the job's running stage again (after the cursor was moved)."""
        self.pinned = None
        self.update_state()

    @property
    def sweep(self) -> str | None:
        """What `w` compares the job with: its sweep, or the runs of its snapshot."""
        return self.cockpit.compare_group(self.job_id)

    def action_sweep(self) -> None:
        """Compare the job with the other points of its sweep (or runs of its snapshot)."""
        if self.sweep is not None:
            self.cockpit.open_sweep(self.sweep)

    def _update_sweep(self, job: JobState) -> None:
        """The line that links a sweep member to its sweep: its id and this point's args;
        for a job started from a snapshot, the snapshot and what the job changed."""
        sweep, origin = job.view.sweep, job.spec.snapshot
        if self.has_class("member") != (sweep is not None or bool(origin)):
            self.set_class(sweep is not None or bool(origin), "member")
            self.refresh_bindings()
        if sweep is None:
            if origin:
                line = Text(describe_origin(origin), style="cyan")
                line.append("  (w: compare)", style="dim")
                self.query_one("#sweep", Static).update(line)
            return
        points = self.cockpit.want_sweep(sweep)
        line = Text("sweep ", style="dim")
        line.append(sweep, style="bold")
        if points is not None and (point := points.point(job.id)) is not None:
            line.append(f"  point {points.points.index(point) + 1}/{len(points.points)}: ")
            line.append(points.label(point), style=point_color(points, job.id))
        line.append("  (w: compare the sweep)", style="cyan")
        self.query_one("#sweep", Static).update(line)

    def action_cancel_stage(self) -> None:
        """Cancel the selected (or current) stage of a recipe job, after asking."""
        self.cockpit.request_cancel_stage(self.job_id, self.cancel_target())

    def on_mount(self) -> None:
        self.title = "blut"
        self.sub_title = f"{'job' if self.live else 'replay'} {self.job_id}"
        if self.recipe:
            self._load_plan()
        self.update_state()
        if self.live:
            self.cockpit.focus_job(self.job_id, self._borrowed)
            self.set_interval(1.0, self.update_state)

    def on_unmount(self) -> None:
        if self.live:
            self.cockpit.focus_job(None)

    def on_screen_resume(self) -> None:
        if self.live:
            self.cockpit.focus_job(self.job_id, self._borrowed)
        super().on_screen_resume()

    def update_state(self) -> None:
        if not self.is_mounted:
            return
        job = self.source.jobs.get(self.job_id)
        title = self.query_one("#title", Static)
        if job is None:
            title.update(Text(f"job {self.job_id}: not found (yet)", style="yellow"))
            return
        now = self.now()
        view = job.view
        if view.terminal != self._terminal:  # resume is greyed out while the job runs
            self._terminal = view.terminal
            self.refresh_bindings()
        head = Text()
        head.append(f"{job.id} ", style="bold")
        head.append(f"{view.name or job.spec.name}  ")
        head.append_text(fmt.state_text(view.state))
        head.append(f"  {fmt.duration(view.elapsed(now))}")
        age = self.source.data_age(job, now)
        if age is not None and age >= STALE_AFTER:  # the feed is slow or busy
            head.append(f"  data {fmt.duration(age)} old", style="bold yellow")
        head.append(f"  mem {fmt.memory_cell(job.memory_now, job.memory_max).plain}")
        head.append(f"  peak {short_size(view.peak_memory)}")
        if job.gpus:
            head.append(f"  gpu {','.join(map(str, job.gpus))}")
        if view.cancel_requested and not view.terminal:
            head.append("  cancelling…", style="yellow")
        stopping = sorted(
            name
            for name in job.cancel_stages
            if name in view.stages and view.stages[name].state == "running"
        )
        if stopping and not view.terminal:
            head.append(f"  cancelling {','.join(stopping)}…", style="yellow")

        if job.garbage:
            head.append(f"  {job.garbage} bad lines", style="yellow")
        if self.recipe:
            head.append_text(stage_summary(job, self.plan))
        title.update(head)
        self._update_sweep(job)
        self._update_stages(job, now)
        self._borrow(job)
        stage = self.selected_stage()
        producer = reused_from(job, stage, self._looked_up)
        if producer != self._producer:
            self._producer = producer
            self.refresh_bindings()
        # A stage that reused a cached output shows the log and plots of the run that made it.
        source = self.cockpit.state.jobs.get(producer) if producer is not None else None
        origin = f"from job {short_id(producer)}" if producer is not None else ""
        data = source or job
        curves, note = metric_curves(data)
        note = " · ".join(n for n in (origin, note) if n)
        self.query_one("#metrics", Plot).set_data(curves, log_y=wants_log(curves), note=note)
        mem_curves = []
        if stage is not None and stage in data.memory:
            mem_curves.append(Curve(stage, data.memory[stage].values(), "green"))
        shown = data.view.stages.get(stage or "")
        ceiling = shown.memory_max if shown is not None and shown.memory_max else data.memory_max
        marks = [Mark("MemoryMax", float(ceiling), "red")] if ceiling else []
        mem_note = " · ".join(n for n in (stage or "", origin) if n)
        self.query_one("#memory", Plot).set_data(mem_curves, marks, note=mem_note)
        failed = view.state == "failed"
        self.set_class(failed, "failed")
        if failed:
            oom = failed_stage(job)
            if self.recipe and oom is not None and oom.reason == "oom" and not self._oom_asked:
                self._oom_asked = True
                self._suggest_ceiling(oom.name)
            body = explanation(job, self.recipe, self._oom_offer)
            self.query_one("#explain-body", Static).update(body)
        else:
            self._update_log(data, stage, producer)

    def _borrow(self, job: JobState) -> None:
        """Have the feed read the logs and plots of the jobs whose outputs were reused."""
        unrecorded = any(s.state == "cached" and not s.producer for s in job.view.stages.values())
        if unrecorded and not self._looking_up:
            self._looking_up = True
            self._look_up_producers()
        producers = (reused_from(job, name, self._looked_up) for name in job.view.stages)
        borrowed = frozenset(p for p in producers if p is not None and p != job.id)
        if borrowed != self._borrowed:
            self._borrowed = borrowed
            if self.live:  # a replay draws from its own timeline, not from the feed
                self.cockpit.focus_job(self.job_id, borrowed)

    def _stage_row(self, job: JobState, name: str, now: float) -> tuple[str | Text, ...]:
        stage = job.view.stages.get(name) or StageView(name)
        running = [s for s in job.view.stages.values() if s.state == "running"]
        speed = eta_note(job) if running == [stage] else ""  # the metric is the job's
        if not self.recipe:
            return stage_cells(stage, now, speed=speed)
        after = self.plan.deps.get(name, ()) if self.plan is not None else ()
        return stage_cells(stage, now, after, self._looked_up.get(name), speed)

    def _update_stages(self, job: JobState, now: float) -> None:
        table = self.query_one("#stages", DataTable)
        keys = list(job.view.stages)
        if self.plan is not None:
            keys = [*self.plan.order, *(k for k in keys if k not in self.plan.order)]
        if keys != self._stage_keys:
            table.clear()
            for key in keys:
                table.add_row(*self._stage_row(job, key, now), key=key)
            self._stage_keys = keys
        else:
            for key in keys:
                cells = self._stage_row(job, key, now)
                for (col, _), value in zip(self.columns, cells, strict=True):
                    table.update_cell(key, col, value, update_width=True)
        target = self.selected_stage()
        if target in keys and table.cursor_row != keys.index(target):
            table.move_cursor(row=keys.index(target), animate=False)

    def _update_log(self, job: JobState, stage: str | None, producer: str | None) -> None:
        """The log of ``stage`` of ``job``: this screen's job, or (``producer``) the job
        whose output the stage reused."""
        log = self.query_one("#log", FollowLog)
        status = self.query_one("#logstatus", Static)
        if stage is None:
            if self._log_stage is not None:  # a replay went back before the first stage
                log.reset([])
                self._log_stage = None
            status.update("no stage has started yet")
            return
        shown = f"{job.id}/{stage}"
        if producer is not None and job.id != producer:  # the producer is not (yet) known
            if shown != self._log_stage:
                log.reset([])
                self._log_stage = shown
            log.border_title = f"log: {stage} (cached)"
            why = "not read yet" if self.cockpit.state.loading else "not found (deleted since?)"
            status.update(Text(f"reused the output of job {producer}: {why}", "yellow"))
            return
        tail = job.log(stage)
        if shown != self._log_stage or tail.resets != self._log_resets:
            log.reset(list(tail.lines))
            self._log_stage, self._log_resets, self._log_total = shown, tail.resets, tail.total
            self._paused_new = 0
        new = tail.total - self._log_total
        if new > 0:
            log.add_lines(list(tail.lines)[-min(new, len(tail.lines)) :])
            self._log_total = tail.total
            if not log.following:
                self._paused_new += new
        if log.following:
            self._paused_new = 0
        how = "chosen · f follows the job" if self.pinned else "the job's current stage"
        if producer is not None:
            how = f"cached: from job {producer} · o opens it"
        log.border_title = f"log: {stage} ({how})"
        if self._paused_new:
            status.update(
                Text(f"paused, +{self._paused_new} new lines (End follows again)", style="yellow")
            )
        elif producer is not None:
            lines = f"{tail.total} line{'' if tail.total == 1 else 's'}"
            status.update(Text(f"{lines} of job {producer}'s run", style="dim"))
        else:
            status.update(Text(f"{tail.total} lines · following", style="dim"))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        table = event.data_table
        if not isinstance(table, StageTable) or not table.user_moved:
            return  # the screen moved it, following the job
        table.user_moved = False
        if 0 <= event.cursor_row < len(self._stage_keys):
            self.pinned = self._stage_keys[event.cursor_row]
            self.update_state()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_pager(self) -> None:
        """The shown stage's whole log in ``$PAGER``: the producer's, for a reused stage."""
        self.cockpit.open_pager(self._producer or self.job_id, self.selected_stage())

    def action_open_producer(self) -> None:
        """Open the job that computed the output the shown stage reused."""
        if self._producer is not None:
            self.cockpit.open_job(self._producer)

    def action_explain(self) -> None:
        """Why the shown stage ran, or whose output it reused (`blut cache explain`)."""
        stage = self.selected_stage()
        if stage is None:
            self.notify("no stage selected", severity="warning")
            return
        self._explain_worker(stage)

    @work(thread=True, group="explain", exit_on_error=False)
    def _explain_worker(self, stage: str) -> None:
        from blut.jobs.api import explain_stage

        try:
            job = self.cockpit.stored_job(self.job_id)
            create = not self.cockpit.readonly
            lines = explain_stage(self.cockpit.store, job, stage, create=create)
        except Exception as exc:  # JobsError, OSError, sqlite: shown, never a crash
            lines = [f"cannot explain stage {stage}: {exc}"]
        title = f"cache explain {self.job_id} {stage}"
        self.app.call_from_thread(self.app.push_screen, TextScreen(title, lines))

    def action_focus_log(self) -> None:
        target = "#explain" if self.has_class("failed") else "#log"
        self.query_one(target).focus()
