"""`blut jobs prune`: remove finished jobs' folders (the listing itself is `blut jobs`)."""

from __future__ import annotations

import time

import click

from blut.commands.common import note, out, store


@click.command()
@click.option("--older-than", metavar="AGE", help="Only jobs that ended this long ago, e.g. 30d.")
@click.option(
    "--keep-last", type=click.IntRange(min=0), metavar="N", help="Always keep the N newest."
)
@click.option("--failed", is_flag=True, help="Only failed and cancelled jobs.")
@click.option("--dry-run", "-n", is_flag=True, help="Show what would go; remove nothing.")
def prune(older_than: str | None, keep_last: int | None, failed: bool, dry_run: bool) -> None:
    """Remove finished jobs' folders (logs, checkpoints, metrics); running jobs, and jobs
    holding a path the cache still names, stay."""
    from blut.jobs.api import prune_jobs
    from blut.jobs.prune import JobsPruneRule
    from blut.jobs.quantities import format_duration, format_size, parse_duration

    rule = JobsPruneRule(
        older_than=parse_duration(older_than) if older_than is not None else None,
        keep_last=keep_last,
        failed=failed,
    )
    report = prune_jobs(store(), rule, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    now = time.time()
    for job in report.removed:
        ended = f"ended {format_duration(max(0.0, now - job.ended))} ago"
        out.print(
            f"{verb} {job.id}  {job.name:<16} {job.state:<9} {ended:<16} {format_size(job.size)}",
            markup=False,
        )
    for problem in report.unreadable:
        note(f"warning: skipped a job: {problem}", "yellow")
    kept = []
    if report.active:
        kept.append(f"{len(report.active)} not finished or still running kept")
    if report.in_use:
        kept.append(f"{len(report.in_use)} kept: the cache or a running job names a path in them")
    n = len(report.removed)
    note(
        f"{verb} {n} job{'' if n == 1 else 's'}, freeing {format_size(report.freed)} of "
        f"{format_size(report.total_before)} in job folders" + "".join(f"; {k}" for k in kept),
        "default",
    )
