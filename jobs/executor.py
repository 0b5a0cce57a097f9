"""The executor: ``python -m blut.jobs.executor [--adopt] JOB_DIR``, the job's own unit.

Every job is a plan run by this one supervisor: a recipe's stages, or the one
stage of a `blut run` command. Every stage whose inputs exist gets a cache key
(stage, program, schema version, input hashes, args, and the content hashes of
the external files its args name). A cacheable stage that hits (an intact
object; a damaged one is quarantined and recomputed) is recorded as
``stage_cached`` and nothing runs; otherwise unit ``blut-<job>-<stage>`` is
launched once its resources are free, and on success its staging dir is
committed to the cache with its lineage (``stage_done``), unless an external
input changed while it ran, and its checkpoints are trimmed to the job's
retention policy (`blut.jobs.retention`). A command stage is never cached. A failure skips
the stage's dependents while independent branches finish; the job ends failed
with the first cause. A cancel request (event or SIGTERM) stops every running
unit; a request naming one stage stops (or drops) only that stage, which then
fails as ``cancelled`` like any failure. A stage launched without checkpoints
of its own takes over those of another job's failed or cancelled attempt at the
same key (`blut.jobs.attempts`), so a new run of the same recipe resumes.

Restarting it resumes the job: cached stages are skipped, units still running
are re-attached (their names are deterministic), a unit that finished while no
executor watched is recorded (and committed if it succeeded), the rest are
relaunched. With ``--adopt`` (reconcile's mode, for a job whose executor died)
it launches nothing new: it re-attaches and records, then ends the job, failed
for stages that never ran ("continue with `blut plan resume`"). One executor per
job (it holds the job's liveness lock), and one computation per cache key
machine-wide (the key lock), so no stage ever runs twice at once.

The stage of a `blut stage run --foreground` job (``JobSpec.tty``) is never served
from the cache and runs on the submitter's terminal; only in the job's first run:
resumed or adopted, it runs detached like any stage.

A stage sent to a cluster writes its events to its own file on the shared
``$BLUT_HOME`` (no two hosts append to one file); the executor relays them into
``status.jsonl`` (`blut.status.relay`), so it stays the stream's one writer across hosts.

It keeps the job's index summary current as it goes, and exits within a
second or so when its job folder is deleted (stopping the stage units first).

A full disk is an outcome like any other. A stage that fails while little is
free under BLUT_HOME, or whose log says it ran out of space, fails with the
reason ``disk full (N free under BLUT_HOME)``, and so does a stage whose output
cannot be committed. When the executor cannot write its own records (events,
keys, launch records, pins) it stops the job's units, releases the space the
job holds in reserve (``reserve`` in the job folder, made at submit), and
records the job failed with that reason.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Literal

from blut.jobs.attempts import find_earlier, has_state, take_over
from blut.jobs.diskfull import (
    NEARLY_FULL,
    DiskFull,
    disk_full_detail,
    free_bytes,
    is_disk_full,
    ran_out_of_space,
)
from blut.jobs.environment import stage_env
from blut.jobs.errors import JobsError
from blut.jobs.external import launch_args, reference_hash, stage_paths
from blut.jobs.keys import KeyParts, upstream_id
from blut.jobs.plan import Plan
from blut.jobs.slots import GpuPool, Slots
from blut.jobs.stagedef import StageDef, launch_argv, process_count
from blut.jobs.store import Job, JobStore, stage_unit
from blut.status.atomic import atomic_write_json
from blut.status.events import (
    FAILURE_REASONS,
    Event,
    FailureReason,
    JobCancelled,
    JobDone,
    JobFailed,
    JobStarted,
    Log,
    Resources,
    StageCached,
    StageDone,
    StageFailed,
    StagePlaced,
    StageQueued,
    StageStarted,
)
from blut.status.flock import Flock
from blut.status.layout import LOCKS_DIR, JobPaths, StagePaths, executor_lock
from blut.status.private import PRIVATE_UMASK, go_private
from blut.status.relay import Relay
from blut.status.reserve import JOB_RESERVE, hold, release
from blut.status.summary import JobIndex
from blut.status.writer import EventWriter

if TYPE_CHECKING:  # containment loads only when a stage launches, the cache only when a
    # cacheable stage needs it (a `blut run` command never does)
    from blut.containment.launcher import Launcher
    from blut.containment.spec import Handle, Outcome, Placement
    from blut.jobs.cache import Cache, Condemned
    from blut.jobs.integrity import Damage

TICK = 0.1
"""Most seconds between two looks at the stages (and between two asks of systemd each)."""
FIRST_TICK = 0.002
"""After something happened the loop looks again this soon, then backs off to :data:`TICK`,
so a short stage's end is noticed in milliseconds without busy polling a long one."""
VANISHED_AFTER = 3.0
"""Seconds a launched unit may be neither running nor finished before it counts as lost."""
SUMMARY_EVERY = 1.0
"""Least seconds between two saves of the index summary for events that are not stage ends."""
FOLDER_CHECK_EVERY = 0.5
"""Seconds between two checks that the job folder still exists."""
LOG_TAIL = 8192
"""Bytes of a failed stage's log searched for the words of a program that ran out of space."""
RELAY_EVERY = 0.5
"""Seconds between two looks at a cluster stage's events file for lines to relay."""
CLUSTER_SLOTS = 1 << 20
"""CPU slots of a job whose stages run on a cluster: the cluster queues them, not blut."""

Phase = Literal["pending", "waiting", "running", "done", "failed"]


class JobGone(Exception):
    """The job folder was deleted under the executor."""


@dataclass
class StageRun:
    """The executor's bookkeeping for one stage."""

    stage: StageDef
    phase: Phase = "pending"
    parts: KeyParts | None = None
    key_lock: Flock | None = None
    handle: Handle | None = None
    started: float = 0.0
    gpus: list[int] = field(default_factory=list)
    peak: int | None = None
    last_sample: int | None = None
    unknown_since: float | None = None
    asked: float = 0.0
    """Monotonic time systemd was last asked about its unit."""
    artifact: str | None = None
    cancelled: bool = False
    """Its own cancel was requested (a stage cancel, not the whole job's)."""
    retried: int = 0
    """How many times it was run again after failing (the policy's ``limits.retries``)."""
    node_noted: bool = False
    """The node running it on a cluster was reported (`Executor._note_node`)."""
    relay: Relay | None = None
    """Copies its events file into status.jsonl (a stage on a cluster node)."""
    relayed_at: float = 0.0
    """Monotonic time its events file was last relayed."""


class InputGone(JobsError):
    """An external input a stage's args name cannot be read."""


def key_parts(
    stage: StageDef, inputs: dict[str, str], sources: dict[str, str] | None = None
) -> KeyParts:
    """The cache key parts of ``stage`` given its inputs (`upstream_id` by stage) and the
    content hashes of its external inputs (by arg)."""
    return KeyParts(
        stage=stage.name,
        program=stage.program,
        schema_version=stage.schema_version,
        inputs=inputs,
        args=dict(stage.args),
        sources=sources or {},
    )


def stage_sources(stage: StageDef, cwd: Path, cache: Callable[[], Cache]) -> dict[str, str]:
    """The content hash of each external input of ``stage`` (by arg; see `stage_paths`),
    from the cache's index of file marks (``cache`` is asked for only when it has some);
    a job output (``artifact:<hash>``) is its hash, once its object is found intact."""
    out = {}
    for name, value in stage.args.items():
        digest = reference_hash(value)
        if digest is None:
            continue
        path = cache().object_path(digest)
        try:
            damage = cache().marks.check(path, digest)
        except FileNotFoundError:
            raise InputGone(
                f"input {stage.name}.{name}: the job output {digest[:12]} was pruned from the cache"
            ) from None
        if damage is not None:
            raise InputGone(
                f"input {stage.name}.{name}: the job output {digest[:12]} is damaged "
                f"({damage.describe()})"
            )
        out[name] = digest
    for name, path in stage_paths(stage, cwd).items():
        try:
            out[name] = cache().inputs.content(path)
        except OSError as exc:
            raise InputGone(f"input {stage.name}.{name}: cannot read {path}: {exc}") from exc
    return out


def damage_warning(damage: Damage, condemned: Condemned) -> str:
    """What a job says when the cached output it was about to use turned out damaged."""
    return (
        f"the cached output {damage.digest[:12]} was damaged ({damage.describe()}): "
        f"{condemned.summary()}; computing it again"
    )


def all_cached(
    plan: Plan, cache: Cache, cwd: Path, on_damage: Callable[[str, str], None] | None = None
) -> bool:
    """Whether every stage of ``plan`` (a job's, run in ``cwd``) is a cache hit (a check
    that changes no entry, except to quarantine one whose object turns out damaged:
    ``on_damage`` gets the stage and a `damage_warning`)."""

    def damaged(stage: str) -> Callable[[Damage, Condemned], None] | None:
        if on_damage is None:
            return None
        return lambda damage, condemned: on_damage(stage, damage_warning(damage, condemned))

    ids: dict[str, str] = {}
    for name in plan.order():
        stage = plan.stages[name]
        if not stage.cacheable:
            return False
        try:
            sources = stage_sources(stage, cwd, lambda: cache)
        except InputGone:
            return False  # the executor unit fails the stage, saying why
        parts = key_parts(stage, {d: ids[d] for d in plan.deps[name]}, sources)
        entry = cache.get(parts.key, touch=False, on_damage=damaged(name))
        if entry is None:
            return False
        ids[name] = upstream_id(entry.hash, parts)
    return True


class NeedsUnit(Exception):
    """A stage has to run, which an in-process run (`finish_if_cached`) never does."""


def _no_launcher() -> Launcher:
    raise NeedsUnit


def finish_if_cached(job: Job, plan: Plan, cache: Cache) -> bool:
    """Record ``job`` as done in this process when every stage's output is cached.

    A fully cached re-run then starts no unit at all, not even the executor's.
    False when some stage has to run: nothing is recorded then, unless an entry
    vanished after the check (a prune at that moment), in which case the stages
    found cached are recorded and the executor unit, started next, skips them.
    """

    def damaged(stage: str, msg: str) -> None:
        job.emit(Log(job=job.id, stage=stage, level="warning", msg=msg))

    if not all_cached(plan, cache, Path(job.spec.cwd), damaged):
        return False
    pool = GpuPool(cache.locks, list)
    executor = Executor(job, plan, _no_launcher, cache, gpus=pool, in_process=True)
    try:
        return executor.run() != 2  # 2: another executor holds the job
    except NeedsUnit:
        return False


def _discard(staging: Path) -> None:
    """Remove a staging dir (the output of a failed or restarted run) if there is one."""
    if staging.exists():
        import shutil

        shutil.rmtree(staging, ignore_errors=True)


RETRIED: frozenset[FailureReason] = frozenset({"exit", "signal"})
"""Failures worth a retry: not running out of memory or time at the same ceiling."""


def _reason(outcome: Outcome, cancelled: bool) -> FailureReason:
    if cancelled:
        return "cancelled"
    for reason in FAILURE_REASONS:
        if reason == outcome.kind:
            return reason
    return "error"


class Executor:
    """Drives one job's plan; see the module docstring."""

    def __init__(
        self,
        job: Job,
        plan: Plan,
        launcher: Callable[[], Launcher],
        cache: Cache | Callable[[], Cache],
        *,
        gpus: GpuPool,
        slots: Slots | None = None,
        in_process: bool = False,
        adopt: bool = False,
    ) -> None:
        self.job = job
        self.home = job.dir.parent.parent
        self.in_process = in_process
        """Run by another process (a fully cached run, reconcile), not as the job's unit."""
        self.adopt = adopt
        """Re-attach and record only; launch nothing new (the job's executor had died)."""
        self.plan = plan
        self._make_launcher = launcher
        self._cache = cache
        self.gpus = gpus
        self.slots = slots or Slots()
        self.runs = {name: StageRun(plan.stages[name]) for name in plan.order()}
        self.retries = job.spec.retries or 0
        """Times a stage that exited with an error or was killed by a signal runs again."""
        self.cancel = False
        self._cancelling = False
        self._stage_cancels: set[str] = set()
        self._first_failure: StageFailed | None = None
        self._done_before: dict[str, str | None] = {}
        self._was_running: set[str] = set()
        self._contained = job.spec.launcher == "systemd"
        self._foreground = job.spec.stage if job.spec.tty is not None else None
        """The stage that runs attached to the job's terminal (`blut stage run --foreground`)."""
        self._writer: EventWriter | None = None
        self.index = JobIndex(job.paths, job.id)
        self._saved_at = 0.0
        self._saved = -1
        self._folder_checked = time.monotonic()

    @cached_property
    def launcher(self) -> Launcher:
        """The launcher, created on first use: a fully cached run never needs one."""
        return self._make_launcher()

    @cached_property
    def cache(self) -> Cache:
        """The cache, opened on first use: a plan of command stages never needs it."""
        source = self._cache
        return source() if callable(source) else source

    def close(self) -> None:
        """Release the launcher's connections and the event writer."""
        if "launcher" in self.__dict__:
            self.launcher.close()
        self.close_writer()

    def close_writer(self) -> None:
        """Close the event writer (a borrowed launcher stays open)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- events and the index ----------------------------------------------------

    def _stream(self) -> EventWriter:
        if self._writer is None:
            try:
                self._writer = EventWriter(self.job.status_path)
            except FileNotFoundError as exc:
                raise JobGone(str(self.job.dir)) from exc
        return self._writer

    def _emit(self, event: Event) -> None:
        self._stream().emit(event)

    def _sync(self, *, save: bool = False) -> None:
        """Fold what the stream gained (ours and the stages' events) and save the summary
        when ``save`` or when it was last saved :data:`SUMMARY_EVERY` seconds ago."""
        self.index.refresh()
        view = self.index.view
        self.cancel = self.cancel or view.cancel_requested
        self._stage_cancels = {s for s in view.cancel_stages if s in self.runs}
        now = time.monotonic()
        due = now - self._saved_at >= SUMMARY_EVERY and self.index.indexed.offset != self._saved
        if save or due:
            self._check_folder(now, force=True)
            try:
                self.index.save()
            except FileNotFoundError as exc:  # deleted between the check and the save
                raise JobGone(str(self.job.dir)) from exc
            except OSError as exc:
                if not is_disk_full(exc, self.home):
                    raise
                return  # the summary is rebuilt from the stream: saved at the next chance
            self._saved_at, self._saved = now, self.index.indexed.offset

    def _check_folder(self, now: float, *, force: bool = False) -> None:
        if not force and now - self._folder_checked < FOLDER_CHECK_EVERY:
            return
        self._folder_checked = now
        if not self.job.paths.spec.exists():
            raise JobGone(str(self.job.dir))

    def _cancel_requested(self) -> bool:
        """Read new events; True once the whole job's cancel was requested (event or SIGTERM).

        Requests recorded before the job's last outcome were for an earlier run: the
        view forgets them when the job is reopened by this executor's ``job_started``.
        """
        self._sync()
        return self.cancel

    def _cancel_stages(self) -> None:
        """Stop (or drop, if not started) each stage whose own cancel was requested."""
        for name in sorted(self._stage_cancels):
            run = self.runs[name]
            if run.phase in ("pending", "waiting") and name not in self._was_running:
                self._fail(run, "cancelled", "cancelled by request")
            elif run.phase == "running" and run.handle is not None and not run.cancelled:
                run.cancelled = True
                self.launcher.stop(run.handle)

    def _fail(
        self,
        run: StageRun,
        reason: FailureReason,
        detail: str,
        outcome: Outcome | None = None,
    ) -> None:
        event = StageFailed(
            job=self.job.id,
            stage=run.stage.name,
            reason=reason,
            detail=detail,
            exit_code=outcome.exit_code if outcome else None,
            signal=outcome.signal if outcome else None,
            seconds=time.time() - run.started if run.started else None,
            peak_mem=(outcome.peak_memory if outcome else None) or run.peak,
        )
        self._emit(event)
        run.phase = "failed"
        if self._first_failure is None and reason != "skipped":
            self._first_failure = event
        self._release(run)
        self._sync(save=True)

    def _release(self, run: StageRun) -> None:
        if run.key_lock is not None:
            run.key_lock.release()
            run.key_lock = None
        if run.handle is not None:
            self.slots.give(run.stage.resources)
            run.handle = None
        self.gpus.release(run.gpus)
        run.gpus = []

    # -- main loop --------------------------------------------------------------

    def run(self) -> int:
        """Drive the plan to an end; 0 when every stage succeeded or was cached."""
        hold = Flock(executor_lock(self.job.dir.parent.parent, self.job.id))
        if not hold.acquire(blocking=False):
            if not self.in_process:
                print(f"blut: another executor is running job {self.job.id}", file=sys.stderr)
            return 2
        try:
            return self._drive()
        except JobGone:
            print(
                f"blut: job folder {self.job.dir} was deleted: stopping its stages and exiting",
                file=sys.stderr,
                flush=True,
            )
            self._stop_all()
            return 3
        except Exception as exc:
            if not is_disk_full(exc, self.home):
                raise
            return self._out_of_space(exc)
        finally:
            for run in self.runs.values():
                self._release(run)
            if "cache" in self.__dict__:
                self.cache.unpin(self.job.id)
            hold.release()

    def _out_of_space(self, exc: BaseException) -> int:
        """The disk filled up under the executor's own writes: stop the job's units, release
        the job's reserve, and record every unfinished stage and the job failed with the
        reason ``disk full (N free under BLUT_HOME)``."""
        from blut.containment.errors import ContainmentError

        detail = disk_full_detail(self.home)  # what was free before the reserve is released
        with contextlib.suppress(OSError):
            print(f"blut: job {self.job.id}: {detail} ({exc})", file=sys.stderr, flush=True)
        with contextlib.suppress(ContainmentError, OSError):
            self._stop_all()
        release(self.job.paths.reserve)
        try:
            # A line the disk cut short (ours or a stage's) must not swallow the next one.
            self._stream().end_line()
            for run in self.runs.values():
                if run.phase in ("pending", "waiting", "running"):
                    _discard(self._stage_paths(run.stage.name).staging)
                    self._fail(run, "error", detail)
            return self._finish()
        except Exception as again:
            if not is_disk_full(again, self.home):
                raise
            with contextlib.suppress(OSError):
                print(
                    f"blut: job {self.job.id}: {disk_full_detail(self.home)}: its outcome could "
                    "not be recorded (the next `blut jobs` with room records it)",
                    file=sys.stderr,
                    flush=True,
                )
            return 1

    def _hold_reserve(self) -> None:
        """Hold the job's reserve (made at submit; released when a run ends)."""
        try:
            hold(self.job.paths.reserve, JOB_RESERVE)
        except FileNotFoundError as exc:
            raise JobGone(str(self.job.dir)) from exc

    def _drive(self) -> int:
        self._hold_reserve()
        self.index.refresh()
        before = self.index.view
        self._done_before = {
            name: view.artifact
            for name, view in before.stages.items()
            if view.state in ("succeeded", "cached")
        }
        self._was_running = {n for n, v in before.stages.items() if v.state == "running"}
        foreground = self._foreground
        if before.started is not None and foreground is not None:
            # The terminal was the submitting CLI's, for the first run only: a resumed or
            # adopted run never writes to a pseudo-terminal that may be someone else's now.
            self._foreground = None
            if foreground not in self._done_before:
                msg = f"stage {foreground} runs detached (its terminal was the first run's)"
                self._emit(Log(job=self.job.id, stage=foreground, msg=msg))
        if not self.adopt:  # an adopter continues the run it found; it does not start one
            self._emit(
                JobStarted(
                    job=self.job.id,
                    driver=None if self.in_process else self.job.spec.driver_unit,
                    launcher=self.job.spec.launcher,
                )
            )
        if self.adopt and not self.in_process:
            stages = ", ".join(sorted(self._was_running)) or "none"
            msg = f"the job's executor had ended; re-adopting its running stages ({stages})"
            self._emit(Log(job=self.job.id, msg=msg))
        if not self.adopt:
            for name in self.runs:
                if name not in self._done_before:
                    self._emit(StageQueued(job=self.job.id, stage=name))
        self._sync(save=True)
        tick = FIRST_TICK
        while True:
            if self._cancel_requested() and not self._cancelling:
                self._cancelling = True
                self._stop_all()
            if not self._cancelling:
                self._cancel_stages()
            ended = self._poll()
            scheduled = False if self._cancelling else self._schedule()
            progressed = ended or scheduled
            running = any(r.phase == "running" for r in self.runs.values())
            waiting = any(r.phase in ("pending", "waiting") for r in self.runs.values())
            if not running and (self._cancelling or not waiting or (self.adopt and not progressed)):
                break
            if progressed:
                tick = FIRST_TICK
            else:
                self._check_folder(time.monotonic())
                time.sleep(tick)
                tick = min(TICK, tick * 2)
        return self._finish()

    def _stop_all(self) -> None:
        """Stop every unit of the job: those supervised, and those of stages an earlier
        executor started that are not re-attached yet."""
        for name, run in self.runs.items():
            handle = run.handle
            if handle is None and name in self._was_running and run.phase != "failed":
                files = self._stage_paths(name)
                handle = self.launcher.find(self.job.spec.stage_unit(name), files.result)
            if handle is not None:
                self.launcher.stop(handle)

    def _finish(self) -> int:
        with self.job.lock():
            code = self._record_end()
        release(self.job.paths.reserve)  # an ended job needs no reserve; a resume makes it again
        return code

    def _record_end(self) -> int:
        """Record the job's outcome (under its lock); the exit code."""
        self._sync()
        if self.index.view.terminal:  # recorded already (reconcile, or an earlier run)
            return 0 if self._first_failure is None and not self._cancelling else 1
        if self._cancelling:
            self._emit(JobCancelled(job=self.job.id))
            code = 1
        elif self._first_failure is not None:
            first = self._first_failure
            self._emit(
                JobFailed(
                    job=self.job.id,
                    reason=first.reason,
                    detail=f"stage {first.stage}: {first.detail}",
                )
            )
            code = 1
        elif unran := [n for n, r in self.runs.items() if r.phase in ("pending", "waiting")]:
            how = "never started" if self.index.view.started is None else "stopped"
            detail = (
                f"its executor {how} before stage(s) {', '.join(unran)} ran "
                f"(see {self.job.driver_log}); continue with `blut plan resume {self.job.id}`"
            )
            self._emit(JobFailed(job=self.job.id, reason="error", detail=detail))
            code = 1
        else:
            if self.in_process and not self.adopt:
                self._emit(Log(job=self.job.id, msg="every stage is cached: no unit started"))
            self._emit(JobDone(job=self.job.id))
            code = 0
        self._sync(save=True)
        return code

    # -- scheduling -------------------------------------------------------------

    def _schedule(self) -> bool:
        """Advance every ready stage once; True when something changed."""
        changed = False
        for name, run in self.runs.items():
            if run.phase not in ("pending", "waiting"):
                continue
            deps = [self.runs[d] for d in self.plan.deps[name]]
            broken = next((d for d in deps if d.phase == "failed"), None)
            if broken is not None:
                self._fail(run, "skipped", f"upstream stage {broken.stage.name} failed")
                changed = True
            elif all(d.phase == "done" for d in deps):
                changed = self._advance(run, deps) or changed
        return changed

    def _stage_paths(self, name: str) -> StagePaths:
        return self.job.paths.stage(name)

    def _parts(self, run: StageRun, deps: list[StageRun]) -> KeyParts:
        stage = run.stage
        inputs = {
            d.stage.name: upstream_id(d.artifact or "", d.parts) if d.parts else d.artifact or ""
            for d in deps
        }
        parts = key_parts(stage, inputs, stage_sources(stage, self._cwd, lambda: self.cache))
        named = [d for d in map(reference_hash, stage.args.values()) if d is not None]
        if named:  # the job outputs its args name stay in the cache until this job ends
            self.cache.pin(self.job.id, self.cache.keys_of(named))
        if stage.cacheable:
            self.job.stage_dir(stage.name)
            atomic_write_json(
                self._stage_paths(stage.name).key, {"key": parts.key, **parts.to_dict()}
            )
        return parts

    def _advance(self, run: StageRun, deps: list[StageRun]) -> bool:
        if not run.stage.cacheable and run.stage.name in self._done_before:
            run.phase = "done"  # a command that succeeded in an earlier run
            return True
        if run.parts is None:
            try:
                run.parts = self._parts(run, deps)
            except InputGone as exc:
                self._fail(run, "error", str(exc))
                return True
        fresh = run.stage.name == self._foreground  # it runs: the cache does not serve it
        if run.stage.cacheable and run.key_lock is None:
            if not fresh and self._take_cached(run):
                return True
            lock = self.cache.key_lock(run.parts.key)
            if not lock.acquire(blocking=False):
                if run.phase == "pending":
                    run.phase = "waiting"
                    self._emit(
                        Log(
                            job=self.job.id,
                            stage=run.stage.name,
                            msg="another job is computing the same output; waiting to reuse it",
                        )
                    )
                return False
            run.key_lock = lock
            if not fresh and self._take_cached(run):  # computed by the job we waited for
                return True
        if self._reattach(run):
            return True
        if run.stage.name in self._stage_cancels:
            self._fail(run, "cancelled", "cancelled by request")
            return True
        if self.adopt:
            if run.stage.name in self._was_running:
                self._fail(run, "error", "its unit vanished without a result (executor had died)")
                return True
            return False
        return self._launch(run)

    def _take_cached(self, run: StageRun) -> bool:
        assert run.parts is not None
        name = run.stage.name

        def damaged(damage: Damage, condemned: Condemned) -> None:
            msg = damage_warning(damage, condemned)
            print(f"blut: warning: stage {name}: {msg}", file=sys.stderr)
            self._emit(Log(job=self.job.id, stage=name, level="warning", msg=msg))

        entry = self.cache.get(run.parts.key, on_damage=damaged)
        if entry is None:
            return False
        self.cache.pin(self.job.id, [entry.key])
        run.artifact, run.phase = entry.hash, "done"
        if self._done_before.get(name) != entry.hash:
            self._emit(
                StageCached(job=self.job.id, stage=name, artifact=entry.hash, producer=entry.job)
            )
            self._sync(save=True)
        self._release(run)
        return True

    def _reattach(self, run: StageRun) -> bool:
        """Pick up this stage's unit from an earlier executor, if it is for the same key."""
        import json

        name = run.stage.name
        files = self._stage_paths(name)
        try:
            record = json.loads(files.launch.read_text())
        except (OSError, ValueError):
            return False
        assert run.parts is not None
        if not isinstance(record, dict) or record.get("key") != run.parts.key:
            return False
        handle = self.launcher.find(self.job.spec.stage_unit(name), files.result)
        if handle is None:
            return False
        if self.job.spec.ray_address is not None or files.relayed.exists():
            run.relay = Relay(files)  # resumes at the offset its last copy recorded
        state = self.launcher.state(handle)
        started = record.get("started")
        if state.phase == "running":
            gpus = [g for g in record.get("gpus", []) if isinstance(g, int)]
            if not self.gpus.reacquire(gpus):
                return False
            self.slots.take(run.stage.resources)
            run.handle, run.gpus, run.phase = handle, gpus, "running"
            run.started = float(started) if isinstance(started, int | float) else time.time()
            self._emit(
                Log(job=self.job.id, stage=name, msg=f"re-attached to running unit {handle.name}")
            )
            return True
        outcome = state.outcome
        if outcome is None:
            return False
        if outcome.ok and run.stage.cacheable:
            if not files.staging.is_dir():
                return False  # its output is gone: run it again
        elif name not in self._was_running:
            return False  # its outcome was recorded by an earlier run: run it again
        self.slots.take(run.stage.resources)
        run.handle, run.phase = handle, "running"
        run.started = float(started) if isinstance(started, int | float) else time.time()
        self._complete(run, outcome)
        return True

    def _resume_earlier(self, name: str, key: str) -> None:
        """Take over an earlier job's checkpoints for this key when the stage has none
        (`blut.jobs.attempts`)."""
        files = self._stage_paths(name)
        if has_state(files):
            return
        jobs_dir = self.job.dir.parent

        def running(other: str) -> bool:
            result = JobPaths(jobs_dir / other).stage(name).result
            handle = self.launcher.find(stage_unit(other, name), result)
            return handle is not None and self.launcher.state(handle).phase == "running"

        earlier = find_earlier(jobs_dir, self.job.id, name, key, running)
        if earlier is None:
            return
        try:
            moved = take_over(earlier, files)
        except OSError as exc:
            msg = f"could not take over job {earlier.job}'s checkpoints: {exc}; starting over"
            self._emit(Log(job=self.job.id, stage=name, level="warning", msg=msg))
            return
        msg = f"resuming from job {earlier.job}'s {' and '.join(moved)} (same key; moved here)"
        self._emit(Log(job=self.job.id, stage=name, msg=msg))

    def _launch(self, run: StageRun) -> bool:
        from blut.containment.errors import ContainmentError
        from blut.containment.spec import UnitSpec

        stage, job = run.stage, self.job
        res = stage.resources
        on_cluster = job.spec.ray_address is not None  # its GPUs are the cluster's, not ours
        why = self.slots.never_fits(res)
        if (
            why is None
            and not on_cluster
            and res.gpu
            and res.gpu > self.gpus.count
            and not res.cpu_fallback
        ):
            why = f"needs {res.gpu} GPU(s) but this machine has {self.gpus.count}" + (
                " (no NVIDIA driver/NVML found)" if self.gpus.count == 0 else ""
            )
        if why is not None:
            self._fail(run, "error", f"stage {stage.name} {why}")
            return True
        if not self.slots.fits(res):
            return False
        gpus: list[int] = []
        if res.gpu and not on_cluster and self.gpus.count >= res.gpu:
            allocated = self.gpus.allocate(res.gpu)
            if allocated is None:
                return False
            gpus = allocated
        # On a cluster a stage that may fall back to the CPU runs as its CPU process count:
        # whether it gets a GPU is only known where it lands.
        cluster_gpus = 0 if res.cpu_fallback else res.gpu
        processes = process_count(stage, cluster_gpus if on_cluster else len(gpus))
        try:
            argv = launch_argv(stage, processes)
        except JobsError as exc:
            self.gpus.release(gpus)
            self._fail(run, "error", str(exc))
            return True
        job.stage_dir(stage.name)
        files = self._stage_paths(stage.name)
        if stage.cacheable:
            try:
                args = launch_args(stage, self.cache.objects)
            except JobsError as exc:
                self.gpus.release(gpus)
                self._fail(run, "error", str(exc))
                return True
            assert run.parts is not None
            self._resume_earlier(stage.name, run.parts.key)
            _discard(files.staging)
            files.staging.mkdir(mode=0o700)
            # What the stage reads as it starts, and what a restarted executor re-attaches
            # by: records of this boot (units do not outlive it), so not fsynced.
            atomic_write_json(files.args, args, durable=False)
            atomic_write_json(files.inputs, self._inputs(stage.name), durable=False)
        env = stage_env(
            os.environ,
            home=job.dir.parent.parent,
            job_dir=job.dir,
            job_id=job.id,
            stage=stage.name,
            contained=self._contained,
            gpus=gpus,
            own=stage.is_payload,
            relayed=on_cluster,
        )
        unit = UnitSpec(
            name=job.spec.stage_unit(stage.name),
            argv=argv,
            log_path=files.log,
            result_path=files.result,
            env=env,
            env_file=job.paths.env,
            umask=PRIVATE_UMASK if stage.is_payload else job.spec.umask,
            cwd=Path(job.spec.cwd),
            memory_max=stage.memory_max,
            timeout=stage.timeout,
            description=f"blut job {job.id} ({self.plan.name}) stage {stage.name}",
            tty=Path(job.spec.tty) if job.spec.tty and stage.name == self._foreground else None,
            placement=self._placement(stage) if on_cluster else None,
        )
        assert run.parts is not None
        run.started = time.time()
        atomic_write_json(
            files.launch,
            {
                "key": run.parts.key,
                "gpus": gpus,
                "processes": processes,
                "unit": unit.name,
                "started": run.started,
            },
            durable=False,
        )
        run.gpus, run.node_noted = gpus, False
        run.relay = Relay.start(files, job.status_path) if on_cluster else None
        try:
            handle = self.launcher.launch(unit)
        except ContainmentError as exc:
            self._fail(run, "error", f"could not launch: {exc}")
            return True
        self.slots.take(res)
        run.handle, run.phase = handle, "running"
        self._emit(
            StageStarted(
                job=job.id,
                stage=stage.name,
                unit=unit.name,
                launcher=self.launcher.kind,
                memory_max=stage.memory_max,
                contained=self._contained,
                log=str(unit.log_path),
                gpus=list(gpus) or None,
            )
        )
        if unit.tty is not None:
            msg = f"attached to the terminal {unit.tty}: its output goes there, not to its log"
            self._emit(Log(job=job.id, stage=stage.name, msg=msg))
        if processes > 1:
            how = "one per GPU" if gpus else "CPU, gloo"
            msg = f"running as {processes} processes under torchrun ({how})"
            self._emit(Log(job=job.id, stage=stage.name, msg=msg))
        self._check_limit(run)
        self._sync(save=True)
        return True

    def _placement(self, stage: StageDef) -> Placement:
        """What ``stage`` reserves on the cluster: its CPUs, GPUs and custom resources."""
        from blut.containment.spec import Placement

        res = stage.resources
        pins = self.job.spec.ray_resources.get(stage.name, {})
        return Placement(cpus=res.cpu, gpus=res.gpu, resources=pins, gpus_optional=res.cpu_fallback)

    @property
    def _cwd(self) -> Path:
        return Path(self.job.spec.cwd)

    def _deps(self, name: str) -> list[StageRun]:
        return [self.runs[d] for d in self.plan.deps[name]]

    def _moved_sources(self, stage: StageDef, parts: KeyParts) -> str | None:
        """Which external inputs differ now from those ``parts`` was keyed by, if any."""
        if not parts.sources:
            return None
        try:
            now = stage_sources(stage, self._cwd, lambda: self.cache)
        except InputGone as exc:
            return f"{exc} (it was there when the stage started)"
        moved = [n for n, digest in parts.sources.items() if now.get(n) != digest]
        if not moved:
            return None
        paths = stage_paths(stage, self._cwd)
        names = ", ".join(f"input {stage.name}.{n} ({paths[n]})" for n in moved)
        return f"{names} changed while the stage ran"

    def _inputs(self, name: str) -> list[dict[str, str]]:
        """inputs.json: one entry per upstream artifact, in dependency order."""
        out = []
        for dep in self.plan.deps[name]:
            digest = self.runs[dep].artifact or ""
            out.append(
                {
                    "stage": dep,
                    "kind": str(self.plan.stages[dep].output),
                    "path": str(self.cache.object_path(digest)),
                    "hash": digest,
                }
            )
        return out

    def _check_limit(self, run: StageRun) -> None:
        from blut.containment.cgroup import unapplied_limit

        requested = run.stage.memory_max
        if requested is None or not self._contained or run.handle is None:
            return
        msg = unapplied_limit(run.handle.name, requested, self.launcher.memory_limit(run.handle))
        if msg is None:
            return
        print(f"blut: warning: {msg}", file=sys.stderr)
        self._emit(Log(job=self.job.id, stage=run.stage.name, level="warning", msg=msg))

    # -- supervision --------------------------------------------------------------

    def _poll(self) -> bool:
        """Look at every running stage; True when one of them ended.

        A stage's result record (written by its unit's ExecStopPost) is read on every
        call; systemd is asked about the unit (state, memory) at most every :data:`TICK`.
        A stage on a cluster node has its new events relayed at most every
        :data:`RELAY_EVERY` (the rest when it ends, before its end is recorded).
        """
        from blut.containment.result import outcome_from_record, read_record

        now = time.monotonic()
        ended = False
        for run in self.runs.values():
            if run.phase != "running" or run.handle is None:
                continue
            if run.relay is not None and now - run.relayed_at >= RELAY_EVERY:
                run.relayed_at = now
                run.relay.pump(self._stream())
            record = read_record(run.handle.result_path)
            if record is not None:
                self._complete(run, outcome_from_record(record))
                ended = True
                continue
            if now - run.asked < TICK:
                continue
            run.asked = now
            self._note_node(run)
            state = self.launcher.state(run.handle)
            if state.phase == "finished" and state.outcome is not None:
                self._complete(run, state.outcome)
                ended = True
            elif state.phase == "unknown":
                run.unknown_since = run.unknown_since or now
                if now - run.unknown_since > VANISHED_AFTER:
                    from blut.containment.spec import Outcome

                    self._complete(run, Outcome("error", detail="unit vanished without a result"))
                    ended = True
            else:
                run.unknown_since = None
                self._sample(run, state.memory_current)
        return ended

    def _note_node(self, run: StageRun) -> None:
        """Say once which node runs a stage sent to a cluster (loudly when it runs
        uncontained there: that node has no user manager)."""
        from blut.containment.noderun import read_node_note
        from blut.containment.ray import KIND

        if run.node_noted or run.handle is None or run.handle.launcher != KIND:
            return
        note = read_node_note(run.handle.result_path)
        if note is None:
            return
        run.node_noted = True
        name = run.stage.name
        self._emit(
            StagePlaced(
                job=self.job.id,
                stage=name,
                node=note.node,
                launcher=note.launcher,
                contained=note.launcher == "systemd",
            )
        )
        if note.warning:
            self._emit(Log(job=self.job.id, stage=name, level="warning", msg=note.warning))
            return
        msg = f"runs on node {note.node} (contained by its {note.launcher} user manager)"
        self._emit(Log(job=self.job.id, stage=name, msg=msg))

    def _sample(self, run: StageRun, current: int | None) -> None:
        if current is None:
            return
        run.peak = max(run.peak or 0, current)
        if run.last_sample is None or abs(current - run.last_sample) > 1 << 20:
            run.last_sample = current
            self._emit(
                Resources(
                    job=self.job.id,
                    stage=run.stage.name,
                    memory_bytes=current,
                    memory_max=run.stage.memory_max,
                )
            )

    def _complete(self, run: StageRun, outcome: Outcome) -> None:
        name = run.stage.name
        self._note_node(run)
        if run.relay is not None:  # the stage's last events come before its end
            run.relay.pump(self._stream(), final=True)
            run.relay = None
        staging = self._stage_paths(name).staging
        if not outcome.ok:
            full = self._out_of_space_cause(name, outcome)  # measured before the discard
            _discard(staging)
            self._cancel_requested()  # a stage cancel may have stopped it just now
            cancelled = self._cancelling or run.cancelled or name in self._stage_cancels
            detail = "cancelled by request" if cancelled else outcome.detail
            if full and not cancelled:
                detail = f"{full}; {outcome.detail}"
            reason = _reason(outcome, cancelled)
            if reason in RETRIED and not full and run.retried < self.retries:
                self._retry(run, detail)
                return
            self._fail(run, reason, detail, outcome)
            return
        artifact = None
        if run.stage.cacheable:
            assert run.parts is not None
            from blut.jobs.cache import CacheError

            moved = self._moved_sources(run.stage, run.parts)
            if moved:
                _discard(staging)
                self._fail(
                    run, "error", f"{moved}; its output was not cached (run it again)", outcome
                )
                return
            parents = [d.parts.key for d in self._deps(name) if d.parts is not None]
            try:
                entry = self.cache.commit(
                    run.parts, staging, job=self.job.id, stage=name, parents=parents
                )
            except (CacheError, DiskFull, OSError) as exc:
                _discard(staging)
                why = (
                    f"{disk_full_detail(self.home)}; its output was not cached"
                    if is_disk_full(exc, self.home)
                    else f"could not commit the output: {exc}"
                )
                self._fail(run, "error", why, outcome)
                return
            self.cache.pin(self.job.id, [entry.key])
            artifact = entry.hash
        run.artifact, run.phase = artifact, "done"
        self._emit(
            StageDone(
                job=self.job.id,
                stage=name,
                artifact=artifact,
                seconds=time.time() - run.started,
                peak_mem=outcome.peak_memory or run.peak,
            )
        )
        self._release(run)
        self._trim_checkpoints(name)
        self._sync(save=True)

    def _retry(self, run: StageRun, detail: str) -> None:
        """Run a failed stage again (it goes back to pending; its unit is launched anew)."""
        run.retried += 1
        name = run.stage.name
        self._emit(
            Log(
                job=self.job.id,
                stage=name,
                level="warning",
                msg=f"stage {name} failed ({detail}); retry {run.retried} of {self.retries}",
            )
        )
        self._release(run)
        run.phase, run.peak, run.last_sample = "pending", None, None
        self._sync(save=True)

    def _out_of_space_cause(self, name: str, outcome: Outcome) -> str | None:
        """``disk full (…)`` when stage ``name`` failed (exit, signal, error) while little was
        free under BLUT_HOME, or its log's last lines say it ran out of space."""
        if outcome.kind not in ("exit", "signal", "error"):
            return None  # out of memory, a timeout: their own cause
        free = free_bytes(self.home)
        if free is not None and free < NEARLY_FULL:
            return disk_full_detail(self.home)
        try:
            with self._stage_paths(name).log.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - LOG_TAIL))
                tail = log.read().decode(errors="replace")
        except OSError:
            return None
        return disk_full_detail(self.home) if ran_out_of_space(tail) else None

    def _trim_checkpoints(self, name: str) -> None:
        """Trim a succeeded stage's checkpoints to the job's policy (`blut.jobs.retention`);
        what went is logged, and a failure to trim is only a warning."""
        import sqlite3

        from blut.jobs.cache import CacheError
        from blut.jobs.retention import describe, kept_checkpoints, paths_in_use, trim_stage

        keep = kept_checkpoints(self.job)
        store = JobStore(self.job.dir.parent.parent)
        try:
            done = trim_stage(self.job, name, keep, lambda: paths_in_use(store, self.cache))
        except (OSError, CacheError, sqlite3.Error) as exc:
            msg = f"could not trim its checkpoints: {exc}"
            self._emit(Log(job=self.job.id, stage=name, level="warning", msg=msg))
            return
        if done is not None and (done.removed or done.protected):
            self._emit(Log(job=self.job.id, stage=name, msg=describe(done, keep)))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the executor unit."""
    go_private()
    args = sys.argv[1:] if argv is None else argv
    adopt = args[:1] == ["--adopt"]
    args = args[1:] if adopt else args
    if len(args) != 1:
        print("usage: python -m blut.jobs.executor [--adopt] JOB_DIR", file=sys.stderr)
        return 2
    from blut.jobs.cache import Cache
    from blut.jobs.commandplan import plan_of

    job_dir = Path(args[0]).resolve()
    home = job_dir.parent.parent
    job = JobStore(home).load(job_dir)

    def make_launcher() -> Launcher:
        from blut.containment.select import cluster_launcher, launcher_for

        return cluster_launcher(launcher_for(job.spec.launcher, probe=False), job.spec.ray_address)

    executor = Executor(
        job,
        plan_of(job),
        make_launcher,
        lambda: Cache(home),
        gpus=GpuPool(home / LOCKS_DIR),
        slots=Slots(
            cpu=job.spec.cpu_slots
            or (CLUSTER_SLOTS if job.spec.ray_address else os.cpu_count())
            or 1,
            stages=job.spec.max_stages or None,
        ),
        adopt=adopt,
    )

    def on_term(signum: int, frame: FrameType | None) -> None:
        executor.cancel = True

    signal.signal(signal.SIGTERM, on_term)
    try:
        return executor.run()
    finally:
        executor.close()
        if "cache" in executor.__dict__:
            executor.cache.close()


if __name__ == "__main__":
    sys.exit(main())
