"""`blut plan inspect|resume`: a recipe job's stages, and continuing a stopped one."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from click.exceptions import Exit

from blut.commands.common import (
    Group,
    check_format,
    chosen_cluster,
    cluster_given,
    cluster_options,
    detach_option,
    format_option,
    job_argument,
    note,
    out,
    store,
)
from blut.commands.following import follow_job

if TYPE_CHECKING:
    from blut.jobs.store import Job

app = Group("plan", help="A recipe job's plan: inspect it, resume it.", no_args_is_help=True)


@app.command()
@job_argument
@format_option
def inspect(job_ref: str, fmt: str) -> None:
    """The stage DAG: each stage's state, cache key, artifact hash, timing, peak vs ceiling."""
    from rich.text import Text
    from rich.tree import Tree

    from blut.cockpit.render import STATE_STYLES
    from blut.jobs.planview import stage_rows
    from blut.jobs.quantities import format_duration

    check_format(fmt)
    job = store().get(job_ref)
    rows = stage_rows(job)
    if fmt == "json":
        out.print_json(json.dumps({"job": job.id, "stages": [r.to_dict() for r in rows]}))
        return
    view = job.view()
    title = Text.assemble((f"{job.id} ", "bold"), f"{job.spec.name}: ")
    title.append(view.state, style=STATE_STYLES.get(view.state, ""))
    limits = [
        f"{job.spec.cpu_slots} cpu slots" if job.spec.cpu_slots else None,
        f"at most {job.spec.max_stages} stages at once" if job.spec.max_stages else None,
        f"{job.spec.retries} retries per stage" if job.spec.retries else None,
    ]
    if any(limits):
        title.append("  policy: " + ", ".join(x for x in limits if x), style="cyan")
    tree = Tree(title)
    nodes: dict[str, Tree] = {}
    for row in rows:
        label = Text.assemble((row.name, "bold"), " ")
        state = row.state if row.reason is None else f"{row.state}/{row.reason}"
        label.append(state, style=STATE_STYLES.get(row.state, "dim"))
        facts = [
            f"reused from job {row.producer}" if row.producer else None,
            f"key {row.key[:12]}" if row.key else None,
            f"artifact {row.artifact[:12]}" if row.artifact else None,
            format_duration(row.seconds) if row.seconds is not None else None,
            _memory(row.peak_memory, row.memory_max),
            f"slots cpu {row.cpu}" + (f" gpu {row.gpu}" if row.gpu else ""),
            f"also after {', '.join(row.after[1:])}" if len(row.after) > 1 else None,
        ]
        label.append("  " + "  ".join(f for f in facts if f), style="dim")
        if row.policy:
            label.append(f"\npolicy: {row.policy}", style="cyan")
        if row.detail:
            label.append(f"\n{row.detail}", style="yellow")
        parent = nodes[row.after[0]] if row.after else tree
        nodes[row.name] = parent.add(label)
    out.print(tree)


def _memory(peak: int | None, ceiling: int | None) -> str:
    """``peak 81.0 MiB of 256.0 MiB``, or what is known of the two."""
    from blut.jobs.quantities import format_size

    if peak and ceiling:
        return f"peak {format_size(peak)} of {format_size(ceiling)}"
    if peak:
        return f"peak {format_size(peak)} (no ceiling)"
    return f"max {format_size(ceiling)}" if ceiling else "no ceiling"


@app.command()
@job_argument
@detach_option
@cluster_options
def resume(job_ref: str, detach: bool) -> None:
    """Continue a stopped recipe job: cached stages are skipped, running units re-attached."""
    from blut.jobs.api import Mark
    from blut.jobs.api import resume as resume_job

    jobs = store()
    job = jobs.get(job_ref)
    asked, mark = time.time(), Mark.now(job)  # follow the new run only
    job = resume_job(jobs, job, cluster=chosen_cluster() if cluster_given() else True)
    if not _restarted(job, since=asked):
        note(f"job {job.id}: its executor has not started yet; see {job.driver_log}", "yellow")
    note(f"job {job.id} resumed")
    if detach:
        out.print(job.id)
        return
    raise Exit(follow_job(job, since=mark))


def _restarted(job: Job, *, since: float, timeout: float = 15.0) -> bool:
    """Wait until the new executor announced itself (so following starts from its run)."""
    from blut.status.events import JobStarted
    from blut.status.tailer import Tailer

    events = Tailer(job.status_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(isinstance(e, JobStarted) and e.ts >= since for e in events.read()):
            return True
        time.sleep(0.1)
    return False
