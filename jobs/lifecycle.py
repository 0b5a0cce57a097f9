"""The one job lifecycle: start a job's executor, tell whether it lives, reconcile it.

Every job, a recipe or a `blut run` command, is a plan run by the executor
(`blut.jobs.executor`) as the job's own unit ``blut-<job>``. Reconcile handles a
job whose executor is gone before it recorded an outcome (killed, OOM, reboot):

- a stage unit of the job still runs → a new executor is started in adopt mode:
  it re-attaches to the orphan, records its outcome when it ends, and honours
  cancel requests meanwhile;
- nothing of the job runs → an adopting executor runs in this process: it records
  what the stages' result records say, and fails the job only for stages that no
  result explains.

Whoever submits a job holds its lock until its executor unit started, and
reconcile takes the same lock, so a job being submitted is never mistaken for
one whose executor died.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from blut.containment.envfile import write_env_file
from blut.containment.errors import ContainmentError
from blut.containment.spec import UnitSpec
from blut.jobs.environment import executor_env, job_env
from blut.jobs.errors import JobsError
from blut.jobs.store import Job
from blut.status.events import JobFailed
from blut.status.flock import is_held
from blut.status.jobstate import JobView
from blut.status.layout import LOCKS_DIR, executor_lock
from blut.status.private import PRIVATE_UMASK

if TYPE_CHECKING:  # the executor and the cache load only when a job is finished or adopted here
    from blut.containment.launcher import Launcher
    from blut.jobs.plan import Plan

EXECUTOR_MODULE = "blut.jobs.executor"


def _home(job: Job) -> Path:
    return job.dir.parent.parent


def start_executor(job: Job, launcher: Launcher, *, adopt: bool = False) -> None:
    """Start ``python -m blut.jobs.executor JOB_DIR`` as the job's own unit ``blut-<job>``.

    A job whose executor cannot start is recorded as failed (and raised), never left queued.
    """
    if not job.paths.env.exists():  # a job submitted before its environment had a file
        write_env_file(job.paths.env, job_env(os.environ))
    argv = [sys.executable, "-m", EXECUTOR_MODULE, *(["--adopt"] if adopt else []), str(job.dir)]
    unit = UnitSpec(
        name=job.spec.driver_unit,
        argv=argv,
        log_path=job.driver_log,
        result_path=job.driver_result,
        env=executor_env(os.environ, home=_home(job), contained=launcher.kind == "systemd"),
        env_file=job.paths.env,
        umask=PRIVATE_UMASK,
        cwd=Path(job.spec.cwd),
        description=f"blut job {job.id} ({job.spec.name}) executor",
    )
    try:
        launcher.launch(unit)
    except ContainmentError as exc:
        job.emit(JobFailed(job=job.id, reason="error", detail=f"executor did not start: {exc}"))
        job.save_summary()
        raise JobsError(f"job {job.id} could not start: {exc}") from exc


def finish_or_start(job: Job, plan: Plan, launcher: Launcher) -> None:
    """Finish ``job`` here if every stage is cached; otherwise start its executor unit."""
    if not any(stage.cacheable for stage in plan.stages.values()):
        start_executor(job, launcher)
        return
    from blut.jobs.cache import Cache
    from blut.jobs.executor import finish_if_cached

    cache = Cache(_home(job))
    try:
        done = finish_if_cached(job, plan, cache)
    finally:
        cache.close()
    if not done:
        start_executor(job, launcher)


def executor_running(job: Job) -> bool:
    """True while the job's executor runs: it holds the job's liveness lock (a cheap
    check that asks systemd nothing)."""
    return is_held(executor_lock(_home(job), job.id))


def executor_alive(job: Job, launcher: Launcher) -> bool:
    """True while the job's executor runs (it holds the job's liveness lock) or its unit
    is starting."""
    if executor_running(job):
        return True
    handle = launcher.find(job.spec.driver_unit, job.driver_result)
    return handle is not None and launcher.state(handle).phase == "running"


def running_stages(job: Job, launcher: Launcher) -> list[str]:
    """The job's stages whose units run now."""
    running = []
    for stage in job.spec.stages:
        handle = launcher.find(job.spec.stage_unit(stage), job.result_path(stage))
        if handle is not None and launcher.state(handle).phase == "running":
            running.append(stage)
    return running


def job_active(job: Job, launcher: Launcher) -> bool:
    """True while anything of the job runs: its executor (or its unit, starting), or a
    unit of one of its stages."""
    return executor_alive(job, launcher) or bool(running_stages(job, launcher))


def reconcile(job: Job, launcher: Launcher) -> JobView:
    """The job's state, with an outcome its executor could not record recovered.

    See the module docstring. Never records a failure while a unit of the job runs.
    """
    from blut.jobs.cache import Cache
    from blut.jobs.commandplan import plan_of
    from blut.jobs.executor import Executor
    from blut.jobs.slots import GpuPool

    view = job.view()
    if view.terminal or executor_alive(job, launcher):
        return view
    with job.lock():
        view = job.view()
        if view.terminal or executor_alive(job, launcher):
            return view
        if running_stages(job, launcher):
            start_executor(job, launcher, adopt=True)
            return job.view()
        try:
            plan = plan_of(job)
        except JobsError as exc:
            job.emit(JobFailed(job=job.id, reason="error", detail=f"the executor died and {exc}"))
            return job.save_summary()
        adopter = Executor(
            job,
            plan,
            lambda: launcher,
            lambda: Cache(_home(job)),
            gpus=GpuPool(_home(job) / LOCKS_DIR, list),
            in_process=True,
            adopt=True,
        )
        try:
            adopter.run()
        finally:
            if "cache" in adopter.__dict__:
                adopter.cache.close()
            adopter.close_writer()
        return adopter.index.view
