"""The job store: ``$BLUT_HOME/jobs/<job-id>/`` with job.json, status.jsonl and stages/.

Everything blut writes lives under ``$BLUT_HOME`` (default
``~/.local/share/blut``), created with mode 0700.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from blut.jobs.diskfull import DiskFull, is_disk_full
from blut.jobs.errors import JobsError, UsageError, clip
from blut.status.atomic import atomic_write_json
from blut.status.errors import StatusError
from blut.status.events import Event
from blut.status.flock import locked
from blut.status.jobstate import JobView
from blut.status.layout import JOBS_DIR, LOCKS_DIR, JobPaths
from blut.status.private import private_dir
from blut.status.reserve import JOB_RESERVE, hold
from blut.status.summary import JobIndex, current_view
from blut.status.writer import append_event

MAIN_STAGE = "main"
MAX_NAME = 200
"""Most characters in a job name or a job reference."""


HOME_ENTRIES = frozenset({JOBS_DIR, LOCKS_DIR, "cache", "policy.toml", "snapshots"})
"""What blut keeps directly under ``$BLUT_HOME``."""


def home_path() -> Path:
    """``$BLUT_HOME`` or ``~/.local/share/blut`` (neither created nor checked)."""
    raw = os.environ.get("BLUT_HOME")
    return Path(raw).expanduser() if raw else Path.home() / ".local" / "share" / "blut"


def blut_home() -> Path:
    """:func:`home_path`, created 0700 on first use, and made 0700 if it is open to others."""
    home = home_path()
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        _make_private(home)
    except OSError as exc:
        raise UsageError(f"cannot create BLUT_HOME {home}: {exc.strerror}") from exc
    if not os.access(home, os.W_OK | os.X_OK):
        raise UsageError(f"BLUT_HOME {home} is not writable (set BLUT_HOME to a folder of yours)")
    return home


def _make_private(home: Path) -> None:
    """chmod 700 a home open to others when it is ours and holds only blut's files; a
    `UsageError` with the fix otherwise (it may be a shared folder such as /tmp)."""
    info = home.stat()
    mode = stat.S_IMODE(info.st_mode)
    if not mode & 0o077:
        return
    where = f"BLUT_HOME {home} is open to other users (mode {mode:o})"
    if info.st_uid != os.geteuid():
        raise UsageError(f"{where} and not yours: set BLUT_HOME to a folder of yours")
    foreign = sorted({p.name for p in home.iterdir()} - HOME_ENTRIES)
    if foreign or mode & stat.S_ISVTX:
        what = f"holds {clip(foreign[0])!r}, which is not blut's" if foreign else "is shared"
        raise UsageError(
            f"{where} and {what}: run `chmod 700 {home}`, or set BLUT_HOME to a folder of its own"
        )
    home.chmod(0o700)


def stage_unit(job_id: str, stage: str) -> str:
    """The unit name of stage ``stage`` of job ``job_id``."""
    return f"blut-{job_id}-{stage}"


@dataclass(frozen=True)
class JobSpec:
    """What a job runs, as frozen in job.json when it was submitted.

    ``argv`` is the command of a `blut run` job; ``recipe`` names the recipe of a
    recipe job (None for a command). Either way the job's stages are a plan run
    by the executor (`blut.jobs.executor`).
    """

    id: str
    name: str
    argv: list[str]
    cwd: str
    launcher: str
    created: float
    memory_max: int | None = None
    timeout: float | None = None
    stages: list[str] = field(default_factory=lambda: [MAIN_STAGE])
    recipe: str | None = None
    umask: int | None = None
    """The submitter's umask, which a command's stage runs with (None: the launcher's)."""
    retain_checkpoints: int | None = None
    """Checkpoints each succeeded stage keeps (`blut.jobs.retention`; None: the default)."""
    stage: str | None = None
    """The stage a `blut stage run` job was cut down to (its plan: it and its upstream)."""
    tty: str | None = None
    """The terminal that stage runs attached to (``--foreground``): it always runs, never
    served from the cache, with this pseudo-terminal as its stdin, stdout and stderr."""
    input_bytes: int | None = None
    """Bytes of the external inputs its args name (`blut.jobs.history`; None: not recorded)."""
    cpu_slots: int | None = None
    """CPU slots its stages share (`blut.jobs.policy`; None or 0: one per core)."""
    max_stages: int | None = None
    """Stages running at once (`blut.jobs.policy`; None or 0: no cap)."""
    retries: int | None = None
    """Times a failed stage runs again (`blut.jobs.policy`; None or 0: never)."""
    policy_notes: dict[str, str] = field(default_factory=dict)
    """Stage → what the policy decided for it (shown by `blut plan inspect`)."""
    snapshot: dict[str, Any] | None = None
    """The snapshot a stage started from (`blut.jobs.snapshots.Start.record`; None: none)."""
    telemetry: dict[str, Any] | None = None
    """The telemetry sinks its stages feed (`blut.status.telemetry.Record`; None: none)."""
    ray_address: str | None = None
    """Its stages run on this Ray cluster (``--launcher ray``; `blut.containment.ray`)."""
    ray_resources: dict[str, dict[str, float]] = field(default_factory=dict)
    """Stage → the Ray custom resources it needs (``--ray-resource``: pins it to nodes)."""

    @property
    def driver_unit(self) -> str:
        """The unit name of the job's executor."""
        return f"blut-{self.id}"

    def stage_unit(self, stage: str) -> str:
        """The unit name of one stage."""
        return stage_unit(self.id, stage)


@dataclass(frozen=True)
class Job:
    """A job's folder and its frozen spec; state comes from :meth:`view`."""

    dir: Path
    spec: JobSpec

    @property
    def id(self) -> str:
        """The job id."""
        return self.spec.id

    @property
    def paths(self) -> JobPaths:
        """Every file of the job folder (the layout lives in `blut.status.layout`)."""
        return JobPaths(self.dir)

    @property
    def status_path(self) -> Path:
        """The job's event stream."""
        return self.paths.status

    @property
    def driver_log(self) -> Path:
        """Output of the job's executor."""
        return self.paths.driver_log

    @property
    def driver_result(self) -> Path:
        """The executor unit's result record."""
        return self.paths.driver_result

    @property
    def plan_path(self) -> Path:
        """``plan.json``: the job's stages."""
        return self.paths.plan

    @property
    def is_recipe(self) -> bool:
        """True for a recipe job, False for a `blut run` job (one stage running a command)."""
        if self.spec.recipe is not None:
            return True
        # Jobs submitted before job.json named the recipe: the executor was their argv.
        return self.spec.argv[1:3] == ["-m", "blut.jobs.executor"]

    def stage_dir(self, stage: str) -> Path:
        """``stages/<stage>/``, created on demand."""
        return private_dir(self.paths.stage(stage).dir)

    def log_path(self, stage: str) -> Path:
        """stdout+stderr of a stage."""
        return self.paths.stage(stage).log

    def result_path(self, stage: str) -> Path:
        """The result record of a stage's unit."""
        return self.paths.stage(stage).result

    def emit(self, event: Event) -> None:
        """Append one event to the job's stream."""
        append_event(self.status_path, event)

    def view(self, *, save: bool = False) -> JobView:
        """The job's state: its index summary plus what was appended since.

        ``save``: write the summary back when it was missing, damaged or far behind.
        """
        return current_view(self.paths, self.id, save=save)

    def save_summary(self) -> JobView:
        """Bring the job's summary up to date with its stream (after recording an outcome)."""
        index = JobIndex(self.paths, self.id)
        index.refresh()
        index.save()
        return index.view

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock for whoever records the job's outcome."""
        with locked(self.paths.lock):
            yield


def _new_id() -> str:
    return (
        time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(2).hex()
    )  # os, not secrets: its hmac import costs ms


class JobStore:
    """Create, find and list jobs under ``<home>/jobs``."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.jobs_dir = home / JOBS_DIR
        private_dir(self.jobs_dir)

    def create(self, **fields: Any) -> Job:
        """Create a job folder with its job.json; ``fields`` are JobSpec's minus id/created."""
        with self.creating(**fields) as job:
            return job

    @contextmanager
    def creating(self, **fields: Any) -> Iterator[Job]:
        """Create a job (like :meth:`create`) and hold its lock until the block ends.

        A submitter starts the job's executor inside the block, so reconcile,
        which takes the same lock, never mistakes a job still being submitted
        for one whose executor died. When the disk fills up before the block ends,
        the folder is removed and `DiskFull` raised: no half-made job is left.
        """
        while True:
            job_id = _new_id()
            job_dir = self.jobs_dir / job_id
            try:
                job_dir.mkdir(mode=0o700)
                break
            except FileExistsError:
                continue
        job = Job(job_dir, JobSpec(id=job_id, created=time.time(), **fields))
        try:
            with job.lock():
                hold(job.paths.reserve, JOB_RESERVE)
                atomic_write_json(job.paths.spec, asdict(job.spec))
                yield job
        except (OSError, JobsError, StatusError) as exc:
            if not is_disk_full(exc, self.home):
                raise
            # A job is made whole or not at all: a half-written folder would list as failed.
            shutil.rmtree(job_dir, ignore_errors=True)
            raise DiskFull(self.home, "no job was created") from exc

    def respec(self, job: Job, **changes: Any) -> Job:
        """``job`` with these fields of its spec changed, written to its job.json (the
        caller holds the job's lock: `blut plan resume` moving it to another launcher)."""
        from dataclasses import replace

        moved = Job(job.dir, replace(job.spec, **changes))
        atomic_write_json(moved.paths.spec, asdict(moved.spec))
        return moved

    def load(self, job_dir: Path) -> Job:
        """The job stored in ``job_dir``."""
        try:
            data = json.loads(JobPaths(job_dir).spec.read_text())
            return Job(job_dir, JobSpec(**data))
        except (OSError, ValueError, TypeError) as exc:
            raise JobsError(f"{job_dir}: unreadable job.json ({exc})") from exc

    def ids(self) -> list[str]:
        """The ids of every job folder with a job.json, oldest first (ids sort by time)."""
        with os.scandir(self.jobs_dir) as entries:
            names = [e.name for e in entries if not e.name.startswith(".") and e.is_dir()]
        return sorted(n for n in names if JobPaths(self.jobs_dir / n).spec.exists())

    def paths(self, job_id: str) -> JobPaths:
        """The folder layout of ``job_id`` (which need not exist)."""
        return JobPaths(self.jobs_dir / job_id)

    def all(self) -> list[Job]:
        """Every readable job, oldest first (see `unreadable` for the others)."""
        return self.scan()[0]

    def scan(self) -> tuple[list[Job], list[str]]:
        """Every readable job, oldest first, and one message per job dir that cannot be read."""
        jobs, unreadable = [], []
        for job_dir in sorted(self.jobs_dir.iterdir()):
            if JobPaths(job_dir).spec.is_file():
                try:
                    jobs.append(self.load(job_dir))
                except JobsError as exc:
                    unreadable.append(str(exc))
        return jobs, unreadable

    def get(self, ref: str) -> Job:
        """A job by full id, unique id prefix or suffix, or name (the newest with it)."""
        if len(ref) > MAX_NAME:
            raise UsageError(f"job reference too long ({len(ref)} characters; at most {MAX_NAME})")
        if not ref or "/" in ref or ref.startswith("."):
            raise UsageError(f"invalid job id {ref!r}")
        exact = self.jobs_dir / ref
        if JobPaths(exact).spec.is_file():
            return self.load(exact)
        jobs = self.all()
        matches = [j for j in jobs if j.id.startswith(ref) or j.id.endswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            ids = ", ".join(j.id for j in matches[:5])
            raise UsageError(f"job id {ref!r} is ambiguous: {ids}")
        named = [j for j in jobs if j.spec.name == ref]
        if named:
            return named[-1]
        raise UsageError(f"no such job: {ref!r} (see `blut jobs --all`)")
