"""Submit a recipe run as a job, and resume one: store the plan, start the executor unit.

A job whose every stage is already cached is finished in the submitting process
(`finish_if_cached`): a fully cached re-run starts no unit.

A recipe job's folder holds job.json (``stages`` = the plan's stage names in
topological order, so `blut cancel` finds every stage unit), plan.json,
args.json (the resolved args), status.jsonl and ``stages/<stage>/``. Its driver
unit ``blut-<job>`` runs ``python -m blut.jobs.executor JOB_DIR``.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from blut.containment.launcher import Launcher
from blut.containment.select import choose_launcher, launcher_for
from blut.jobs.cache import Cache
from blut.jobs.errors import UsageError
from blut.jobs.executor import finish_if_cached
from blut.jobs.plan import Plan
from blut.jobs.recipes import RecipeDef
from blut.jobs.reconcile import driver_running
from blut.jobs.store import Job, JobStore
from blut.jobs.submit import start_driver
from blut.status.events import JobSubmitted, Log

EXECUTOR_MODULE = "blut.jobs.executor"


def new_sweep_id() -> str:
    """An id grouping the jobs of one ``--sweep``."""
    return "sweep-" + time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def start_executor(job: Job, launcher: Launcher, home: Path) -> None:
    """Start the job's executor as its driver unit ``blut-<job>``."""
    start_driver(job, launcher, home, EXECUTOR_MODULE, role="executor")


def finish_or_start(job: Job, plan: Plan, cache: Cache, launcher: Launcher, home: Path) -> None:
    """Finish ``job`` here if every stage is cached; otherwise start its executor unit."""
    if not finish_if_cached(job, plan, cache):
        start_executor(job, launcher, home)


def submit_recipe(
    store: JobStore,
    recipe: RecipeDef,
    args: Mapping[str, Any],
    *,
    sweep: str | None = None,
    contained: bool = True,
    cwd: Path | None = None,
) -> tuple[Job, str | None]:
    """Compile ``args`` (already resolved), store the job and start its executor.

    Returns the job and a containment warning (None when contained as asked).
    """
    plan = recipe.build(args)
    cache = Cache(store.home)  # a broken cache index fails here, before the job exists
    try:
        launcher, warning = choose_launcher(contained)
        job = store.create(
            name=recipe.name,
            argv=[sys.executable, "-m", EXECUTOR_MODULE],
            cwd=str((cwd or Path.cwd()).resolve()),
            launcher=launcher.kind,
            stages=plan.order(),
        )
        plan.save(job.plan_path)
        (job.dir / "args.json").write_text(json.dumps(dict(args), indent=2) + "\n")
        job.emit(JobSubmitted(job=job.id, name=recipe.name, recipe=recipe.name, sweep=sweep))
        if warning:
            job.emit(Log(job=job.id, level="warning", msg=warning))
        finish_or_start(job, plan, cache, launcher, store.home)
    finally:
        cache.close()
    return job, warning


def resume(store: JobStore, job: Job) -> None:
    """Start a new executor for ``job`` (``blut plan resume``); refused while one runs."""
    if not job.plan_path.is_file():
        raise UsageError(f"job {job.id} is not a recipe job (no plan.json)")
    plan = Plan.load(job.plan_path)  # a damaged plan.json fails here, not in a detached executor
    if job.view().state == "succeeded":
        raise UsageError(f"job {job.id} already succeeded; nothing to resume")
    cache = Cache(store.home)
    launcher = launcher_for(job.spec.launcher)
    try:
        if driver_running(job, launcher):
            raise UsageError(f"job {job.id} is still running; nothing to resume")
        finish_or_start(job, plan, cache, launcher, store.home)
    finally:
        launcher.close()
        cache.close()
