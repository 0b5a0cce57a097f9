"""Run snapshots under ``$BLUT_HOME/snapshots/``: create, list, find, prune, export, import, restore.

A snapshot is one checkpoint of a job's stage packed as a deterministic bundle
(`blut.status.snapshot`), stored as ``<blake3 of its bytes>.tar``; beside it
``<id>.json`` records where this home got it from (job, or the imported file)
and when. Like the cache's objects the bundles are immutable files named by
their content, kept behind the same `Store` interface (`blut.jobs.objectstore`),
so they can later move to an object store; the sidecars are this home's notes.

A recipe run ``--from-snapshot ID`` takes the snapshot's job args as its base
(``--set`` on top), passes ``from_snapshot=ID`` to the stage (so its cache key
differs from a run from scratch) and gets the checkpoint restored into the
stage's ``checkpoints/`` before it starts: the stage resumes from it, exactly
when the config is the same, as a branch when ``--set`` changed it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blake3 import blake3

import blut
from blut.jobs.errors import UsageError, clip
from blut.jobs.objectstore import LocalStore, Store
from blut.jobs.snapshotorigin import ARG, describe_origin
from blut.jobs.store import Job
from blut.status.atomic import atomic_file, atomic_write, atomic_write_json
from blut.status.checkpoints import Checkpoint, checkpoints
from blut.status.errors import StatusError
from blut.status.metrics import MetricsWriter, read_metrics
from blut.status.private import private_dir
from blut.status.snapshot import (
    CHECKPOINT,
    MARKER,
    METRICS,
    Bundle,
    Member,
    canonical,
    checkpoint_meta,
    open_bundle,
    state_row,
    write_bundle,
)

SNAPSHOTS_DIR = "snapshots"
BUNDLE_SUFFIX = ".tar"
_NOT_COMPARED = frozenset({ARG, "memory_max", "processes"})
_NOT_STATE = frozenset({"training_args.bin"})
"""Checkpoint files left out of a bundle: the HF Trainer's pickled TrainingArguments (an
absolute output path, a timestamped logging dir) is a record, not state — a resumed run
trains with its own args."""


@dataclass(frozen=True)
class Snapshot:
    """One stored snapshot: its id, bundle and where this home got it."""

    id: str
    path: Path
    manifest: dict[str, Any]
    origin: dict[str, Any]
    size: int
    """Bytes of the bundle."""
    created: float
    """When this home stored it."""

    def bundle(self) -> Bundle:
        """The bundle, opened."""
        return open_bundle(self.path)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: id, size, manifest, origin."""
        return {"id": self.id, "size": self.size, **self.manifest, "origin": self.origin}


def _choose_stage(job: Job, stage: str | None) -> str:
    if stage is not None:
        if stage not in job.spec.stages:
            raise UsageError(f"job {job.id} has no stage {clip(stage)!r}")
        return stage
    with_points = [s for s in job.spec.stages if checkpoints(job.paths.stage(s).checkpoints)]
    if len(with_points) != 1:
        found = ", ".join(with_points) or "none"
        raise UsageError(f"job {job.id}: name the stage (stages with checkpoints: {found})")
    return with_points[0]


def _meta(point: Checkpoint) -> dict[str, Any]:
    metas = [p for p in point.paths if p.name.endswith(".meta.json")]
    return json.loads(metas[0].read_text()) if metas else {}


def _choose_point(
    job: Job, stage: str, epoch: int | None, step: int | None
) -> tuple[Checkpoint, list[Checkpoint]]:
    points = [p for p in checkpoints(job.paths.stage(stage).checkpoints) if p.complete]
    if not points:
        raise UsageError(f"job {job.id} stage {stage} has no checkpoint")
    kept = ", ".join(p.name for p in points)
    trimmed = (
        f"(older ones are trimmed: keep more with {stage}.keep_checkpoints, and after "
        "success with [retention] checkpoints)"
    )
    if epoch is not None:
        found = [p for p in points if p.name == f"epoch-{epoch:04d}"]
        if not found:
            raise UsageError(
                f"job {job.id} stage {stage} has no checkpoint of epoch {epoch}: kept {kept} "
                + trimmed
            )
        return found[0], points
    if step is not None:
        found = [
            p for p in points if p.name == f"checkpoint-{step}" or _meta(p).get("step") == step
        ]
        if not found:
            raise UsageError(
                f"job {job.id} stage {stage} has no checkpoint at step {step}: kept {kept} "
                + trimmed
            )
        return found[0], points
    return points[-1], points


def _checkpoint_members(point: Checkpoint, points: list[Checkpoint], folder: Path) -> list[Member]:
    members: list[Member] = []
    for path in point.paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in (f for f in files if f.name not in _NOT_STATE):
            name = f"{CHECKPOINT}/{f.relative_to(folder).as_posix()}"
            members.append(
                (name, checkpoint_meta(f.read_bytes()) if f.name.endswith(".meta.json") else f)
            )
    listed = {p for c in points for p in c.paths}
    extras = sorted(
        p for p in folder.iterdir() if p not in listed and p.is_file() and p.name != MARKER
    )
    newest = point is points[-1]
    for extra in extras:
        if extra.name == "best.pt" and not newest:
            best_then = _meta(point).get("loop", {}).get("best_epoch")
            best_now = _meta(points[-1]).get("loop", {}).get("best_epoch")
            if best_then != best_now:
                raise UsageError(
                    f"the best weights as of {point.name} were replaced by a later epoch's; "
                    f"snapshot {points[-1].name} instead"
                )
        members.append((f"{CHECKPOINT}/{extra.name}", extra))
    return members


def _metric_rows(job: Job, stage: str, upto: tuple[str, int] | None) -> list[dict[str, Any]]:
    """The stage's metric rows up to the checkpoint (``("epoch", 5)`` or ``("step", 40)``)."""
    folder = job.paths.stage(stage).metrics
    if not folder.is_dir() or not any(folder.iterdir()):
        return []
    try:
        rows = read_metrics(folder).to_pylist()
    except StatusError:
        return []
    kept = [state_row(r) for r in rows if upto is None or (r.get(upto[0]) or 0) <= upto[1]]
    return sorted(kept, key=lambda r: (r.get("epoch") or 0, r.get("step") or 0))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _snapshot(
    snap_id: str, path: Path, manifest: dict[str, Any], origin: dict[str, Any]
) -> Snapshot:
    info = path.stat()
    created = float(origin.get("stored", info.st_mtime))
    return Snapshot(snap_id, path, manifest, origin, info.st_size, created)


class SnapshotStore:
    """The snapshots of one ``$BLUT_HOME``."""

    def __init__(self, home: Path, store: Store | None = None) -> None:
        """``store``: where the bundles go (default: ``$BLUT_HOME/snapshots/<id>.tar``)."""
        self.root = home / SNAPSHOTS_DIR
        self.store = store if store is not None else LocalStore(self.root, BUNDLE_SUFFIX)
        """The bundles, by id."""

    def _sidecar(self, snap_id: str) -> Path:
        return self.root / f"{snap_id}.json"

    def _store(self, write: Any, origin: dict[str, Any]) -> Snapshot:
        """Write a bundle through ``write(file)`` to a scratch file, store it by its blake3."""
        private_dir(self.root)
        tmp = self.store.scratch()
        try:
            with atomic_file(tmp) as f:
                write(f)
            hasher = blake3()
            with tmp.open("rb") as f:
                while chunk := f.read(1 << 20):
                    hasher.update(chunk)
            digest = hasher.hexdigest()
            bundle = open_bundle(tmp)
            self.store.put(digest, tmp)
        except StatusError as exc:
            raise UsageError(str(exc)) from exc
        finally:
            tmp.unlink(missing_ok=True)
        final = self.store.get(digest)
        sidecar = self._sidecar(digest)
        known = _read_json(sidecar)
        if isinstance(known, dict) and "stored" in known:
            origin = known  # stored before: keep where and when it first came from
        else:
            origin = {**origin, "stored": time.time()}
            atomic_write_json(sidecar, origin)
        return _snapshot(digest, final, bundle.manifest, origin)

    def create(
        self,
        job: Job,
        stage: str | None = None,
        *,
        epoch: int | None = None,
        step: int | None = None,
    ) -> Snapshot:
        """Pack a checkpoint of ``job``'s ``stage`` (default: its only stage with checkpoints;
        the newest checkpoint unless ``epoch`` or ``step`` names one)."""
        name = _choose_stage(job, stage)
        point, points = _choose_point(job, name, epoch, step)
        folder = job.paths.stage(name).checkpoints
        meta = _meta(point)
        members = _checkpoint_members(point, points, folder)
        stage_paths = job.paths.stage(name)
        key = _read_json(stage_paths.key) or {}
        step = meta.get("step", point.number if point.name.startswith("checkpoint-") else None)
        upto = ("epoch", meta["epoch"]) if "epoch" in meta else None
        if upto is None and step is not None:
            upto = ("step", step)  # the HF Trainer's: rows per step, flushed at each save
        manifest = {
            "format": 1,
            "recipe": job.spec.recipe,
            "stage": name,
            "checkpoint": point.name,
            "epoch": meta.get("epoch"),
            "step": step,
            "config": _read_json(stage_paths.args),
            "args": _read_json(job.paths.args),
            "versions": {"blut": blut.__version__, "stage_schema": key.get("schema_version")},
        }
        members.append(("snapshot.json", canonical(manifest)))
        rows = _metric_rows(job, name, upto)
        if rows:
            members.append((METRICS, b"".join(canonical(r) for r in rows)))
        return self._store(
            lambda f: write_bundle(f, members), {"job": job.id, "job_name": job.spec.name}
        )

    def all(self) -> list[Snapshot]:
        """Every stored snapshot, oldest first."""
        found = [s for s in map(self._load, self.store.list()) if s is not None]
        return sorted(found, key=lambda s: (s.created, s.id))

    def _load(self, snap_id: str) -> Snapshot | None:
        try:
            path = self.store.get(snap_id)
            bundle = open_bundle(path)
        except (StatusError, FileNotFoundError):
            return None
        origin = _read_json(self._sidecar(snap_id))
        return _snapshot(snap_id, path, bundle.manifest, origin if isinstance(origin, dict) else {})

    def get(self, ref: str) -> Snapshot:
        """A snapshot by id or unique id prefix."""
        if not ref or not all(c in "0123456789abcdef" for c in ref):
            raise UsageError(f"invalid snapshot id {clip(ref)!r} (hex digits)")
        matches = sorted(i for i in self.store.list() if i.startswith(ref))
        if len(matches) > 1:
            raise UsageError(f"snapshot id {ref!r} is ambiguous ({len(matches)} match)")
        snap = self._load(matches[0]) if matches else None
        if snap is None:
            raise UsageError(f"no such snapshot: {ref!r} (see `blut snapshot list`)")
        return snap

    def prune(
        self, *, older_than: float | None, keep_last: int | None, dry_run: bool
    ) -> list[Snapshot]:
        """Remove snapshots older than ``older_than`` seconds and/or beyond the newest
        ``keep_last`` (both: only those matching both); the removed (or, dry, doomed) ones."""
        snaps = self.all()
        now = time.time()
        keep = set()
        if keep_last is not None:
            keep = {s.id for s in snaps[len(snaps) - keep_last :]} if keep_last else set()
        doomed = [
            s
            for s in snaps
            if s.id not in keep and (older_than is None or now - s.created > older_than)
        ]
        if not dry_run:
            for snap in doomed:
                self.store.delete(snap.id)
                self._sidecar(snap.id).unlink(missing_ok=True)
        return doomed

    def export(self, ref: str, dest: Path) -> Snapshot:
        """Copy snapshot ``ref``'s bundle to ``dest`` (a new file)."""
        snap = self.get(ref)
        if dest.exists():
            raise UsageError(f"{dest} exists; not overwritten")
        if not dest.parent.is_dir():
            raise UsageError(f"no folder {dest.parent} to export into")
        try:
            with atomic_file(dest, mode=0o644) as f, snap.path.open("rb") as src:
                shutil.copyfileobj(src, f)
        except OSError as exc:
            raise UsageError(f"cannot write {dest}: {exc.strerror}") from exc
        return snap

    def import_(self, source: Path) -> Snapshot:
        """Store the bundle in ``source``; its id is the blake3 of its bytes."""
        if not source.is_file():
            raise UsageError(f"no such file: {source}")
        try:
            open_bundle(source)
        except StatusError as exc:
            raise UsageError(str(exc)) from exc

        def copy(f: Any) -> None:
            with source.open("rb") as src:
                shutil.copyfileobj(src, f)

        return self._store(copy, {"imported": source.name})


@dataclass(frozen=True)
class Start:
    """How a run starts from a snapshot: the snapshot, and the config keys it changes."""

    snapshot: Snapshot
    stage: str
    changed: dict[str, list[Any]]
    """key → [value in the snapshot, value now]; empty: a continuation."""

    @property
    def branch(self) -> bool:
        """True when the run changes the snapshot's config."""
        return bool(self.changed)

    def record(self) -> dict[str, Any]:
        """What job.json keeps of it."""
        return {
            "id": self.snapshot.id,
            "stage": self.stage,
            "epoch": self.snapshot.manifest.get("epoch"),
            "step": self.snapshot.manifest.get("step"),
            "job": self.snapshot.origin.get("job"),
            "branch": self.branch,
            "changed": self.changed,
        }

    def describe(self) -> str:
        """``branched from snapshot 1a2b… (epoch 5): lr 0.001 → 0.01`` or ``continued from …``."""
        return describe_origin(self.record())


def start(snap: Snapshot, recipe: str, args: Mapping[str, Any], schema: Mapping[str, Any]) -> Start:
    """Check that ``recipe`` can start from ``snap``; what ``args`` change of its config."""
    manifest = snap.manifest
    stage = str(manifest.get("stage"))
    if manifest.get("recipe") != recipe:
        raise UsageError(
            f"snapshot {snap.id[:12]} is of recipe {manifest.get('recipe')}, not {recipe}"
        )
    section = schema.get("properties", {}).get(stage, {}).get("properties", {})
    if ARG not in section:
        raise UsageError(f"stage {stage} of recipe {recipe} cannot start from a snapshot")
    was = {k: v for k, v in (manifest.get("config") or {}).items() if k in section}
    now = args.get(stage) or {}
    changed = {
        k: [was.get(k), now.get(k)]
        for k in sorted(set(was) | set(now))
        if k not in _NOT_COMPARED and was.get(k) != now.get(k)
    }
    return Start(snap, stage, changed)


def base_args(snap: Snapshot, schema: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The snapshot's recipe args without the settings ``schema`` no longer declares (a
    snapshot outlives the blut that made it), and the dotted names of those dropped."""
    args = snap.manifest.get("args")
    if not isinstance(args, dict):
        raise UsageError(f"snapshot {snap.id[:12]} records no recipe args")
    stages = schema.get("properties", {})
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for stage, section in args.items():
        known = stages.get(stage, {}).get("properties")
        if known is None or not isinstance(section, dict):
            kept[stage] = section
            continue
        kept[stage] = {k: v for k, v in section.items() if k in known}
        dropped += [f"{stage}.{k}" for k in section if k not in known]
    return kept, dropped


def with_snapshot(args: Mapping[str, Any], begin: Start) -> dict[str, Any]:
    """``args`` with the stage's ``from_snapshot`` set."""
    out = dict(args)
    out[begin.stage] = {**(args.get(begin.stage) or {}), ARG: begin.snapshot.id}
    return out


def restore(job: Job, begin: Start) -> None:
    """Put the snapshot's checkpoint (with a marker naming it) and metric rows into ``job``'s stage."""
    paths = job.paths.stage(begin.stage)
    job.stage_dir(begin.stage)
    folder = private_dir(paths.checkpoints)
    bundle = begin.snapshot.bundle()
    bundle.extract_checkpoint(folder)
    atomic_write(folder / MARKER, begin.snapshot.id + "\n")
    rows = bundle.metric_rows()
    if not rows:
        return
    writer = MetricsWriter(paths.metrics)
    epoch = begin.snapshot.manifest.get("epoch")
    if epoch is None:  # step checkpoints (HF Trainer): one part up to the step, as saved
        writer.write_epoch(int(begin.snapshot.manifest.get("step") or 0), rows)
        return
    for row in rows:
        writer.write_epoch(int(row.get("epoch") or 0), [row])
