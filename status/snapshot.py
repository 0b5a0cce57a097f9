"""The snapshot bundle: a deterministic tar of one checkpoint of a stage, and reading it back.

A bundle holds ``snapshot.json`` (the manifest: format, recipe, stage, epoch,
step, the stage's resolved config, the job's args, blut's version), the
checkpoint's files under ``checkpoint/`` and the metric rows so far as
``metrics.jsonl``. Entries are sorted by name, every mtime is 0, owners are
0/0 without names, modes are 0644/0755 and names are relative: the same files
give the same bytes on any machine and any ``$BLUT_HOME``, so a bundle is named
by the blake3 of its bytes (`blut.jobs.snapshots`).

Columns and meta fields that measure a run (wall time, throughput, memory)
are left out of the metric rows and the checkpoint meta: two runs that reach
the same state give the same bundle.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from blut.status.errors import StatusError

FORMAT = 1
MANIFEST = "snapshot.json"
CHECKPOINT = "checkpoint"
METRICS = "metrics.jsonl"
MARKER = "snapshot"
"""The file a restored checkpoint folder holds: the id of the snapshot it came from."""
MEASURED = frozenset({"seconds", "samples_per_s", "peak_rss"})
"""Metric columns that measure the run rather than its state."""


def canonical(value: Any) -> bytes:
    """Sorted, compact JSON with a final newline (the same value → the same bytes)."""
    return (json.dumps(value, sort_keys=True, separators=(",", ":")) + "\n").encode()


def state_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` without its measured columns."""
    return {k: v for k, v in row.items() if k not in MEASURED}


def checkpoint_meta(raw: bytes) -> bytes:
    """An epoch checkpoint's ``.meta.json`` without the measured part of its metric row."""
    meta = json.loads(raw)
    if isinstance(meta.get("metrics"), dict):
        meta["metrics"] = state_row(meta["metrics"])
    return canonical(meta)


Member = tuple[str, bytes | Path]
"""A bundle entry: its relative name and its bytes or the file that holds them."""


def _info(name: str, size: int, *, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.uid, info.gid = size, 0, 0, 0
    info.uname = info.gname = ""
    info.mode = 0o755 if directory else 0o644
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    return info


def check_name(name: str) -> str:
    """``name`` if it is a plain relative path inside a bundle; a `StatusError` otherwise."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
        raise StatusError(f"bad snapshot entry name {name!r}")
    return name


def write_bundle(out: IO[bytes], members: Iterable[Member]) -> None:
    """Write a deterministic, uncompressed tar of ``members`` (sorted by name) to ``out``."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, body in sorted(members, key=lambda m: m[0]):
            check_name(name)
            if isinstance(body, Path):
                with body.open("rb") as f:
                    tar.addfile(_info(name, body.stat().st_size), f)
            else:
                tar.addfile(_info(name, len(body)), io.BytesIO(body))


@dataclass(frozen=True)
class Bundle:
    """A bundle file opened for reading: its manifest and its entry names."""

    path: Path
    manifest: dict[str, Any]
    names: list[str]

    def read(self, name: str) -> bytes:
        """The bytes of entry ``name``."""
        with tarfile.open(self.path, mode="r:") as tar:
            f = tar.extractfile(name)
            if f is None:
                raise StatusError(f"{self.path.name}: {name} is not a file")
            return f.read()

    def metric_rows(self) -> list[dict[str, Any]]:
        """The metric rows so far (empty when the bundle has none)."""
        if METRICS not in self.names:
            return []
        return [json.loads(line) for line in self.read(METRICS).splitlines() if line.strip()]

    def extract_checkpoint(self, dest: Path) -> list[Path]:
        """Write the ``checkpoint/`` entries into ``dest`` (which must exist); their paths."""
        written = []
        with tarfile.open(self.path, mode="r:") as tar:
            for info in tar.getmembers():
                parts = PurePosixPath(info.name).parts
                if parts[0] != CHECKPOINT or len(parts) < 2 or not info.isfile():
                    continue
                target = dest.joinpath(*parts[1:])
                target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                source = tar.extractfile(info)
                assert source is not None
                with target.open("wb") as f:
                    while chunk := source.read(1 << 20):
                        f.write(chunk)
                written.append(target)
        return written


def open_bundle(path: Path) -> Bundle:
    """Read a bundle's manifest and check its entries; a `StatusError` when it is not one."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            infos = tar.getmembers()
            for info in infos:
                check_name(info.name)
                if not (info.isfile() or info.isdir()):
                    raise StatusError(f"{path.name}: entry {info.name!r} is not a plain file")
            f = tar.extractfile(MANIFEST) if MANIFEST in tar.getnames() else None
            if f is None:
                raise StatusError(f"{path.name} is not a snapshot (no {MANIFEST})")
            manifest = json.loads(f.read())
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise StatusError(f"{path.name} is not a readable snapshot ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StatusError(f"{path.name}: unknown snapshot format (this blut reads {FORMAT})")
    return Bundle(path, manifest, [i.name for i in infos])
