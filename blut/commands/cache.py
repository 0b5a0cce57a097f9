"""`blut cache ls|prune|verify|explain`: the content-addressed stage cache."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click
from click.exceptions import Exit

from blut.commands.common import Group, check_format, format_option, job_argument, note, out, store

if TYPE_CHECKING:
    from blut.jobs.cache import Cache

app = Group("cache", help="The stage cache: list, prune, verify, explain.", no_args_is_help=True)


@contextmanager
def _open() -> Iterator[Cache]:
    from blut.jobs.cache import Cache
    from blut.jobs.store import blut_home

    cache = Cache(blut_home())
    try:
        yield cache
    finally:
        cache.close()


@app.command("ls")
@format_option
def ls(fmt: str) -> None:
    """Every cached stage output: size, age, last use, the job that made it."""
    from rich.table import Table

    from blut.jobs.quantities import format_duration, format_size

    check_format(fmt)
    with _open() as cache:
        entries = sorted(cache.entries(), key=lambda e: e.last_used, reverse=True)
        total = cache.total_size()
    if fmt == "json":
        out.print_json(
            json.dumps({"total_bytes": total, "entries": [e.to_dict(parts=False) for e in entries]})
        )
        return
    if not entries:
        note("the cache is empty")
        return
    now = time.time()
    table = Table(box=None, header_style="bold", pad_edge=False)
    for header in ("KEY", "STAGE", "SIZE", "AGE", "LAST USED", "JOB"):
        table.add_column(header, no_wrap=True)
    for e in entries:
        table.add_row(
            e.key[:12],
            e.stage or "-",
            format_size(e.size),
            format_duration(now - e.created),
            format_duration(now - e.last_used) + " ago",
            e.job or "-",
        )
    out.print(table)
    out.print(f"{len(entries)} entries, {format_size(total)} on disk (shared objects counted once)")


@app.command()
@click.option("--max-size", help="Shrink the cache to at most this, e.g. 50G.")
@click.option("--older-than", help="Drop entries unused this long, e.g. 30d.")
@click.option("--keep-last", type=click.IntRange(min=0), help="Always keep the N newest entries.")
@click.option("--dry-run", "-n", is_flag=True, help="Show what would go; remove nothing.")
def prune(
    max_size: str | None, older_than: str | None, keep_last: int | None, dry_run: bool
) -> None:
    """Remove entries in least-recently-used order; entries in use by running jobs stay."""
    from blut.jobs.errors import UsageError
    from blut.jobs.quantities import format_size, parse_duration, parse_size

    if max_size is None and older_than is None:
        raise UsageError("say what to prune: --max-size SIZE and/or --older-than AGE")
    with _open() as cache:
        report = cache.prune(
            max_size=parse_size(max_size) if max_size is not None else None,
            older_than=parse_duration(older_than) if older_than is not None else None,
            keep_last=keep_last,
            dry_run=dry_run,
        )
    verb = "would remove" if dry_run else "removed"
    for entry in report.removed:
        out.print(f"{verb} {entry.key[:12]}  {entry.stage or '-':<12} {format_size(entry.size)}")
    kept = f"; {report.pinned} in use by running jobs kept" if report.pinned else ""
    note(
        f"{verb} {len(report.removed)} entries, freeing {format_size(report.freed)} "
        f"of {format_size(report.total_before)}{kept}",
        "default",
    )


@app.command()
def verify() -> None:
    """Re-hash every object; corrupt ones are quarantined with every entry computed from
    them (exit 1 when any is found)."""
    with _open() as cache:
        report = cache.verify()
    for digest in report.corrupt:
        note(f"corrupt object {digest[:12]} quarantined", "bold red")
    for entry in report.condemned.derived:
        note(
            f"entry {entry.key[:12]} ({entry.stage or '-'}, job {entry.job or '-'}) was "
            "computed from corrupt bytes: dropped",
            "bold red",
        )
    for digest in report.missing:
        note(f"missing object {digest[:12]} (index entry dropped)", "bold red")
    for digest in report.orphans:
        note(f"orphan object {digest[:12]} (no index entry) quarantined", "yellow")
    bad = len(report.corrupt) + len(report.missing)
    cascade = f" ({report.condemned.summary()})" if report.corrupt else ""
    note(
        f"checked {report.checked} objects: {bad} bad{cascade}, {len(report.orphans)} orphans",
        "default",
    )
    if bad:
        raise Exit(1)


@app.command()
@job_argument
@click.argument("stage", help="The stage.")
def explain(job_ref: str, stage: str) -> None:
    """Why a stage ran (what differs from the closest cached key) or was reused (the job
    that computed its output); while the job runs or after it ended."""
    from blut.jobs.api import explain_stage

    jobs = store()
    for line in explain_stage(jobs, jobs.get(job_ref), stage):
        out.print(line, markup=False)
