"""The content-addressed stage cache under ``$BLUT_HOME/cache/``.

``objects/<hash>/`` holds committed stage outputs, named by their content hash
(so equal outputs of different keys are stored once). ``index.sqlite`` (WAL,
safe for concurrent jobs) maps a cache key to its object with size, creation,
last use, the producing job and the key's parts (for `Cache.explain`).

Commit: hash the staging dir, write a journal entry in ``pending/``, rename the
dir into ``objects/`` (atomic), write the index row, drop the journal. A crash
between rename and index write leaves a journal that the next `Cache` repairs.
Callers hold the key's lock (`Cache.key_lock`) while they compute and commit,
so two jobs needing the same missing key compute it once.

Running jobs pin the keys they use; a pin counts while the job holds its
liveness lock (`Cache.hold`), so a crashed job never pins anything forever.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blut.jobs.artifact import hash_path, tree_size
from blut.jobs.errors import JobsError
from blut.jobs.fingerprint import canonical
from blut.jobs.keys import KeyParts
from blut.status.atomic import atomic_write_json
from blut.status.flock import Flock, is_held
from blut.status.layout import LOCKS_DIR, executor_lock
from blut.status.private import private_dir, private_file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries(
    key TEXT PRIMARY KEY, hash TEXT NOT NULL, size INTEGER NOT NULL,
    created REAL NOT NULL, last_used REAL NOT NULL,
    job TEXT, stage TEXT, parts TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS entries_hash ON entries(hash);
CREATE TABLE IF NOT EXISTS pins(job TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY(job, key));
"""
_COLUMNS = "key, hash, size, created, last_used, job, stage, parts"


class CacheError(JobsError):
    """The cache cannot do what was asked (unreadable index, failed commit)."""


@dataclass(frozen=True)
class Entry:
    """One index row: a key and the object it maps to."""

    key: str
    hash: str
    size: int
    created: float
    last_used: float
    job: str | None
    stage: str | None
    parts: KeyParts

    def to_dict(self, *, parts: bool = True) -> dict[str, Any]:
        """JSON-ready; ``parts`` False leaves out the key's components."""
        data: dict[str, Any] = {
            "key": self.key,
            "hash": self.hash,
            "size": self.size,
            "created": self.created,
            "last_used": self.last_used,
            "job": self.job,
            "stage": self.stage,
        }
        if parts:
            data["parts"] = self.parts.to_dict()
        return data


@dataclass
class PruneReport:
    """What `Cache.prune` removed (or would remove, on a dry run)."""

    removed: list[Entry] = field(default_factory=list)
    freed: int = 0
    total_before: int = 0
    pinned: int = 0
    dry_run: bool = False


@dataclass
class VerifyReport:
    """What `Cache.verify` found: ``corrupt`` and ``orphans`` were quarantined."""

    checked: int = 0
    corrupt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)


def _entry(row: tuple[Any, ...]) -> Entry:
    key, digest, size, created, last_used, job, stage, parts = row
    return Entry(
        key, digest, size, created, last_used, job, stage, KeyParts.from_dict(json.loads(parts))
    )


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_flat(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _readonly(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & 0o555)


class Cache:
    """The cache of one ``$BLUT_HOME``; open one per process."""

    def __init__(self, home: Path) -> None:
        self.root = home / "cache"
        self.objects = self.root / "objects"
        self.pending = self.root / "pending"
        self.quarantine = self.root / "quarantine"
        self.trash = self.root / "trash"
        self.locks = home / LOCKS_DIR
        for folder in (self.objects, self.pending, self.quarantine, self.trash, self.locks):
            private_dir(folder)
        try:
            index = private_file(self.root / "index.sqlite")  # sqlite would make it 0644
            self._db = sqlite3.connect(index, timeout=60, isolation_level=None)
            # Switching to WAL takes an exclusive lock and does not wait for a busy one:
            # processes opening the index at once would fail with "database is locked".
            with Flock(self.locks / "cache-index.lock"):
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.executescript(_SCHEMA)
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable commits, fewer fsyncs
        except (sqlite3.Error, OSError) as exc:
            raise CacheError(f"cache index {self.root / 'index.sqlite'}: {exc}") from exc
        self._repair()

    def close(self) -> None:
        """Close the index connection."""
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def object_path(self, digest: str) -> Path:
        """Where the object with content hash ``digest`` lives."""
        return self.objects / digest

    def key_lock(self, key: str) -> Flock:
        """The lock whoever computes ``key`` holds until it is committed or abandoned."""
        return Flock(self.locks / f"key-{key}.lock")

    def _job_lock(self, job: str) -> Path:
        return executor_lock(self.locks.parent, job)

    # -- lookups ----------------------------------------------------------------

    def get(self, key: str, *, touch: bool = True) -> Entry | None:
        """The entry for ``key`` if its object exists (a dangling row is dropped)."""
        row = self._db.execute(f"SELECT {_COLUMNS} FROM entries WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        entry = _entry(row)
        if not self.object_path(entry.hash).is_dir():
            with self._write() as db:
                db.execute("DELETE FROM entries WHERE key=?", (key,))
            return None
        if touch:
            with self._write() as db:
                db.execute("UPDATE entries SET last_used=? WHERE key=?", (time.time(), key))
        return entry

    def entries(self) -> list[Entry]:
        """Every entry, least recently used first."""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM entries ORDER BY last_used, key")
        return [_entry(r) for r in rows]

    def total_size(self) -> int:
        """Bytes held by the objects that entries refer to (each object counted once)."""
        row = self._db.execute("SELECT SUM(size) FROM (SELECT DISTINCT hash, size FROM entries)")
        return int(row.fetchone()[0] or 0)

    # -- commit -----------------------------------------------------------------

    def commit(self, parts: KeyParts, staging: Path, *, job: str, stage: str) -> Entry:
        """Move ``staging`` into the cache as the output of ``parts`` (hold its key lock)."""
        if not staging.is_dir():
            raise CacheError(f"stage {stage} left no output directory {staging}")
        key, digest, size, now = parts.key, hash_path(staging), tree_size(staging), time.time()
        entry = Entry(key, digest, size, now, now, job, stage, parts)
        journal = self.pending / f"{key}.json"
        atomic_write_json(journal, entry.to_dict(), indent=None)
        self._place(staging, digest)
        self._insert(entry)
        journal.unlink(missing_ok=True)
        return entry

    def _place(self, staging: Path, digest: str) -> None:
        """Rename ``staging`` to its object dir, unless an equal object is already there."""
        target = self.object_path(digest)
        _readonly(staging)
        if target.is_dir():
            shutil.rmtree(staging)
            return
        try:
            staging.rename(target)
        except OSError as exc:
            if target.is_dir():  # another job committed equal content meanwhile
                shutil.rmtree(staging)
                return
            if exc.errno != 18:  # EXDEV: staging is on another filesystem
                raise CacheError(f"cannot move {staging} into the cache: {exc}") from exc
            tmp = self.objects / f".tmp-{os.urandom(4).hex()}"
            shutil.copytree(staging, tmp, symlinks=True)
            tmp.rename(target)
            shutil.rmtree(staging)

    def _insert(self, entry: Entry) -> None:
        row = entry.to_dict()
        row["parts"] = json.dumps(row["parts"])
        with self._write() as db:
            db.execute(
                f"INSERT OR REPLACE INTO entries({_COLUMNS}) VALUES "
                "(:key, :hash, :size, :created, :last_used, :job, :stage, :parts)",
                row,
            )

    def _repair(self) -> None:
        """Finish commits that crashed between rename and index write."""
        for journal in self.pending.glob("*.json"):
            lock = self.key_lock(journal.stem)
            if not lock.acquire(blocking=False):
                continue  # a live commit of this key is in progress
            try:
                data = json.loads(journal.read_text())
                parts = KeyParts.from_dict(data["parts"])
                if self.object_path(data["hash"]).is_dir():
                    self._insert(Entry(**{**data, "parts": parts}))
                journal.unlink(missing_ok=True)
            except (OSError, ValueError, KeyError, TypeError):
                journal.unlink(missing_ok=True)
            finally:
                lock.release()

    # -- pins -------------------------------------------------------------------

    def hold(self, job: str) -> Flock:
        """The liveness lock of a running job: its pins count while it is held."""
        return Flock(self._job_lock(job))

    def pin(self, job: str, keys: Iterable[str]) -> None:
        """Protect ``keys`` from pruning while ``job`` holds its liveness lock."""
        with self._write() as db:
            db.executemany(
                "INSERT OR IGNORE INTO pins(job, key) VALUES (?, ?)", [(job, k) for k in keys]
            )

    def unpin(self, job: str) -> None:
        """Drop every pin of ``job``."""
        with self._write() as db:
            db.execute("DELETE FROM pins WHERE job=?", (job,))

    def pinned(self) -> set[str]:
        """Keys pinned by live jobs; pins of jobs that are gone are dropped."""
        live: set[str] = set()
        for (job,) in self._db.execute("SELECT DISTINCT job FROM pins").fetchall():
            if is_held(self._job_lock(job)):
                rows = self._db.execute("SELECT key FROM pins WHERE job=?", (job,))
                live.update(k for (k,) in rows)
            else:
                self.unpin(job)
        return live

    # -- maintenance --------------------------------------------------------------

    def prune(
        self,
        *,
        max_size: int | None = None,
        older_than: float | None = None,
        keep_last: int | None = None,
        dry_run: bool = False,
        now: float | None = None,
    ) -> PruneReport:
        """Remove entries in LRU order; pinned keys and the ``keep_last`` newest stay.

        An entry goes when it was last used more than ``older_than`` seconds ago,
        or while the cache is larger than ``max_size`` bytes. An object is
        deleted once no remaining entry refers to it.
        """
        now = time.time() if now is None else now
        report = PruneReport(dry_run=dry_run)
        pinned = self.pinned()
        with self._write() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM entries ORDER BY last_used, key")
            entries = [_entry(r) for r in rows]
            sizes = {e.hash: e.size for e in entries}
            refs: dict[str, int] = {}
            for e in entries:
                refs[e.hash] = refs.get(e.hash, 0) + 1
            total = report.total_before = sum(sizes.values())
            protected = {e.key for e in entries[::-1][: keep_last or 0]}
            doomed: list[str] = []
            for e in entries:
                if e.key in pinned:
                    report.pinned += 1
                    continue
                old = older_than is not None and e.last_used < now - older_than
                big = max_size is not None and total > max_size
                if e.key in protected or not (old or big):
                    continue
                report.removed.append(e)
                refs[e.hash] -= 1
                if refs[e.hash] == 0:
                    total -= e.size
                    report.freed += e.size
                    doomed.append(e.hash)
            if dry_run:
                return report
            db.executemany("DELETE FROM entries WHERE key=?", [(e.key,) for e in report.removed])
            trashed = []
            for digest in doomed:
                dest = self.trash / f"{digest}-{os.urandom(4).hex()}"
                try:
                    self.object_path(digest).rename(dest)
                    trashed.append(dest)
                except FileNotFoundError:
                    continue
        for dest in trashed:
            shutil.rmtree(dest, ignore_errors=True)
        return report

    def _quarantine(self, digest: str) -> None:
        dest = self.quarantine / f"{digest}-{int(time.time())}"
        self.object_path(digest).rename(dest)

    def verify(self) -> VerifyReport:
        """Re-hash every object; quarantine corrupt and unreferenced ones, drop dangling rows."""
        report = VerifyReport()
        by_hash: dict[str, list[str]] = {}
        for entry in self.entries():
            by_hash.setdefault(entry.hash, []).append(entry.key)
        in_flight = {json.loads(j.read_text()).get("hash") for j in self.pending.glob("*.json")}
        for digest, keys in by_hash.items():
            path = self.object_path(digest)
            if not path.is_dir():
                report.missing.extend(keys)
                continue
            report.checked += 1
            if hash_path(path) != digest:
                report.corrupt.append(digest)
                self._quarantine(digest)
        bad = report.missing + [k for d in report.corrupt for k in by_hash[d]]
        with self._write() as db:
            db.executemany("DELETE FROM entries WHERE key=?", [(k,) for k in bad])
        for path in sorted(self.objects.iterdir()):
            if path.name not in by_hash and path.name not in in_flight:
                if path.name.startswith(".tmp-"):
                    shutil.rmtree(path, ignore_errors=True)
                    continue
                report.orphans.append(path.name)
                self._quarantine(path.name)
        return report

    def explain(self, parts: KeyParts) -> list[str]:
        """Why ``parts`` is (not) a hit: what differs from the closest cached key of its stage."""
        if self.get(parts.key, touch=False) is not None:
            return [f"stage {parts.stage}: cached (key {parts.key[:12]})"]
        same = [e for e in self.entries() if e.parts.stage == parts.stage]
        if not same:
            return [f"stage {parts.stage}: nothing of this stage is cached (first run, or pruned)"]
        best = min(same, key=lambda e: (len(_differences(parts, e.parts)), -e.last_used))
        head = (
            f"stage {parts.stage}: closest cached key {best.key[:12]} (job {best.job}) differs in:"
        )
        return [head, *(f"  {line}" for line in _differences(parts, best.parts))]


def _differences(now: KeyParts, cached: KeyParts) -> list[str]:
    out: list[str] = []
    if now.program != cached.program:
        out.append(f"program: {' '.join(now.program)} now, {' '.join(cached.program)} cached")
    if now.schema_version != cached.schema_version:
        out.append(f"schema version: {now.schema_version} now, {cached.schema_version} cached")
    for name in sorted(set(now.inputs) | set(cached.inputs)):
        a, b = now.inputs.get(name), cached.inputs.get(name)
        if a != b:
            out.append(f"input {name}: {(a or 'none')[:12]} now, {(b or 'none')[:12]} cached")
    flat_now, flat_cached = _flat(now.args), _flat(cached.args)
    for name in sorted(set(flat_now) | set(flat_cached)):
        a, b = flat_now.get(name, "<unset>"), flat_cached.get(name, "<unset>")
        if canonical(a) != canonical(b):
            out.append(f"arg {name}: {json.dumps(a)} now, {json.dumps(b)} cached")
    return out
