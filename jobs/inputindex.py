"""Content hashes of external inputs, remembered by file stamp in the cache index.

``input_marks`` maps an input's absolute path to the marks of its files
(`blut.jobs.filemarks`), so an unchanged 10 GB model dir costs one ``stat`` per
file, not a re-hash; only files whose stamp changed (or that were written just
before they were hashed) are hashed again. ``input_trees`` keeps the file list
(relative path → hash) of each content hash of a directory input that a key
named, so `blut cache explain` can say which files changed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from blut.jobs.filemarks import Scan, dumps, input_stamp, loads, scan
from blut.jobs.indextx import writing

SCHEMA = """
CREATE TABLE IF NOT EXISTS input_marks(path TEXT PRIMARY KEY, files TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS input_trees(hash TEXT PRIMARY KEY, files TEXT NOT NULL);
"""
RACY_NS = 2_000_000_000
"""A file written less than this before it was hashed is hashed again next time (a
write in the same timestamp tick, up to 2 s on coarse filesystems, leaves its stamp)."""


class InputIndex:
    """External inputs' content hashes in one cache index (``db``)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def content(self, path: Path) -> Scan:
        """``path`` (absolute) as it is now; raises `OSError` when it cannot be read."""
        key = str(path)
        row = self._db.execute("SELECT files FROM input_marks WHERE path=?", (key,)).fetchone()
        known = loads(row[0]) if row else {}
        now = scan(path, known, input_stamp, racy_ns=RACY_NS)
        if now.rehashed or now.marks.keys() != known.keys():
            with writing(self._db) as db:
                db.execute(
                    "INSERT OR REPLACE INTO input_marks(path, files) VALUES (?, ?)",
                    (key, dumps(now.marks)),
                )
                if "" not in now.marks:  # a directory: keep its file list for explain
                    files = {rel: m.digest for rel, m in now.marks.items()}
                    db.execute(
                        "INSERT OR IGNORE INTO input_trees(hash, files) VALUES (?, ?)",
                        (now.digest, json.dumps(files, separators=(",", ":"))),
                    )
        return now

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
