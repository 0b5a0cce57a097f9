"""One write transaction on the cache index (an autocommit sqlite connection in WAL mode)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from blut.jobs.diskfull import full_or_raise


def _where(db: sqlite3.Connection) -> Path:
    """The folder of ``db``'s file (whose filesystem a full disk is measured on)."""
    with suppress(sqlite3.Error):
        for _seq, name, file in db.execute("PRAGMA database_list"):
            if name == "main" and file:
                return Path(file).parent
    return Path.cwd()


@contextmanager
def writing(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on an exception): writers queue, never
    deadlock on a lock upgrade. A write that fails because the disk is full (at any
    statement, the ``COMMIT`` too) rolls back and raises `DiskFull`."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            # sqlite may have rolled back already (SQLITE_FULL can do that): then this fails.
            with suppress(sqlite3.Error):
                if db.in_transaction:
                    db.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise full_or_raise(exc, _where(db), "could not write the cache index") from exc
