"""`blut snapshot create|list|show|prune|export|import`: bundles of a run's train state."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from blut.commands.common import Group, check_format, format_option, job_argument, note, out, store

if TYPE_CHECKING:
    from blut.jobs.snapshots import Snapshot, SnapshotStore

app = Group(
    "snapshot",
    help="Snapshots of a run's train state: create, list, show, prune, export, import.",
    no_args_is_help=True,
)


def _snapshots() -> SnapshotStore:
    from blut.jobs.snapshots import SnapshotStore
    from blut.jobs.store import blut_home

    return SnapshotStore(blut_home())


def _line(snap: Snapshot) -> str:
    from blut.jobs.quantities import format_size

    m = snap.manifest
    where = f"epoch {m['epoch']}" if m.get("epoch") is not None else f"step {m.get('step')}"
    return f"{snap.id[:12]}  {m.get('recipe')}/{m.get('stage')} {where}  {format_size(snap.size)}"


@app.command()
@job_argument
@click.argument("stage", required=False, help="The stage (default: the one with checkpoints).")
@click.option("--epoch", type=click.IntRange(min=0), help="Snapshot this epoch's checkpoint.")
@click.option("--step", type=click.IntRange(min=0), help="Snapshot the checkpoint at this step.")
def create(job_ref: str, stage: str | None, epoch: int | None, step: int | None) -> None:
    """Pack a checkpoint (newest unless --epoch/--step), config, versions and metrics; print
    its id (the blake3 of the bundle: the same state gives the same id)."""
    from blut.jobs.errors import UsageError

    if epoch is not None and step is not None:
        raise UsageError("give --epoch or --step, not both")
    snap = _snapshots().create(store().get(job_ref), stage, epoch=epoch, step=step)
    note(_line(snap))
    out.print(snap.id)


@app.command("list")
@format_option
def list_(fmt: str) -> None:
    """Every snapshot of this home, newest last."""
    from blut.jobs.quantities import format_duration

    check_format(fmt)
    snaps = _snapshots().all()
    if fmt == "json":
        out.print_json(json.dumps([s.to_dict() for s in snaps]))
        return
    if not snaps:
        note("no snapshots")
        return
    now = time.time()
    for snap in snaps:
        origin = snap.origin.get("job") or snap.origin.get("imported") or "-"
        age = format_duration(now - snap.created)
        out.print(f"{_line(snap)}  {age} ago  from {origin}", markup=False)


@app.command()
@click.argument("snapshot_id", metavar="ID", help="Snapshot id or unique prefix.")
def show(snapshot_id: str) -> None:
    """A snapshot's manifest, origin and entries, as JSON."""
    snap = _snapshots().get(snapshot_id)
    out.print_json(json.dumps({**snap.to_dict(), "entries": snap.bundle().names}))


@app.command()
@click.option("--older-than", help="Remove snapshots stored longer ago than this, e.g. 30d.")
@click.option("--keep-last", type=click.IntRange(min=0), help="Always keep the N newest.")
@click.option("--dry-run", "-n", is_flag=True, help="Show what would go; remove nothing.")
def prune(older_than: str | None, keep_last: int | None, dry_run: bool) -> None:
    """Remove snapshots by age and/or beyond the newest N."""
    from blut.jobs.errors import UsageError
    from blut.jobs.quantities import format_size, parse_duration

    if older_than is None and keep_last is None:
        raise UsageError("say what to prune: --older-than AGE and/or --keep-last N")
    age = parse_duration(older_than) if older_than is not None else None
    gone = _snapshots().prune(older_than=age, keep_last=keep_last, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for snap in gone:
        out.print(f"{verb} {_line(snap)}", markup=False)
    note(f"{verb} {len(gone)} snapshots ({format_size(sum(s.size for s in gone))})", "default")


@app.command()
@click.argument("snapshot_id", metavar="ID", help="Snapshot id or unique prefix.")
@click.argument("file", type=click.Path(path_type=Path), help="Where to write the bundle.")
def export(snapshot_id: str, file: Path) -> None:
    """Copy a snapshot's bundle to FILE (a plain tar; `blut snapshot import` reads it)."""
    snap = _snapshots().export(snapshot_id, file)
    note(f"exported {snap.id[:12]} to {file}")


@app.command("import")
@click.argument("file", type=click.Path(path_type=Path), help="A bundle written by export.")
def import_(file: Path) -> None:
    """Store a bundle in this home; print its id."""
    snap = _snapshots().import_(file)
    note(_line(snap))
    out.print(snap.id)
