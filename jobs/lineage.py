"""Lineage: which cache entries each entry was computed from (its inputs' entries).

One ``lineage`` row per (entry key, parent key). An entry whose bytes turn
out damaged takes every entry computed from it, transitively, with it
(`descendants`), since they may hold results of those bytes. A pruned entry's
rows stay while some entry was computed from it, so that chain is followed
too; `tidy` drops them once nothing below needs them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

SCHEMA = """
CREATE TABLE IF NOT EXISTS lineage(key TEXT NOT NULL, parent TEXT NOT NULL,
    PRIMARY KEY(key, parent));
CREATE INDEX IF NOT EXISTS lineage_parent ON lineage(parent);
"""


def record(db: sqlite3.Connection, key: str, parents: Iterable[str]) -> None:
    """``key`` was computed from ``parents`` (replacing what was recorded for it)."""
    db.execute("DELETE FROM lineage WHERE key=?", (key,))
    db.executemany(
        "INSERT OR IGNORE INTO lineage(key, parent) VALUES (?, ?)", [(key, p) for p in parents]
    )


def parents(db: sqlite3.Connection, key: str) -> list[str]:
    """The keys ``key`` was computed from."""
    rows = db.execute("SELECT parent FROM lineage WHERE key=? ORDER BY parent", (key,))
    return [p for (p,) in rows]


def descendants(db: sqlite3.Connection, keys: Iterable[str]) -> set[str]:
    """Every key computed, directly or not, from one of ``keys`` (those not included)."""
    roots = set(keys)
    found: set[str] = set()
    frontier = roots
    while frontier:
        marks = ",".join("?" * len(frontier))
        rows = db.execute(f"SELECT key FROM lineage WHERE parent IN ({marks})", tuple(frontier))
        frontier = {k for (k,) in rows} - found - roots
        found |= frontier
    return found


def forget(db: sqlite3.Connection, keys: Iterable[str]) -> None:
    """Drop what ``keys`` were computed from (their entries are gone)."""
    db.executemany("DELETE FROM lineage WHERE key=?", [(k,) for k in keys])


def tidy(db: sqlite3.Connection) -> None:
    """Drop the rows of entries that are gone and that no row names as a parent."""
    while db.execute(
        "DELETE FROM lineage WHERE key NOT IN (SELECT key FROM entries) "
        "AND key NOT IN (SELECT parent FROM lineage)"
    ).rowcount:
        pass
