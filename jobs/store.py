"""The job store: ``$BLUT_HOME/jobs/<job-id>/`` with job.json, status.jsonl and stages/.

Everything blut writes lives under ``$BLUT_HOME`` (default
``~/.local/share/blut``), created with mode 0700.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from blut.jobs.errors import JobsError, UsageError
from blut.status.events import Event
from blut.status.jobstate import JobView, fold
from blut.status.tailer import read_events
from blut.status.writer import append_event

MAIN_STAGE = "main"


def blut_home() -> Path:
    """``$BLUT_HOME`` or ``~/.local/share/blut``; created 0700 on first use."""
    raw = os.environ.get("BLUT_HOME")
    home = Path(raw).expanduser() if raw else Path.home() / ".local" / "share" / "blut"
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise UsageError(f"cannot create BLUT_HOME {home}: {exc.strerror}") from exc
    if not os.access(home, os.W_OK | os.X_OK):
        raise UsageError(f"BLUT_HOME {home} is not writable (set BLUT_HOME to a folder of yours)")
    return home


@dataclass(frozen=True)
class JobSpec:
    """What a job runs, as frozen in job.json when it was submitted."""

    id: str
    name: str
    argv: list[str]
    cwd: str
    launcher: str
    created: float
    memory_max: int | None = None
    timeout: float | None = None
    stages: list[str] = field(default_factory=lambda: [MAIN_STAGE])

    @property
    def driver_unit(self) -> str:
        """The unit name of the job's driver."""
        return f"blut-{self.id}"

    def stage_unit(self, stage: str) -> str:
        """The unit name of one stage."""
        return f"blut-{self.id}-{stage}"


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
    def status_path(self) -> Path:
        """The job's event stream."""
        return self.dir / "status.jsonl"

    @property
    def driver_log(self) -> Path:
        """Output of the job's driver."""
        return self.dir / "driver.log"

    @property
    def driver_result(self) -> Path:
        """The driver unit's result record."""
        return self.dir / "driver.result"

    @property
    def plan_path(self) -> Path:
        """``plan.json``: present only for recipe jobs (run by the executor)."""
        return self.dir / "plan.json"

    @property
    def is_recipe(self) -> bool:
        """True for a recipe job (a plan of stages), False for a `blut run` job."""
        return self.plan_path.is_file()

    def stage_dir(self, stage: str) -> Path:
        """``stages/<stage>/``, created on demand."""
        path = self.dir / "stages" / stage
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def log_path(self, stage: str) -> Path:
        """stdout+stderr of a stage."""
        return self.dir / "stages" / stage / "log"

    def result_path(self, stage: str) -> Path:
        """The result record of a stage's unit."""
        return self.dir / "stages" / stage / "result"

    def emit(self, event: Event) -> None:
        """Append one event to the job's stream."""
        append_event(self.status_path, event)

    def view(self) -> JobView:
        """The job's state, folded from its events."""
        return fold(self.id, read_events(self.status_path))

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock for whoever records the job's outcome."""
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _new_id() -> str:
    return (
        time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(2).hex()
    )  # os, not secrets: its hmac import costs ms


class JobStore:
    """Create, find and list jobs under ``<home>/jobs``."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.jobs_dir = home / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def create(self, **fields: Any) -> Job:
        """Create a job folder with its job.json; ``fields`` are JobSpec's minus id/created."""
        while True:
            job_id = _new_id()
            job_dir = self.jobs_dir / job_id
            try:
                job_dir.mkdir(mode=0o700)
                break
            except FileExistsError:
                continue
        spec = JobSpec(id=job_id, created=time.time(), **fields)
        tmp = job_dir / "job.json.tmp"
        tmp.write_text(json.dumps(asdict(spec), indent=2) + "\n")
        tmp.replace(job_dir / "job.json")
        return Job(job_dir, spec)

    def load(self, job_dir: Path) -> Job:
        """The job stored in ``job_dir``."""
        try:
            data = json.loads((job_dir / "job.json").read_text())
            return Job(job_dir, JobSpec(**data))
        except (OSError, ValueError, TypeError) as exc:
            raise JobsError(f"{job_dir}: unreadable job.json ({exc})") from exc

    def all(self) -> list[Job]:
        """Every readable job, oldest first (see `unreadable` for the others)."""
        return self.scan()[0]

    def scan(self) -> tuple[list[Job], list[str]]:
        """Every readable job, oldest first, and one message per job dir that cannot be read."""
        jobs, unreadable = [], []
        for job_dir in sorted(self.jobs_dir.iterdir()):
            if (job_dir / "job.json").is_file():
                try:
                    jobs.append(self.load(job_dir))
                except JobsError as exc:
                    unreadable.append(str(exc))
        return jobs, unreadable

    def get(self, ref: str) -> Job:
        """A job by full id, unique id prefix or suffix, or name (the newest with it)."""
        if not ref or "/" in ref or ref.startswith("."):
            raise UsageError(f"invalid job id {ref!r}")
        exact = self.jobs_dir / ref
        if (exact / "job.json").is_file():
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
