"""Content hashes of external inputs, remembered by file stamp in the cache index.

``input_marks`` maps an input's absolute path to its content hash and the
marks of its files (`blut.jobs.filemarks`), so an unchanged 10 GB model dir
costs one ``stat`` per file, not a re-hash; only files whose stamp changed (or
that were written just before they were hashed, whose stamp cannot be trusted
yet) are hashed again. ``input_trees`` keeps the file list
(relative path → hash) of each content hash of a directory input that a key
named, so `blut cache explain` can say which files changed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

from blut.jobs.diskfull import DiskFull
from blut.jobs.filemarks import dumps, input_stamp, listing, loads, scan, summary
from blut.jobs.indextx import writing

SCHEMA = """
CREATE TABLE IF NOT EXISTS input_marks(path TEXT PRIMARY KEY, hash TEXT NOT NULL,
    stamps TEXT NOT NULL, files TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS input_trees(hash TEXT PRIMARY KEY, files TEXT NOT NULL);
"""
RACY_NS = 2_000_000_000
"""A file written less than this before it was hashed is hashed again next time (a
write in the same timestamp tick, up to 2 s on coarse filesystems, leaves its stamp)."""


class InputIndex:
    """External inputs' content hashes in one cache index (``db``)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def content(self, path: Path) -> str:
        """The content hash of ``path`` (absolute) as it is now; raises `OSError` when it
        cannot be read. Unchanged files cost a ``stat`` each, and all of them one more hash."""
        key = str(path)
        row = self._db.execute(
            "SELECT hash, stamps, files FROM input_marks WHERE path=?", (key,)
        ).fetchone()
        files = listing(path)
        if row is not None and row[1] == summary((r, input_stamp(st)) for r, _, st in files):
            return str(row[0])
        known = loads(row[2]) if row is not None else {}
        now = scan(path, known, input_stamp, racy_ns=RACY_NS, files=files)
        if row is not None and now.same(known):
            return str(row[0])
        digest = now.digest
        racy = not all(m.clean for m in now.marks.values())
        stamps = "" if racy else summary((rel, m.stamp) for rel, m in now.marks.items())
        with suppress(DiskFull), writing(self._db) as db:  # the hash holds, remembered or not
            db.execute(
                "INSERT OR REPLACE INTO input_marks(path, hash, stamps, files) VALUES (?, ?, ?, ?)",
                (key, digest, stamps, dumps(now.marks)),
            )
            if "" not in now.marks:  # a directory: keep its file list for explain
                listed = {rel: m.digest for rel, m in now.marks.items()}
                db.execute(
                    "INSERT OR IGNORE INTO input_trees(hash, files) VALUES (?, ?)",
                    (digest, json.dumps(listed, separators=(",", ":"))),
                )
        return digest

    def tree(self, digest: str) -> dict[str, str] | None:
        """The file list (relative path → hash) of directory content ``digest``, if recorded."""
        row = self._db.execute("SELECT files FROM input_trees WHERE hash=?", (digest,)).fetchone()
        if row is None:
            return None
        files: dict[str, str] = json.loads(row[0])
        return files

    def keep_trees(self, db: sqlite3.Connection, digests: Iterable[str]) -> None:
        """Drop every file list but those of ``digests`` (inside the caller's transaction)."""
        db.execute("CREATE TEMP TABLE IF NOT EXISTS keep(hash TEXT PRIMARY KEY)")
        db.execute("DELETE FROM keep")
        db.executemany("INSERT OR IGNORE INTO keep(hash) VALUES (?)", [(d,) for d in digests])
        db.execute("DELETE FROM input_trees WHERE hash NOT IN (SELECT hash FROM keep)")
