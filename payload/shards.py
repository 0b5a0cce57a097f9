"""Shards of rows (Parquet or Arrow IPC files) and the manifest that lists them.

A `ShardWriter` buffers tables and writes a shard every ``shard_rows`` rows, so
memory stays bounded by the shard size. ``manifest.json`` records the kind, the
schema, rows, date span, tickers, each shard (file, rows, blake3) and a content
hash over the shards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import blake3
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from blut.payload.errors import InputError
from blut.status.private import private_dir

MANIFEST = "manifest.json"
Format = Literal["parquet", "arrow"]


def file_hash(path: Path) -> str:
    """blake3 of a file's bytes, hex."""
    return blake3.blake3(path.read_bytes()).hexdigest()


@dataclass
class ShardWriter:
    """Writes ``part-NNNNN.<fmt>`` files of ``shard_rows`` rows (the last may be shorter)."""

    directory: Path
    shard_rows: int
    fmt: Format = "parquet"
    shards: list[dict[str, Any]] = field(default_factory=list)
    _buffer: list[pa.Table] = field(default_factory=list)
    _buffered: int = 0
    _schema: pa.Schema | None = None

    def add(self, table: pa.Table) -> None:
        """Buffer ``table``; write full shards."""
        if table.num_rows == 0:
            return
        self._schema = self._schema or table.schema
        self._buffer.append(table)
        self._buffered += table.num_rows
        while self._buffered >= self.shard_rows:
            self._flush(self.shard_rows)

    def close(self) -> pa.Schema | None:
        """Write what is left; the schema of the rows written (None if none were)."""
        if self._buffered:
            self._flush(self._buffered)
        return self._schema

    def _flush(self, rows: int) -> None:
        table = pa.concat_tables(self._buffer).combine_chunks()
        shard, rest = table.slice(0, rows), table.slice(rows)
        self._buffer, self._buffered = ([rest], rest.num_rows) if rest.num_rows else ([], 0)
        path = self.directory / f"part-{len(self.shards):05d}.{self.fmt}"
        private_dir(self.directory)
        if self.fmt == "parquet":
            pq.write_table(shard, path)
        else:
            with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, shard.schema) as writer:
                writer.write_table(shard, max_chunksize=max(rows, 1))
        dates = shard.column("date")
        self.shards.append(
            {
                "file": path.name,
                "rows": shard.num_rows,
                "first_date": str(pc.min(dates)),
                "last_date": str(pc.max(dates)),
                "tickers": pc.unique(shard.column("ticker")).to_pylist(),
                "blake3": file_hash(path),
            }
        )


def write_manifest(
    directory: Path, kind: str, writer: ShardWriter, schema: pa.Schema | None, **extra: Any
) -> dict[str, Any]:
    """Write ``directory/manifest.json`` for ``writer``'s shards; returns it."""
    shards = writer.shards
    tickers = sorted({t for s in shards for t in s["tickers"]})
    content = blake3.blake3("".join(s["blake3"] for s in shards).encode()).hexdigest()
    manifest = {
        "kind": kind,
        "format": writer.fmt,
        "rows": sum(s["rows"] for s in shards),
        "first_date": min((s["first_date"] for s in shards), default=None),
        "last_date": max((s["last_date"] for s in shards), default=None),
        "tickers": tickers,
        "schema": {f.name: str(f.type) for f in schema} if schema is not None else {},
        "shards": shards,
        "content_hash": content,
        **extra,
    }
    private_dir(directory)
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(directory: Path, kind: str) -> dict[str, Any]:
    """The manifest in ``directory``; :class:`InputError` if missing or of another kind."""
    try:
        manifest: dict[str, Any] = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError as exc:
        raise InputError(f"{directory}: no {MANIFEST} (expected a {kind!r} artifact)") from exc
    if manifest.get("kind") != kind:
        raise InputError(f"{directory}: a {manifest.get('kind')!r} artifact, expected {kind!r}")
    return manifest


def read_shard(directory: Path, shard: dict[str, Any]) -> pa.Table:
    """One shard as a table (Arrow IPC files are memory-mapped, zero copy)."""
    path = directory / shard["file"]
    if path.suffix == ".arrow":
        return ipc.open_file(pa.memory_map(str(path))).read_all()
    return pq.read_table(path)
