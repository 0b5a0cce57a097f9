"""The Textual cockpit: `blut` / `blut tui` (and `blut --once`, which prints and exits).

The app owns a :class:`~blut.cockpit.state.CockpitState`. A worker thread owns
all file and systemd I/O: it reads what was appended to every job's
status.jsonl (by byte offset, woken by watchfiles or polling) and posts
:class:`FeedUpdate` messages at most 10 times a second; the app folds them into
the state and the visible screen re-renders from it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.timer import Timer

from blut.cockpit.feed import JobDelta, JobFeed
from blut.cockpit.screens.base import StateScreen
from blut.cockpit.screens.dialogs import ConfirmScreen, HelpScreen
from blut.cockpit.screens.job import JobScreen
from blut.cockpit.screens.jobs import JobsScreen
from blut.cockpit.state import CockpitState, JobState
from blut.cockpit.sweeps import Mark, SweepCache, branches_group, group_snapshot
from blut.jobs.store import JobStore, blut_home
from blut.status.layout import job_paths

if TYPE_CHECKING:
    from blut.cockpit.screens.replay import ReplayScreen
    from blut.cockpit.sysinfo import SystemSample
    from blut.cockpit.timeline import StreamReader
    from blut.jobs.api import Launchers
    from blut.jobs.history import CeilingOffer
    from blut.jobs.recipes import RecipeDef
    from blut.jobs.store import Job
    from blut.jobs.sweeps import Sweep

POST_EVERY = 0.1
"""Least seconds between two feed updates (≤ 10 Hz: no repaint storms on slow links)."""
LOADING_PAINT_EVERY = 0.5
"""While history is being read, screens repaint at most this often (reading goes first)."""
RECONCILE_EVERY = 10.0
"""A running job whose stream was quiet this long is reconciled with its units."""
WAKE_EVERY = 0.25
"""Seconds the feed sleeps at most when nothing changes (a newly opened job's history and
log start loading within this; an idle wake costs a few stat calls)."""
CHECKED_EVERY = 0.5
"""Least seconds between two "nothing new" reports of the feed (they date the data)."""
SYSTEM_EVERY = 1.0
CLUSTER_EVERY = 5.0
"""Seconds between two asks of the Ray cluster for its nodes (while System shows)."""
SYSTEM_HISTORY = 300
SPACE_EVERY = 30.0
"""Seconds between two walks of BLUT_HOME for the space its jobs and cache take."""


class FeedUpdate(Message):
    """New data read by the feed worker."""

    def __init__(
        self, deltas: list[JobDelta], known: int, behind: frozenset[str] = frozenset()
    ) -> None:
        super().__init__()
        self.deltas = deltas
        self.known = known
        self.behind = behind
        """Jobs with data on disk that is not read yet (their shown data ages)."""


class FeedChecked(Message):
    """The feed looked and found nothing new (except for the jobs ``behind``)."""

    def __init__(self, behind: frozenset[str]) -> None:
        super().__init__()
        self.behind = behind


class SystemUpdate(Message):
    """A new sample of the machine."""

    def __init__(self, sample: SystemSample) -> None:
        super().__init__()
        self.sample = sample


def _configured_cluster() -> str | None:
    """The Ray cluster address of the config files (None: none, or a config blut refuses)."""
    from blut.jobs.cluster import configured_address
    from blut.jobs.errors import JobsError

    try:
        return configured_address()
    except JobsError:
        return None


class CockpitApp(App[int]):
    """blut's cockpit."""

    TITLE = "blut"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("1", "jobs", "Jobs", show=False),
        Binding("2", "system", "System"),
        Binding("3", "recipes", "Recipes"),
        Binding("4", "cache", "Cache"),
    ]

    def __init__(
        self,
        home: Path | None = None,
        *,
        readonly: bool = False,
        reconcile: bool = True,
        clock: Callable[[], float] = time.time,
        system: bool = True,
        replay: str | None = None,
        open_job: str | None = None,
    ) -> None:
        """``home``: BLUT_HOME (default from the environment). ``reconcile``: record
        the outcome of jobs whose driver vanished (never when ``readonly``).
        ``clock``: wall time (tests pin it). ``system``: sample CPU/GPUs.
        ``replay``: open this job's replay instead of the Jobs screen.
        ``open_job``: open this job's Job screen on top of the Jobs screen."""
        super().__init__()
        self.home = home if home is not None else blut_home()
        self.store = JobStore(self.home)
        self.readonly = readonly
        self.reconcile = reconcile and not readonly
        self.clock = clock
        self.state = CockpitState()
        self.feed = JobFeed(self.store)
        self.sweeps = SweepCache()
        """The sweeps the screens asked about, loaded by a worker (:meth:`want_sweep`)."""
        self.sample_system = system
        self.system_history: deque[SystemSample] = deque(maxlen=SYSTEM_HISTORY)
        self.measured_units: frozenset[str] = frozenset()
        """systemd units whose CPU use the system worker samples (set by the System
        screen while it shows them: nothing is measured otherwise)."""
        self.configured_cluster = _configured_cluster()
        """The Ray cluster the config files choose, if any (`blut.jobs.cluster`)."""
        self.cluster_address: str | None = None
        """The Ray cluster whose nodes the system worker asks for (set by the System screen:
        a running job's, else the configured one; None: no cluster, nothing asked)."""
        self.replay_job = replay
        self.first_job = open_job
        self.after_update: Callable[[CockpitApp, Sequence[JobDelta]], None] | None = None
        """Test/bench hook, called once an update has been painted."""
        self._stop = threading.Event()
        self.space_wanted = threading.Event()
        """Set while the System screen shows: only then is BLUT_HOME walked for its space."""
        self._painted = 0.0
        self._repaint: Timer | None = None

    # ---- lifecycle -------------------------------------------------------------

    def on_mount(self) -> None:
        self.push_screen(JobsScreen())
        if self.replay_job is not None:
            self.open_replay(self.replay_job)
        elif self.first_job is not None:
            self.open_job(self.first_job)
        self._feed_worker()
        if self.sample_system:
            self._system_worker()

    def on_unmount(self) -> None:
        self._stop.set()

    # ---- workers (all I/O) ------------------------------------------------------

    @work(thread=True, exclusive=True, group="feed", exit_on_error=False)
    def _feed_worker(self) -> None:
        from blut.jobs.api import Launchers
        from blut.status.tailer import watch_tree

        stop, feed = self._stop, self.feed
        last_post = last_checked = 0.0
        launchers = Launchers()
        last_reconcile = time.monotonic()

        def pump() -> None:
            # Throttle, leading and trailing edge: an update goes out at once when the
            # last one is POST_EVERY old (an isolated event shows immediately); else
            # what arrives meanwhile is gathered and goes out when the window opens.
            # A backlog keeps being read while it waits, so no time is lost idling.
            nonlocal last_post, last_checked
            pending: list[JobDelta] = []
            while not stop.is_set():
                deltas, more = feed.poll(budget=POST_EVERY * 0.5)
                pending.extend(deltas)
                if not pending:
                    if time.monotonic() - last_checked >= CHECKED_EVERY:
                        self.post_message(FeedChecked(feed.behind()))
                        last_checked = time.monotonic()
                    return
                wait = last_post + POST_EVERY - time.monotonic()
                if wait > 0:
                    if more:
                        continue
                    if stop.wait(wait):
                        return
                    deltas, more = feed.poll(budget=POST_EVERY * 0.5)
                    pending.extend(deltas)
                self.post_message(FeedUpdate(pending, feed.known, feed.behind()))
                pending = []
                last_post = last_checked = time.monotonic()
                if not more:
                    return

        try:
            pump()
            for changed in watch_tree(self.store.jobs_dir, stop, timeout=WAKE_EVERY):
                if stop.is_set():
                    break
                feed.notice(changed)
                pump()
                if self.reconcile and time.monotonic() - last_reconcile > RECONCILE_EVERY:
                    last_reconcile = time.monotonic()
                    self._reconcile_quiet(launchers)
                    pump()
        finally:
            launchers.close()

    def _reconcile_quiet(self, launchers: Launchers) -> None:
        from blut.containment.errors import ContainmentError
        from blut.jobs.api import reconcile_job
        from blut.jobs.errors import JobsError

        now = time.monotonic()
        for job, changed in self.feed.waiting():
            if now - changed < RECONCILE_EVERY or self._stop.is_set():
                continue
            try:
                reconcile_job(job, launchers)
            except (ContainmentError, JobsError, OSError):
                continue

    @work(thread=True, exclusive=True, group="system", exit_on_error=False)
    def _system_worker(self) -> None:
        from blut.cockpit.sysinfo import UnitCpu, cluster_sample, sample
        from blut.containment.nvml import Nvml
        from blut.jobs.api import home_usage

        nvml = Nvml()
        units = UnitCpu()
        space, measured = None, -SPACE_EVERY
        cluster, asked = None, -CLUSTER_EVERY
        try:
            while not self._stop.is_set():
                stale = time.monotonic() - measured >= SPACE_EVERY
                if self.space_wanted.is_set() and stale:  # a walk of BLUT_HOME: now and then
                    space, measured = home_usage(self.home), time.monotonic()
                address = self.cluster_address
                if address is None:
                    cluster = None
                elif self.space_wanted.is_set() and time.monotonic() - asked >= CLUSTER_EVERY:
                    cluster, asked = cluster_sample(address), time.monotonic()
                cpu = units.sample(self.measured_units, time.monotonic())
                now = self.clock()
                self.post_message(SystemUpdate(sample(self.home, nvml, now, cpu, space, cluster)))
                if self._stop.wait(SYSTEM_EVERY):
                    break
        finally:
            nvml.close()
            units.close()

    # ---- messages up -------------------------------------------------------------

    def on_feed_update(self, message: FeedUpdate) -> None:
        self.state.known = message.known
        now = self.clock()
        ended = self.state.apply(message.deltas, now)
        self.state.mark_checked(now, message.behind)
        self._update_top()
        viewing = self.screen_job()
        for end in ended:
            if end.job_id == viewing:
                continue
            severity: SeverityLevel = "information" if end.state == "succeeded" else "error"
            if end.state == "cancelled":
                severity = "warning"
            why = f" ({end.reason})" if end.reason and end.state == "failed" else ""
            self.notify(f"job {end.job_id} ({end.name}) {end.state}{why}", severity=severity)
        hook = self.after_update
        if hook is not None:
            deltas = message.deltas
            self.call_after_refresh(hook, self, deltas)

    def on_feed_checked(self, message: FeedChecked) -> None:
        self.state.mark_checked(self.clock(), message.behind)

    def on_system_update(self, message: SystemUpdate) -> None:
        from blut.cockpit.screens.system import SystemScreen

        self.system_history.append(message.sample)
        if isinstance(self.screen, SystemScreen):
            self.screen.update_state()

    def _update_top(self) -> None:
        if self.state.loading:
            wait = self._painted + LOADING_PAINT_EVERY - time.monotonic()
            if wait > 0:
                if self._repaint is None:
                    self._repaint = self.set_timer(wait, self._deferred_update)
                return
        self._painted = time.monotonic()
        for screen in reversed(self.screen_stack):
            if isinstance(screen, StateScreen):
                screen.update_state()
                return

    def _deferred_update(self) -> None:
        self._repaint = None
        self._update_top()

    def screen_job(self) -> str | None:
        """The job the topmost state screen is about or has selected."""
        for screen in reversed(self.screen_stack):
            if isinstance(screen, StateScreen):
                return screen.selected_job_id
        return None

    # ---- commands down ------------------------------------------------------------

    def focus_job(self, job_id: str | None, borrowed: Iterable[str] = ()) -> None:
        """Tail the stage logs of ``job_id`` (the Job screen's job), and read the logs and
        plots of the ``borrowed`` jobs too (those whose outputs its cached stages reused)."""
        self.feed.borrowed = frozenset(borrowed)
        self.feed.focus = job_id

    def open_job(self, job_id: str) -> None:
        """Drill into a job."""
        self.push_screen(JobScreen(job_id))

    def open_sweep(self, sweep: str) -> None:
        """Compare the points of a sweep."""
        from blut.cockpit.screens.sweep import SweepScreen

        self.push_screen(SweepScreen(sweep))

    def sweep_members(self, sweep: str) -> list[JobState]:
        """The jobs of ``sweep`` the cockpit knows, oldest first; of a snapshot's branches
        group (`branches_group`), the job it was taken from and every job started from it."""
        snapshot = group_snapshot(sweep)
        jobs = self.state.jobs.values()
        if snapshot is None:
            return sorted((j for j in jobs if j.view.sweep == sweep), key=lambda j: j.id)
        runs = [j for j in jobs if (j.spec.snapshot or {}).get("id") == snapshot]
        parents = {(j.spec.snapshot or {}).get("job") for j in runs}
        runs += [j for j in jobs if j.id in parents]
        return sorted(runs, key=lambda j: j.id)

    def compare_group(self, job_id: str) -> str | None:
        """What `w` compares a job with: its sweep, else the runs of the snapshot it started
        from, else those of the newest snapshot taken from it; None: nothing."""
        job = self.state.jobs.get(job_id)
        if job is None:
            return None
        if job.view.sweep is not None:
            return job.view.sweep
        if job.spec.snapshot:
            return branches_group(str(job.spec.snapshot.get("id")))
        taken = sorted(
            (j.id, str(j.spec.snapshot.get("id")))
            for j in self.state.jobs.values()
            if j.spec.snapshot and j.spec.snapshot.get("job") == job_id
        )
        return branches_group(taken[-1][1]) if taken else None

    def want_sweep(self, sweep: str) -> Sweep | None:
        """The last load of ``sweep``'s points; starts another when one is due."""
        members = self.sweep_members(sweep)
        mark: Mark = tuple((j.id, j.version) for j in members)
        if members and self.sweeps.due(sweep, mark, time.monotonic()):
            self._sweep_worker(sweep, [j.id for j in members], mark)
        return self.sweeps.get(sweep)

    @work(thread=True, group="sweeps", exit_on_error=False)
    def _sweep_worker(self, sweep: str, job_ids: list[str], mark: Mark) -> None:
        from blut.jobs.api import load_sweep
        from blut.jobs.errors import JobsError
        from blut.status.errors import StatusError

        try:
            data: Sweep | None = load_sweep(self.store, sweep, job_ids)
        except (JobsError, StatusError, OSError):
            data = None
        self.call_from_thread(self._sweep_loaded, sweep, data, mark)

    def _sweep_loaded(self, sweep: str, data: Sweep | None, mark: Mark) -> None:
        self.sweeps.store(sweep, data, mark, time.monotonic())
        top = self._top_state_screen()
        if top is not None:
            top.update_state()

    def open_launched(self, job_id: str) -> None:
        """After a launch: leave the recipe screens and show the new job."""
        from blut.cockpit.screens.recipes import RecipeFormScreen, RecipesScreen

        while len(self.screen_stack) > 2 and isinstance(
            self.screen, RecipeFormScreen | RecipesScreen
        ):
            self.pop_screen()
        self.open_job(job_id)

    def stored_job(self, job_id: str) -> Job:
        """The job from the store (reads its job.json: call from a worker)."""
        return self.store.load(job_paths(self.home, job_id).dir)

    def request_resume(self, job_id: str) -> None:
        """Resume a stopped job (a new executor; done and cached stages are skipped)."""
        if self.readonly:
            self.notify("readonly: resume is disabled", severity="warning")
            return
        job = self.state.jobs.get(job_id)
        if job is not None and not job.view.terminal:
            self.notify(f"job {job_id} is still {job.view.state}", severity="warning")
            return
        if job is not None and job.view.state == "succeeded":
            self.notify(f"job {job_id} succeeded: nothing to resume", severity="warning")
            return
        self.notify(f"resuming job {job_id}…", timeout=2)
        self._resume_worker(job_id)

    @work(thread=True, group="resume", exit_on_error=False)
    def _resume_worker(self, job_id: str) -> None:
        from blut.containment.errors import ContainmentError
        from blut.jobs.api import resume
        from blut.jobs.errors import JobsError

        try:
            resume(self.store, self.stored_job(job_id))
        except (JobsError, ContainmentError, OSError) as exc:
            self.call_from_thread(self.notify, f"resume failed: {exc}", severity="error")
            return
        self.call_from_thread(self.notify, f"job {job_id} resumed")

    def request_rerun(self, job_id: str) -> None:
        """Open the recipe form prefilled with a recipe job's args, to edit and launch."""
        from blut.cockpit.screens.recipes import RecipeFormScreen

        if self.readonly:
            self.notify("readonly: re-run is disabled", severity="warning")
            return
        from blut.jobs.api import recipe_args
        from blut.jobs.errors import UsageError
        from blut.jobs.recipes import find
        from blut.jobs.rows import focus_stage

        job = self.state.jobs.get(job_id)
        name = (job.view.recipe if job is not None else None) or (
            job.spec.name if job is not None else ""
        )
        args = recipe_args(self.stored_job(job_id)) if job is not None else None
        if job is None or args is None:
            self.notify(f"job {job_id} has no args.json (not a recipe job)", severity="warning")
            return
        try:
            recipe = find(name)
        except UsageError as exc:
            self.notify(str(exc), severity="error")
            return
        failed = focus_stage(job.view) if job.view.state == "failed" else None
        if failed is not None and failed.reason == "oom":
            self._rerun_after_oom(job_id, recipe, args, failed.name)
            return
        self.push_screen(RecipeFormScreen(recipe, args, note=f"re-run of job {job_id}"))

    @work(thread=True, exclusive=True, group="rerun", exit_on_error=False)
    def _rerun_after_oom(
        self, job_id: str, recipe: RecipeDef, args: dict[str, Any], stage: str
    ) -> None:
        """The ceiling the policy offers ``stage``, which ran out of memory (reads every
        job's history), then the re-run form prefilled with it."""
        from blut.jobs.api import oom_suggestion
        from blut.jobs.errors import JobsError

        try:
            offer = oom_suggestion(self.store, self.stored_job(job_id), stage)
        except (JobsError, OSError):  # the form opens on the old ceiling
            offer = None
        self.call_from_thread(self._open_oom_rerun, job_id, recipe, args, stage, offer)

    def _open_oom_rerun(
        self,
        job_id: str,
        recipe: RecipeDef,
        args: dict[str, Any],
        stage: str,
        offer: CeilingOffer | None,
    ) -> None:
        from blut.cockpit.screens.recipes import RecipeFormScreen

        note = f"re-run of job {job_id}: {stage} ran out of memory; "
        if offer is None:
            note += "raise its memory_max"
        else:
            args = {**args, stage: {**(args.get(stage) or {}), "memory_max": offer.value}}
            note += f"memory_max {offer.value} suggested ({offer.why})"
        focus = f"{stage}.memory_max"  # what an out-of-memory stage needs raised
        self.push_screen(RecipeFormScreen(recipe, args, note=note, focus=focus))

    def open_replay(self, job_id: str) -> None:
        """Play a job's stream through the Job screen (speed, scrubber)."""
        from blut.cockpit.screens.replay import ReplayScreen

        self.push_screen(ReplayScreen(job_id))

    @work(thread=True, group="replay", exit_on_error=False)
    def load_timeline(self, job_id: str, screen: ReplayScreen) -> None:
        """Read a job's stream and stage logs (worker) and hand them to its replay screen."""
        from blut.cockpit.timeline import load_timeline
        from blut.jobs.errors import JobsError

        try:
            timeline, reader = load_timeline(self.store, job_id)
        except (JobsError, OSError) as exc:
            self.call_from_thread(self.notify, f"cannot replay {job_id}: {exc}", severity="error")
            return
        self.call_from_thread(screen.set_timeline, timeline, reader)

    @work(thread=True, exclusive=True, group="replay-tail", exit_on_error=False)
    def tail_timeline(self, screen: ReplayScreen, reader: StreamReader) -> None:
        """Read what a running job appended since (worker) and hand it to its replay."""
        try:
            events, logs = reader.read()
        except OSError:
            return
        if events or logs:
            self.call_from_thread(screen.extend_timeline, events, logs)

    def request_cancel(self, job_id: str) -> None:
        """Ask, then cancel ``job_id`` in a worker (never in readonly mode)."""
        if not self._may_cancel(job_id):
            return
        job = self.state.jobs.get(job_id)
        name = job.spec.name if job is not None else "?"

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"cancelling job {job_id}…", timeout=2)
                self._cancel_worker(job_id)

        self.push_screen(ConfirmScreen(f"Cancel job {job_id} ({name})?"), answered)

    def _may_cancel(self, job_id: str) -> bool:
        """False (with a toast) in readonly mode or when the job has already ended."""
        if self.readonly:
            self.notify("readonly: cancel is disabled", severity="warning")
            return False
        job = self.state.jobs.get(job_id)
        if job is not None and job.view.terminal:
            self.notify(f"job {job_id} has already ended ({job.view.state})", severity="warning")
            return False
        return True

    @work(thread=True, group="cancel", exit_on_error=False)
    def _cancel_worker(self, job_id: str, stage: str | None = None) -> None:
        """Cancel the job, or only ``stage`` of it, and say how it ended."""
        from blut.containment.errors import ContainmentError
        from blut.jobs.api import Launchers, cancel, cancel_stage
        from blut.jobs.errors import JobsError

        try:
            job = self.stored_job(job_id)
            with Launchers() as launchers:
                launcher = launchers.for_job(job)
                if stage is None:
                    view = cancel(job, launcher, by="cockpit")
                else:
                    view = cancel_stage(job, launcher, stage, by="cockpit")
        except (JobsError, ContainmentError, OSError) as exc:
            self.call_from_thread(self.notify, f"cancel failed: {exc}", severity="error")
            return
        if stage is None:
            self.call_from_thread(self.notify, f"job {job_id} {view.state}")
            return
        found = view.stages.get(stage)
        ended = (found.reason or found.state) if found is not None else view.state
        self.call_from_thread(self.notify, f"job {job_id} stage {stage} {ended}")

    def request_cancel_stage(self, job_id: str, stage: str | None) -> None:
        """Ask, then cancel one ``stage`` of a recipe job in a worker (never in readonly
        mode): its dependents are skipped, other branches finish, the job ends failed."""
        if not self._may_cancel(job_id):
            return
        job = self.state.jobs.get(job_id)
        if stage is None:
            self.notify("no stage selected", severity="warning")
            return
        found = job.view.stages.get(stage) if job is not None else None
        if found is not None and found.state not in ("queued", "running"):
            ended = "skipped" if found.reason == "skipped" else found.state
            self.notify(f"stage {stage} has already ended ({ended})", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"cancelling stage {stage} of job {job_id}…", timeout=2)
                self._cancel_worker(job_id, stage)

        question = (
            f"Cancel stage {stage} of job {job_id}? "
            "Stages that need it are skipped; the other branches finish."
        )
        self.push_screen(ConfirmScreen(question), answered)

    def open_pager(self, job_id: str, stage: str | None) -> None:
        """Show a stage's whole log in ``$PAGER`` (default ``less -R``)."""
        job = self.state.jobs.get(job_id)
        if job is None:
            return
        name = stage or job.view.current_stage or (job.spec.stages or ["main"])[0]
        path = job_paths(self.home, job_id).stage(name).log
        if not path.is_file():
            self.notify(f"no log yet for stage {name}", severity="warning")
            return
        pager = shlex.split(os.environ.get("PAGER") or "less -R") or ["less", "-R"]
        try:
            with self.suspend():
                subprocess.run([*pager, str(path)], check=False)
        except Exception as exc:  # SuspendNotSupported (headless, web), missing pager
            self.notify(f"cannot open a pager here ({exc.__class__.__name__}): {path}")

    # ---- actions and the command palette -------------------------------------------

    def action_help(self) -> None:
        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        if isinstance(screen, StateScreen):
            self.push_screen(HelpScreen(screen.HELP_TITLE or "This screen", screen.KEY_HELP))
        else:
            self.push_screen(HelpScreen("This screen", ()))

    def action_jobs(self) -> None:
        while len(self.screen_stack) > 2 and not isinstance(self.screen, JobsScreen):
            self.pop_screen()

    def action_system(self) -> None:
        from blut.cockpit.screens.system import SystemScreen

        if not isinstance(self.screen, SystemScreen):
            self.push_screen(SystemScreen())

    def action_recipes(self) -> None:
        from blut.cockpit.screens.recipes import RecipesScreen

        if not isinstance(self.screen, RecipesScreen):
            self.push_screen(RecipesScreen())

    def action_cache(self) -> None:
        from blut.cockpit.screens.cache import CacheScreen

        if not isinstance(self.screen, CacheScreen):
            self.push_screen(CacheScreen())

    def _top_state_screen(self) -> StateScreen | None:
        for screen in reversed(self.screen_stack):
            if isinstance(screen, StateScreen):
                return screen
        return None

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        from blut.cockpit.screens.cache import CacheScreen
        from blut.cockpit.screens.recipes import RecipeFormScreen

        yield from super().get_system_commands(screen)
        yield SystemCommand("Jobs", "The jobs table (home)", self.action_jobs)
        yield SystemCommand("System", "CPU, memory, disk, GPUs", self.action_system)
        yield SystemCommand("Recipes", "The catalog; launch a recipe", self.action_recipes)
        yield SystemCommand("Cache", "Stage cache entries; prune", self.action_cache)
        yield SystemCommand("Help", "Every key", self.action_help)
        if not self.readonly:
            if isinstance(screen, RecipeFormScreen):
                yield SystemCommand(
                    f"Launch {screen.recipe.name}",
                    "Submit the form (one job per sweep point)",
                    screen.action_launch,
                )
            elif isinstance(screen, CacheScreen):
                yield SystemCommand(
                    "Prune the cache", "Preview what goes, then confirm", screen.action_prune
                )
        top = self._top_state_screen()
        job_id = top.selected_job_id if top is not None else None
        if top is None or job_id is None:
            return
        yield SystemCommand(
            f"Open job {job_id}", "Stages, plots, log", lambda: self.open_job(job_id)
        )
        if not self.readonly:
            state = self.state.jobs.get(job_id)
            ended = state is not None and state.view.terminal
            if not ended:
                yield SystemCommand(
                    f"Cancel job {job_id}",
                    "Stop it (asks first)",
                    lambda: self.request_cancel(job_id),
                )
            if not ended and isinstance(top, JobScreen) and top.recipe:
                stage = top.cancel_target()
                yield SystemCommand(
                    f"Cancel stage {stage or '(none running)'} of {job_id}",
                    "Stop one stage; what needs it is skipped, the rest finishes (asks first)",
                    top.action_cancel_stage,
                )
            if ended and state is not None and state.view.state != "succeeded":
                yield SystemCommand(
                    f"Resume job {job_id}",
                    "Run its unfinished stages again (done and cached ones are skipped)",
                    lambda: self.request_resume(job_id),
                )
            if state is not None and state.view.recipe is not None:
                yield SystemCommand(
                    f"Re-run job {job_id} with edited args",
                    "The recipe form, prefilled",
                    lambda: self.request_rerun(job_id),
                )
        yield SystemCommand(f"Log of {job_id} in $PAGER", "The whole stage log", top.action_pager)
        yield SystemCommand(
            f"Replay job {job_id}",
            "Play its stream through the Job screen",
            lambda: self.open_replay(job_id),
        )


def run_cockpit(
    *, readonly: bool = False, replay: str | None = None, open_job: str | None = None
) -> int:
    """Run the cockpit in this terminal until the user quits; returns the exit code."""
    app = CockpitApp(readonly=readonly, replay=replay, open_job=open_job)
    result = app.run()
    return result if isinstance(result, int) else 0
