"""Submit a command as a job: store it, then start its detached driver."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from blut.containment.errors import ContainmentError
from blut.containment.launcher import Launcher
from blut.containment.select import choose_launcher
from blut.containment.spec import UnitSpec
from blut.containment.systemd import resolve_program
from blut.jobs.errors import JobsError, UsageError
from blut.jobs.store import Job, JobStore
from blut.status.events import JobFailed, JobSubmitted, Log

# Session-specific variables a detached job must not inherit.
_SESSION_VARS = ("SSH_AUTH_SOCK", "SSH_CLIENT", "SSH_CONNECTION", "SSH_TTY", "TERM", "DISPLAY")


def job_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The submitter's environment minus terminal/SSH-session variables."""
    return {k: v for k, v in environ.items() if k not in _SESSION_VARS and "\n" not in v}


def submit(
    store: JobStore,
    argv: Sequence[str],
    *,
    name: str | None = None,
    memory_max: int | None = None,
    timeout: float | None = None,
    cwd: Path | None = None,
    contained: bool = True,
) -> tuple[Job, str | None]:
    """Create the job and start its driver; returns the job and a containment warning."""
    if not argv or not argv[0].strip():
        raise UsageError("no command given: use `blut run [OPTIONS] -- COMMAND [ARGS...]`")
    if name is not None and (not name.strip() or not name.isprintable()):
        raise UsageError(f"invalid job name {name!r}: use printable characters")
    workdir = (cwd or Path.cwd()).resolve()
    try:
        resolve_program(argv[0], os.environ.get("PATH"))
    except ContainmentError as exc:
        raise UsageError(str(exc)) from exc
    launcher, warning = choose_launcher(contained)
    job = store.create(
        name=name or Path(argv[0]).name,
        argv=list(argv),
        cwd=str(workdir),
        launcher=launcher.kind,
        memory_max=memory_max,
        timeout=timeout,
    )
    job.emit(
        JobSubmitted(
            job=job.id, name=job.spec.name, argv=list(argv), memory_max=memory_max, timeout=timeout
        )
    )
    if warning:
        job.emit(Log(job=job.id, level="warning", msg=warning))
    start_driver(job, launcher, store.home, "blut.jobs.driver", role="driver")
    return job, warning


def start_driver(job: Job, launcher: Launcher, home: Path, module: str, *, role: str) -> None:
    """Start ``python -m module JOB_DIR`` as the job's own unit ``blut-<job>``.

    A job whose driver cannot start is recorded as failed (and raised), never left queued.
    """
    env = job_env(os.environ)
    env.update(BLUT_HOME=str(home), BLUT_CONTAINED="1" if launcher.kind == "systemd" else "0")
    unit = UnitSpec(
        name=job.spec.driver_unit,
        argv=[sys.executable, "-m", module, str(job.dir)],
        log_path=job.driver_log,
        result_path=job.driver_result,
        env=env,
        cwd=Path(job.spec.cwd),
        description=f"blut job {job.id} ({job.spec.name}) {role}",
    )
    try:
        launcher.launch(unit)
    except ContainmentError as exc:
        job.emit(JobFailed(job=job.id, reason="error", detail=f"{role} did not start: {exc}"))
        raise JobsError(f"job {job.id} could not start: {exc}") from exc
