"""Hit-time integrity: a cache object's files against the marks recorded when it was committed.

``object_marks`` holds, per object, the stamp ``(size, mtime_ns, inode)`` and
hash of every file (`blut.jobs.filemarks`). A hit stats every file and
re-hashes only those whose stamp changed; the object is intact when the
content hash still equals its name. An object without marks (committed before
they existed, or repaired after a crash) is hashed in full once, then marked.
Committed objects are read-only and no unit writes them any more, so a mark
taken at commit is trusted without a racy-write window.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from blut.jobs.diskfull import DiskFull
from blut.jobs.filemarks import Marks, dumps, listing, loads, object_stamp, scan, summary
from blut.jobs.indextx import writing

SCHEMA = """
CREATE TABLE IF NOT EXISTS object_marks(hash TEXT PRIMARY KEY, stamps TEXT NOT NULL,
    files TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Damage:
    """An object whose bytes no longer match its hash: the files that differ, when known."""

    digest: str
    files: tuple[str, ...]

    def describe(self) -> str:
        """One line: which files, or that the content differs (no marks to compare with)."""
        if not self.files:
            return "its content no longer matches its hash"
        shown = ", ".join(self.files[:5])
        more = f" and {len(self.files) - 5} more" if len(self.files) > 5 else ""
        return f"files differ: {shown}{more}"


class ObjectMarks:
    """The marks of the objects of one cache index (``db``)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def record(self, digest: str, marks: Marks) -> None:
        """Remember ``marks`` as object ``digest``'s files."""
        stamps = summary((rel, m.stamp) for rel, m in marks.items())
        with writing(self._db) as db:
            db.execute(
                "INSERT OR REPLACE INTO object_marks(hash, stamps, files) VALUES (?, ?, ?)",
                (digest, stamps, dumps(marks)),
            )

    def check(self, path: Path, digest: str) -> Damage | None:
        """None when the object at ``path`` still holds ``digest``'s bytes (marks refreshed
        for files touched without change); raises `FileNotFoundError` when it is gone.

        The usual hit costs a ``stat`` per file and one hash of their stamps; the
        per-file marks are read only when some stamp changed.
        """
        sql = "SELECT stamps FROM object_marks WHERE hash=?"
        row = self._db.execute(sql, (digest,)).fetchone()
        try:
            files = listing(path)
            if row is not None and summary((r, object_stamp(st)) for r, _, st in files) == row[0]:
                return None
            known = self._known(digest) if row else {}
            now = scan(path, known, object_stamp, files=files)
        except OSError as exc:
            if not path.is_dir():
                raise FileNotFoundError(path) from exc
            return Damage(digest, (f"unreadable: {exc}",))
        if now.same(known):
            return None
        if now.digest != digest:
            return Damage(digest, tuple(now.changed(known)) if known else ())
        with suppress(DiskFull):  # intact all the same; marked at a hit with room
            self.record(digest, now.marks)
        return None

    def _known(self, digest: str) -> Marks:
        row = self._db.execute("SELECT files FROM object_marks WHERE hash=?", (digest,)).fetchone()
        return loads(row[0]) if row else {}

    @staticmethod
    def drop(db: sqlite3.Connection, digests: Iterable[str]) -> None:
        """Forget the marks of ``digests`` (inside the caller's transaction)."""
        db.executemany("DELETE FROM object_marks WHERE hash=?", [(d,) for d in digests])
