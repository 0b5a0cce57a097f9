"""The jobs API: what the CLI and the cockpit both call. They are views; the logic is here.

- :func:`list_jobs`: every job as a :class:`~blut.jobs.rows.JobRow`, read from the job
  index (no history is re-read) and reconciled with its units;
- :func:`submit_command`, :func:`submit_recipe`, :func:`submit_points` (a sweep);
- :func:`cancel`, :func:`cancel_stage`, :func:`resume`, :func:`follow`;
- :func:`prune_jobs` (`blut jobs prune`) and :func:`home_usage` (jobs against cache).
- :func:`load_sweep`: a sweep's points compared (varied args, metrics).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from blut.containment.envfile import write_env_file
from blut.jobs.cancel import cancel, cancel_stage
from blut.jobs.cluster import Cluster, check_stages
from blut.jobs.environment import EnvPolicy, env_policy, job_env
from blut.jobs.errors import JobsError, UsageError, clip
from blut.jobs.follow import LogLine, Mark, follow
from blut.jobs.rows import JobRow, job_row, select
from blut.jobs.store import MAX_NAME, Job, JobStore
from blut.status.atomic import atomic_write_json
from blut.status.events import JobSubmitted, Log
from blut.status.jobstate import JobView
from blut.status.private import started_umask
from blut.status.summary import current_view
from blut.status.usage import CACHE_DIR, HomeUsage, home_usage
from blut.status.writer import MAX_LINE, encode_line

if TYPE_CHECKING:
    from blut.containment.launcher import Launcher
    from blut.jobs.history import CeilingOffer, Sample
    from blut.jobs.outputs import Output
    from blut.jobs.plan import Plan
    from blut.jobs.prune import JobsPruneReport, JobsPruneRule
    from blut.jobs.recipes import RecipeDef
    from blut.jobs.snapshots import Start
    from blut.jobs.sweeps import Sweep
    from blut.status.telemetry import Record as TelemetryRecord

ENDING_EXECUTOR_GRACE = 15.0
"""Seconds `resume` waits for the executor of a job that has just ended to exit."""

__all__ = [
    "HomeUsage",
    "JobRow",
    "Launchers",
    "Listing",
    "LogLine",
    "Mark",
    "PartialSubmit",
    "Submission",
    "cancel",
    "cancel_stage",
    "check_stage",
    "follow",
    "home_usage",
    "job_outputs",
    "list_jobs",
    "load_sweep",
    "oom_suggestion",
    "prune_jobs",
    "recipe_args",
    "reconcile_job",
    "resume",
    "submit_command",
    "submit_points",
    "submit_recipe",
]


class Launchers:
    """One launcher per kind, created on first use and closed together."""

    def __init__(self) -> None:
        self._by_kind: dict[str, Launcher] = {}

    def get(self, kind: str) -> Launcher:
        """The launcher of ``kind`` ("systemd" or "bare")."""
        found = self._by_kind.get(kind)
        if found is None:
            from blut.containment.select import launcher_for

            found = self._by_kind[kind] = launcher_for(kind)
        return found

    def for_job(self, job: Job) -> Launcher:
        """The launcher the job was started with (its stages' cluster's, `--launcher ray`)."""
        address = job.spec.ray_address
        if address is None:
            return self.get(job.spec.launcher)
        key = f"ray:{job.spec.launcher}:{address}"
        found = self._by_kind.get(key)
        if found is None:
            from blut.containment.select import cluster_launcher, launcher_for

            found = self._by_kind[key] = cluster_launcher(launcher_for(job.spec.launcher), address)
        return found

    def close(self) -> None:
        """Close every launcher created."""
        for launcher in self._by_kind.values():
            launcher.close()
        self._by_kind.clear()

    def __enter__(self) -> Launchers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- listing ---------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    """Jobs as rows (oldest first), and why some job folders could not be shown."""

    rows: list[JobRow]
    unreadable: list[str] = field(default_factory=list)


def list_jobs(
    store: JobStore, *, show_all: bool = True, reconcile: bool = True, now: float | None = None
) -> Listing:
    """The jobs of ``store`` from the job index: every one with ``show_all``, else the
    active ones plus the newest (what `blut jobs` shows).

    With ``reconcile`` (not in a read-only view), a job whose executor died is
    reconciled (see `blut.jobs.lifecycle`), and summaries found missing or far
    behind their stream are saved back. Only the jobs shown have their job.json read.
    """
    ids = store.ids()
    views: dict[str, JobView] = {}
    jobs: dict[str, Job] = {}
    unreadable: list[str] = []
    with Launchers() as launchers:
        for job_id in ids:
            view = current_view(store.paths(job_id), job_id, save=reconcile)
            if reconcile and not view.terminal:
                try:
                    job = jobs[job_id] = store.load(store.paths(job_id).dir)
                except JobsError as exc:
                    unreadable.append(str(exc))
                    continue
                view = reconcile_job(job, launchers)
            views[job_id] = view
    shown = select([i for i in ids if i in views], lambda i: not views[i].terminal, show_all)
    rows = []
    for job_id in shown:
        try:
            job = jobs.get(job_id) or store.load(store.paths(job_id).dir)
        except JobsError as exc:
            unreadable.append(str(exc))
            continue
        rows.append(job_row(job.spec, views[job_id], now))
    return Listing(rows, unreadable)


def reconcile_job(job: Job, launchers: Launchers) -> JobView:
    """The job's state, with an outcome its dead executor could not record recovered."""
    from blut.jobs.lifecycle import executor_running, reconcile

    if executor_running(job):  # the usual case: no launcher (no systemd probe) needed
        return job.view()
    return reconcile(job, launchers.for_job(job))


# -- submitting ------------------------------------------------------------------


def _choose(contained: bool) -> tuple[Launcher, str | None]:
    from blut.containment.select import choose_launcher

    return choose_launcher(contained)


def check_name(name: str) -> None:
    """Refuse a job name that is empty, not printable or longer than :data:`MAX_NAME`."""
    if len(name) > MAX_NAME:
        raise UsageError(f"job name too long ({len(name)} characters; at most {MAX_NAME})")
    if not name.strip() or not name.isprintable():
        raise UsageError(f"invalid job name {name!r}: use printable characters")


def fitted_argv(event: JobSubmitted, argv: Sequence[str]) -> list[str]:
    """``argv`` as ``event`` can record it within the stream's line limit: whole, or its
    first arguments and a note (job.json keeps the whole command)."""
    room = MAX_LINE - len(encode_line(replace(event, argv=["… (9999999 more)"])))
    kept: list[str] = []
    for arg in argv:
        room -= len(json.dumps(arg)) + 2
        if room < 0:
            return [*kept, f"… ({len(argv) - len(kept)} more)"]
        kept.append(arg)
    return kept


def submit_command(
    store: JobStore,
    argv: Sequence[str],
    *,
    name: str | None = None,
    memory_max: int | None = None,
    timeout: float | None = None,
    cwd: Path | None = None,
    contained: bool = True,
    env: EnvPolicy | None = None,
    cluster: Cluster | None = None,
) -> tuple[Job, str | None]:
    """Run ``argv`` as a job (`blut run`); returns it and a containment warning.

    ``env`` None: the policy of the config files (see `blut.jobs.environment`).
    ``cluster``: its stage runs on that Ray cluster (`blut.jobs.cluster`).
    """
    from blut.containment.errors import ContainmentError
    from blut.containment.systemd import resolve_program
    from blut.jobs.commandplan import command_plan
    from blut.jobs.lifecycle import start_executor

    if not argv or not argv[0].strip():
        raise UsageError("no command given: use `blut run [OPTIONS] -- COMMAND [ARGS...]`")
    if name is not None:
        check_name(name)
    workdir = (cwd or Path.cwd()).resolve()
    policy = env or env_policy(cwd=workdir)
    try:
        resolve_program(argv[0], job_env(os.environ, policy).get("PATH"))
    except ContainmentError as exc:
        raise UsageError(str(exc)) from exc
    job_name = name or Path(argv[0]).name[:MAX_NAME]
    plan = command_plan(job_name, argv, memory_max=memory_max, timeout=timeout)
    check_stages(cluster, plan.order())
    launcher, warning = _choose(contained)
    environment = job_env(os.environ, policy)  # with the address of the manager just found
    try:
        with store.creating(
            name=job_name,
            argv=list(argv),
            cwd=str(workdir),
            launcher=launcher.kind,
            memory_max=memory_max,
            timeout=timeout,
            stages=plan.order(),
            umask=started_umask(),
            **(cluster.record() if cluster is not None else {}),
        ) as job:
            plan.save(job.plan_path)
            write_env_file(job.paths.env, environment)
            submitted = JobSubmitted(
                job=job.id, name=job_name, memory_max=memory_max, timeout=timeout
            )
            job.emit(replace(submitted, argv=fitted_argv(submitted, argv)))
            if warning:
                job.emit(Log(job=job.id, level="warning", msg=warning))
            start_executor(job, launcher)
    finally:
        launcher.close()
    return job, warning


def check_stage(recipe: RecipeDef, plan: Plan, stage: str) -> str:
    """``stage`` when ``plan`` (``recipe``'s) has it; else a `UsageError` naming its stages."""
    if stage not in plan.stages:
        raise UsageError(
            f"recipe {recipe.name} has no stage {clip(stage)!r} (stages: {', '.join(plan.order())})"
        )
    return stage


def new_sweep_id() -> str:
    """An id grouping the jobs of one ``--sweep``."""
    return "sweep-" + time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(2).hex()


def submit_recipe(
    store: JobStore,
    recipe: RecipeDef,
    args: Mapping[str, Any],
    *,
    sweep: str | None = None,
    contained: bool = True,
    cwd: Path | None = None,
    env: EnvPolicy | None = None,
    stage: str | None = None,
    tty: str | None = None,
    history: Callable[[], list[Sample]] | None = None,
    begin: Start | None = None,
    checked: bool = False,
    telemetry: TelemetryRecord | None = None,
    cluster: Cluster | None = None,
) -> tuple[Job, str | None]:
    """Compile ``args`` (already resolved), store the job and start its executor (or
    finish it here when every stage is cached). Returns the job and a containment warning.

    Paths the args name (datasets, model dirs) are made absolute against ``cwd``
    (default: this process's); one that does not exist is a `ConfigError`. The policy
    of the home (`blut.jobs.policy`: learned ceilings, slots) is applied to the plan.
    ``env`` None: the environment policy of the config files. ``history``: the runs
    learned ceilings come from (default: read from the job index when needed).

    ``stage`` (`blut stage run`): run only that stage and what it depends on. ``tty``:
    that stage runs attached to this pseudo-terminal (it always runs; see `JobSpec.tty`).
    ``begin``: the snapshot a stage starts from (restored into it before the executor starts).
    ``checked``: the paths in ``args`` were resolved and their data checked already
    (`submit_points` checks every point before it submits any). ``telemetry``: the
    sinks its stages feed (None: the config files', `blut.jobs.telemetry`). ``cluster``:
    its stages run on that Ray cluster (`blut.jobs.cluster`).
    """
    from blut.jobs.cache import Cache, objects_dir
    from blut.jobs.datacheck import preflight
    from blut.jobs.external import resolve_inputs
    from blut.jobs.lifecycle import finish_or_start, start_executor
    from blut.jobs.policyapply import apply_policy
    from blut.jobs.retention import retention_policy
    from blut.jobs.telemetry import telemetry_config

    workdir = (cwd or Path.cwd()).resolve()
    if not checked:
        args = resolve_inputs(recipe.args_schema, args, workdir, store.home)
    built = recipe.build(args)
    if not checked:
        preflight(built, objects_dir(store.home))  # malformed data: one line, exit 2, no job
    applied = apply_policy(store, built, args, recipe.defaults(), workdir, history)
    plan = applied.plan
    if stage is not None:
        plan = plan.upstream(check_stage(recipe, plan, stage))
    if tty is not None and stage is None:
        raise UsageError("a terminal is for one stage: name the stage")
    check_stages(cluster, plan.order())
    retention = retention_policy(workdir)
    if telemetry is None:
        telemetry = telemetry_config(workdir)
    Cache(store.home).close()  # a broken cache index fails here, before the job exists
    launcher, warning = _choose(contained)
    environment = job_env(os.environ, env or env_policy(cwd=cwd))
    if tty is not None and "TERM" in os.environ:  # the terminal's type (left out otherwise)
        environment["TERM"] = os.environ["TERM"]
    try:
        with store.creating(
            name=recipe.name if stage is None else f"{recipe.name}:{stage}",
            argv=[sys.executable, "-m", "blut.jobs.executor"],
            cwd=str(workdir),
            launcher=launcher.kind,
            stages=plan.order(),
            recipe=recipe.name,
            retain_checkpoints=retention.checkpoints,
            stage=stage,
            tty=tty,
            input_bytes=applied.input_bytes,
            cpu_slots=applied.cpu_slots,
            max_stages=applied.max_stages,
            retries=applied.retries,
            policy_notes=applied.notes,
            snapshot=begin.record() if begin is not None else None,
            telemetry=telemetry.to_dict() if telemetry.sinks else None,
            **(cluster.record() if cluster is not None else {}),
        ) as job:
            plan.save(job.plan_path)
            atomic_write_json(job.paths.args, dict(args))
            write_env_file(job.paths.env, environment)
            job.emit(JobSubmitted(job=job.id, name=job.spec.name, recipe=recipe.name, sweep=sweep))
            if warning:
                job.emit(Log(job=job.id, level="warning", msg=warning))
            if begin is not None:
                from blut.jobs.snapshots import restore

                restore(job, begin)
                job.emit(Log(job=job.id, stage=begin.stage, msg=begin.describe()))
            if cluster is not None:
                job.emit(Log(job=job.id, msg=f"stages run on the Ray cluster {cluster.address}"))
            if tty is None:
                finish_or_start(job, plan, launcher)
            else:  # the stage runs whatever the cache holds: the point is to watch it run
                start_executor(job, launcher)
    finally:
        launcher.close()
    return job, warning


@dataclass(frozen=True)
class Submission:
    """The jobs of one submit: one, or a sweep's (grouped under ``sweep``)."""

    jobs: list[Job]
    sweep: str | None
    warning: str | None


class PartialSubmit(JobsError):
    """Submitting a sweep failed after some of its jobs were submitted (``jobs``)."""

    def __init__(self, message: str, jobs: list[Job]) -> None:
        super().__init__(message)
        self.jobs = jobs


def checked_points(
    store: JobStore, recipe: RecipeDef, points: Sequence[Mapping[str, Any]], workdir: Path
) -> list[dict[str, Any]]:
    """Each point's args with the paths and job outputs it names resolved, and the data
    files its plan reads checked (`blut.jobs.datacheck.preflight`); the problems of all
    points → one :class:`~blut.jobs.config.ConfigError`."""
    from blut.jobs.cache import objects_dir
    from blut.jobs.config import ConfigError
    from blut.jobs.datacheck import DataProblem, preflight
    from blut.jobs.external import resolve_inputs

    problems: list[str] = []
    resolved = []
    for args in points:
        try:
            resolved.append(resolve_inputs(recipe.args_schema, args, workdir, store.home))
            preflight(recipe.build(resolved[-1]), objects_dir(store.home))
        except DataProblem as exc:
            problems.append(str(exc))
        except ConfigError as exc:
            problems.extend(p for p in exc.problems if p not in problems)
    if problems:
        raise ConfigError(problems)
    return resolved


def submit_points(
    store: JobStore,
    recipe: RecipeDef,
    points: Sequence[Mapping[str, Any]],
    *,
    contained: bool = True,
    cwd: Path | None = None,
    env: EnvPolicy | None = None,
    starts: Sequence[Start] | None = None,
    telemetry: str | None = None,
    cluster: Cluster | None = None,
) -> Submission:
    """One job per resolved args; more than one form a sweep under a new sweep id.

    Every point is validated, and the paths it names resolved against ``cwd``,
    before any job is submitted: a :class:`~blut.jobs.config.ConfigError` lists
    the problems of all of them. A failure after that raises
    :class:`PartialSubmit` naming the jobs already submitted. ``starts``: for each
    point, the snapshot it starts from (`blut.jobs.snapshots.start`). ``telemetry``: the
    ``--telemetry`` sink names (None: the config files'), checked before any job exists.
    """
    from blut.jobs.history import samples
    from blut.jobs.telemetry import telemetry_config

    if not points:
        raise UsageError(f"recipe {recipe.name}: nothing to run (no argument sets)")
    workdir = (cwd or Path.cwd()).resolve()
    sinks = telemetry_config(workdir, telemetry)  # a missing sink: one line, nothing submitted
    points = checked_points(store, recipe, points, workdir)
    env = env or env_policy(cwd=cwd)
    sweep = new_sweep_id() if len(points) > 1 else None
    read: list[list[Sample]] = []

    def history() -> list[Sample]:  # read once for the whole sweep (its jobs add no runs)
        if not read:
            read.append(samples(store))
        return read[0]

    jobs: list[Job] = []
    warning = None
    for i, args in enumerate(points):
        try:
            job, warning = submit_recipe(
                store,
                recipe,
                args,
                sweep=sweep,
                contained=contained,
                cwd=workdir,
                env=env,
                history=history,
                begin=starts[i] if starts else None,
                checked=True,
                telemetry=sinks,
                cluster=cluster,
            )
        except (JobsError, OSError) as exc:
            if not jobs:
                raise
            raise PartialSubmit(f"{exc} ({len(jobs)} submitted before)", jobs) from exc
        jobs.append(job)
    return Submission(jobs, sweep, warning)


def recipe_args(job: Job) -> dict[str, Any] | None:
    """A recipe job's resolved arguments (None for a command job or an unreadable file)."""
    try:
        data = json.loads(job.paths.args.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_sweep(store: JobStore, sweep: str, job_ids: Sequence[str] | None = None) -> Sweep:
    """The points of ``sweep``: each member's varied args and Parquet metrics.

    ``job_ids``: its members when the caller knows them (the cockpit); else every job
    of the store whose index says it belongs to ``sweep``. A member whose job.json
    cannot be read is left out.
    """
    from blut.jobs.snapshotorigin import without_snapshot
    from blut.jobs.sweeps import build_sweep, read_job_metrics

    if job_ids is None:
        job_ids = [
            i for i in store.ids() if current_view(store.paths(i), i, save=False).sweep == sweep
        ]
    members = []
    for job_id in job_ids:
        try:
            job = store.load(store.paths(job_id).dir)
        except JobsError:
            continue
        args = without_snapshot(recipe_args(job) or {})
        members.append((job_id, args, read_job_metrics(job.paths, job.spec.stages)))
    return build_sweep(sweep, members)


# -- resuming ----------------------------------------------------------------------


def resume(store: JobStore, job: Job, *, cluster: Cluster | bool | None = True) -> Job:
    """Start a new executor for ``job`` (``blut plan resume``); refused while one runs.

    Stages already done or cached are skipped, units still running re-attached,
    the rest run again (a command job runs its command again). ``cluster``: where its
    stages run from now on (a `Cluster`, or None for this machine; recorded in job.json;
    refused while a stage of it still runs), or True to keep where it ran. Returns the job.
    """
    from blut.jobs.commandplan import plan_of
    from blut.jobs.lifecycle import executor_alive, finish_or_start, reconcile, running_stages

    plan = plan_of(job)  # a damaged plan.json fails here, not in a detached executor
    if not isinstance(cluster, bool):
        check_stages(cluster, plan.order())
    with Launchers() as launchers:
        launcher = launchers.for_job(job)
        # A job that has just ended (its outcome recorded) may still have its executor
        # exiting: give it a moment rather than refuse the resume a person typed at once.
        deadline = time.monotonic() + ENDING_EXECUTOR_GRACE
        while time.monotonic() < deadline and job.view().terminal and executor_alive(job, launcher):
            time.sleep(0.1)
        with job.lock():
            if executor_alive(job, launcher):
                raise UsageError(f"job {job.id} is still running; nothing to resume")
            view = job.view()
            running = running_stages(job, launcher)
            if not view.terminal and not running:
                # Its executor died with nothing running: record that run's end first, so
                # the new run starts from a recorded outcome, with no stale requests.
                view = reconcile(job, launcher)
            if view.state == "succeeded":
                raise UsageError(f"job {job.id} already succeeded; nothing to resume")
            if not isinstance(cluster, bool):
                fields = cluster.record() if cluster else {"ray_address": None, "ray_resources": {}}
                if any(getattr(job.spec, k) != v for k, v in fields.items()):
                    if running:
                        raise UsageError(
                            f"job {job.id}: stages still run ({', '.join(running)}); "
                            "resume it where it ran, or cancel them first"
                        )
                    job = store.respec(job, **fields)
            finish_or_start(job, plan, launcher)  # re-attaches to stages still running
    return job


# -- outputs ------------------------------------------------------------------------


def job_outputs(store: JobStore, job: Job, stage: str | None = None) -> list[Output]:
    """`blut outputs` / `blut export`: each cached output of ``job`` (of ``stage`` only, when
    given), with its path in the cache or marked pruned."""
    from blut.jobs.cache import Cache
    from blut.jobs.outputs import job_outputs as outputs_in

    cache = Cache(store.home)
    try:
        return outputs_in(job, cache, stage)
    finally:
        cache.close()


# -- why a stage ran, or what it reused ----------------------------------------------


def explain_stage(store: JobStore, job: Job, stage: str, *, create: bool = True) -> list[str]:
    """`blut cache explain JOB STAGE`, at any time (while the job runs or after it ended):
    for a stage that reused a cached output, the job that computed it; for one that ran,
    what differs from the closest cached key. ``create`` False (a read-only cockpit)
    creates no cache where there is none."""
    from blut.jobs.cache import Cache, index_path
    from blut.jobs.planview import explain

    if not create and not index_path(store.home).is_file():
        return [
            f"stage {stage}: this home has no cache (nothing was ever cached, or it was removed)"
        ]
    cache = Cache(store.home)
    try:
        return explain(cache, job, stage)
    finally:
        cache.close()


def reused_stages(store: JobStore, job: Job, view: JobView | None = None) -> dict[str, str | None]:
    """Each stage of ``job`` that reused a cached output → the job that computed it (None:
    not known). The cache index is read only for jobs from before that was recorded."""
    from blut.jobs.cache import Cache, index_path
    from blut.jobs.planview import producers

    opened: list[Cache] = []

    def cache() -> Cache | None:
        if not opened and index_path(store.home).is_file():
            opened.append(Cache(store.home))
        return opened[0] if opened else None

    try:
        return producers(view or job.view(), job, cache)
    finally:
        for each in opened:
            each.close()


# -- the policy ----------------------------------------------------------------------


def oom_suggestion(store: JobStore, job: Job, stage: str) -> CeilingOffer | None:
    """For ``stage`` of ``job``, which ran out of memory: the ceiling to re-run it with and
    why (`blut.jobs.history.after_oom`); None when the job has no plan or no such stage.
    Reads every job's index: call it off the UI thread."""
    from blut.jobs.history import after_oom, samples, size_class, suggest
    from blut.jobs.planview import load_plan
    from blut.jobs.policy import load_policy

    try:
        plan = load_plan(job)
        policy = load_policy(store.home)
    except (JobsError, OSError):
        return None
    group = size_class(job.spec.input_bytes)
    found = {s.stage: s for s in suggest(policy, plan, group, samples(store))}
    if stage not in found:
        return None
    state = job.view().stages.get(stage)
    peak = (state.peak_memory or state.memory_max) if state is not None else None
    return after_oom(policy, found[stage], peak)


# -- retention -----------------------------------------------------------------------


def prune_jobs(store: JobStore, rule: JobsPruneRule, *, dry_run: bool = False) -> JobsPruneReport:
    """Remove the folders of the finished jobs ``rule`` selects (`blut.jobs.prune`); never
    a job of which anything runs, nor one holding a path the cache still names."""
    from blut.jobs.cache import Cache
    from blut.jobs.prune import prune_jobs as prune

    if rule.empty:
        raise UsageError("say what to prune: --older-than AGE, --keep-last N and/or --failed")
    cache = Cache(store.home) if (store.home / CACHE_DIR / "index.sqlite").is_file() else None
    try:
        with Launchers() as launchers:
            return prune(store, rule, launchers.for_job, cache, dry_run=dry_run)
    finally:
        if cache is not None:
            cache.close()
