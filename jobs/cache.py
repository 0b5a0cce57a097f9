"""The content-addressed stage cache under ``$BLUT_HOME/cache/``.

``objects/<hash>/`` holds committed stage outputs, named by their content hash
(so equal outputs of different keys are stored once), behind the `Store`
interface (`blut.jobs.objectstore`; here its local filesystem implementation). ``index.sqlite`` (WAL,
safe for concurrent jobs) maps a cache key to its object with size, creation,
last use, the producing job and the key's parts (for `blut.jobs.cacheexplain`); beside
it, each object's file marks (`blut.jobs.integrity`), each entry's lineage
(`blut.jobs.lineage`) and the external inputs' content hashes
(`blut.jobs.inputindex`). Opening the cache creates missing tables, so an
older index is migrated in place.

Commit: hash the staging dir, write a journal entry in ``pending/``, rename the
dir into ``objects/`` (atomic), write the index row and lineage, mark the
object's files, drop the journal. A crash between rename and index write
leaves a journal that the next `Cache` repairs. Callers hold the key's lock
(`Cache.key_lock`) while they compute and commit, so two jobs needing the same
missing key compute it once.

A hit (`Cache.get`) is served only when the object's files still match their
marks (a ``stat`` each; files whose stamp changed are re-hashed). Damaged bytes
are quarantined with every entry computed from them (`Cache.verify` does the
same after a full re-hash), so no result of damaged bytes is served again.

Running jobs pin the keys they use; a pin counts while the job holds its
liveness lock (`Cache.hold`), so a crashed job never pins anything forever.

A full disk (`blut.jobs.diskfull`) makes a write raise `DiskFull`, never leaves
the index half-written (each write is one transaction), and never stops a
read: refreshing marks, ``last_used`` and dropping pins are skipped when they
cannot be written, a commit whose index write failed keeps its journal (the
next `Cache` with room repairs it), and so does a repair that finds no room.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blut.jobs import lineage
from blut.jobs.diskfull import DiskFull, full_or_raise, is_disk_full
from blut.jobs.errors import JobsError
from blut.jobs.filemarks import object_stamp, scan
from blut.jobs.indextx import writing
from blut.jobs.inputindex import SCHEMA as INPUTS_SCHEMA
from blut.jobs.inputindex import InputIndex
from blut.jobs.integrity import SCHEMA as MARKS_SCHEMA
from blut.jobs.integrity import Damage, ObjectMarks
from blut.jobs.keys import KeyParts
from blut.jobs.objectstore import LocalStore
from blut.status.atomic import atomic_write_json
from blut.status.flock import Flock, is_held
from blut.status.layout import LOCKS_DIR, executor_lock
from blut.status.private import private_dir, private_file
from blut.status.usage import tree_size

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS entries(
    key TEXT PRIMARY KEY, hash TEXT NOT NULL, size INTEGER NOT NULL,
    created REAL NOT NULL, last_used REAL NOT NULL,
    job TEXT, stage TEXT, parts TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS entries_hash ON entries(hash);
CREATE TABLE IF NOT EXISTS pins(job TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY(job, key));
"""
    + lineage.SCHEMA
    + MARKS_SCHEMA
    + INPUTS_SCHEMA
)
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
class Condemned:
    """What quarantining damaged objects removed: their entries, and the entries computed
    from them (transitively, through lineage)."""

    objects: list[str] = field(default_factory=list)
    """The damaged objects' hashes."""
    entries: list[Entry] = field(default_factory=list)
    """The entries of the damaged objects."""
    derived: list[Entry] = field(default_factory=list)
    """Entries computed from them, dropped (their objects quarantined unless still used)."""

    def summary(self) -> str:
        """``quarantined N, and M computed from them``."""
        return f"quarantined {len(self.objects)}, and {len(self.derived)} computed from them"


@dataclass
class VerifyReport:
    """What `Cache.verify` found: ``corrupt`` and ``orphans`` were quarantined, and so was
    what was computed from the corrupt objects (``condemned.derived``)."""

    checked: int = 0
    corrupt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    condemned: Condemned = field(default_factory=Condemned)


def index_path(home: Path) -> Path:
    """The cache index of ``home`` (``$BLUT_HOME``); it exists once a `Cache` was opened."""
    return home / "cache" / "index.sqlite"


def _entry(row: tuple[Any, ...]) -> Entry:
    key, digest, size, created, last_used, job, stage, parts = row
    return Entry(
        key, digest, size, created, last_used, job, stage, KeyParts.from_dict(json.loads(parts))
    )


def _readonly(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & 0o555)


def objects_dir(home: Path) -> Path:
    """Where the cache of ``home`` keeps its objects."""
    return index_path(home).parent / "objects"


class Cache:
    """The cache of one ``$BLUT_HOME``; open one per process."""

    def __init__(self, home: Path) -> None:
        self.root = index_path(home).parent
        self.objects = objects_dir(home)
        self.store = LocalStore(self.objects)
        """The objects, by content hash."""
        self.pending = self.root / "pending"
        self.quarantine = self.root / "quarantine"
        self.trash = self.root / "trash"
        self.locks = home / LOCKS_DIR
        try:
            for folder in (self.objects, self.pending, self.quarantine, self.trash, self.locks):
                private_dir(folder)
            index = private_file(index_path(home))  # sqlite would make it 0644
            self._db = sqlite3.connect(index, timeout=60, isolation_level=None)
            # Switching to WAL takes an exclusive lock and does not wait for a busy one:
            # processes opening the index at once would fail with "database is locked".
            with Flock(self.locks / "cache-index.lock"):
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.executescript(_SCHEMA)
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable commits, fewer fsyncs
        except (sqlite3.Error, OSError) as exc:
            if hasattr(self, "_db"):
                self._db.close()
            where = index_path(home)
            if is_disk_full(exc, home):
                raise DiskFull(home, f"cannot open the cache index {where}") from exc
            raise CacheError(f"cache index {where}: {exc}") from exc
        self.marks = ObjectMarks(self._db)
        self.inputs = InputIndex(self._db)
        """Content hashes of external inputs (files and directories recipe args name)."""
        self._repair()

    def close(self) -> None:
        """Close the index connection."""
        self._db.close()

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return writing(self._db)

    def object_path(self, digest: str) -> Path:
        """Where the object with content hash ``digest`` lives."""
        return self.store.path(digest)

    def key_lock(self, key: str) -> Flock:
        """The lock whoever computes ``key`` holds until it is committed or abandoned."""
        return Flock(self.locks / f"key-{key}.lock")

    def _job_lock(self, job: str) -> Path:
        return executor_lock(self.locks.parent, job)

    # -- lookups ----------------------------------------------------------------

    def get(
        self,
        key: str,
        *,
        touch: bool = True,
        on_damage: Callable[[Damage, Condemned], None] | None = None,
    ) -> Entry | None:
        """The entry for ``key`` if its object exists and still holds its bytes.

        A dangling row is dropped. A damaged object is quarantined with every
        entry computed from it, ``on_damage`` is told, and the answer is a miss.
        """
        row = self._db.execute(f"SELECT {_COLUMNS} FROM entries WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        entry = _entry(row)
        try:
            damage = self.marks.check(self.object_path(entry.hash), entry.hash)
        except FileNotFoundError:
            with suppress(DiskFull), self._write() as db:  # dropped by the next one with room
                db.execute("DELETE FROM entries WHERE key=?", (key,))
            return None
        if damage is not None:
            condemned = self.condemn({entry.hash})
            if on_damage is not None:
                on_damage(damage, condemned)
            return None
        if touch:
            with suppress(DiskFull), self._write() as db:  # a hit on a full disk is still a hit
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

    def commit(
        self,
        parts: KeyParts,
        staging: Path,
        *,
        job: str,
        stage: str,
        parents: Iterable[str] = (),
    ) -> Entry:
        """Move ``staging`` into the cache as the output of ``parts`` (hold its key lock),
        computed from the entries ``parents`` (its inputs' keys).

        On a full disk it raises `DiskFull`: before the move, ``staging`` is left to the
        caller; after it, the journal stays and the next `Cache` with room finishes the
        commit (the index never holds half of one)."""
        if not staging.is_dir():
            raise CacheError(f"stage {stage} left no output directory {staging}")
        found = scan(staging, {}, object_stamp)
        key, digest, size, now = parts.key, found.digest, tree_size(staging), time.time()
        entry = Entry(key, digest, size, now, now, job, stage, parts)
        journal = self.pending / f"{key}.json"
        parents = sorted(set(parents))
        try:
            atomic_write_json(journal, {**entry.to_dict(), "parents": parents}, indent=None)
        except OSError as exc:
            raise full_or_raise(exc, self.root, f"could not commit stage {stage}") from exc
        if self._place(staging, digest):
            with suppress(DiskFull):  # unmarked objects are hashed in full at their next hit
                self.marks.record(digest, found.marks)
        self._insert(entry, parents)
        journal.unlink(missing_ok=True)
        return entry

    def _place(self, staging: Path, digest: str) -> bool:
        """Put ``staging`` into the store as object ``digest`` (read-only), unless an equal
        object is already there; True when the object is ``staging``'s files themselves
        (renamed, so their marks hold)."""
        _readonly(staging)
        try:
            return self.store.put(digest, staging)
        except OSError as exc:
            if is_disk_full(exc, self.root):
                raise DiskFull(self.root, f"cannot copy {staging}") from exc
            raise CacheError(f"cannot move {staging} into the cache: {exc}") from exc

    def _insert(self, entry: Entry, parents: Iterable[str]) -> None:
        row = entry.to_dict()
        row["parts"] = json.dumps(row["parts"])
        with self._write() as db:
            db.execute(
                f"INSERT OR REPLACE INTO entries({_COLUMNS}) VALUES "
                "(:key, :hash, :size, :created, :last_used, :job, :stage, :parts)",
                row,
            )
            lineage.record(db, entry.key, parents)

    def _repair(self) -> None:
        """Finish commits that crashed (or found the disk full) between rename and index
        write; on a full disk the journals wait for the next `Cache`."""
        try:
            journals = sorted(self.pending.glob("*.json"))
        except OSError:
            return
        for journal in journals:
            lock = self.key_lock(journal.stem)
            if not lock.acquire(blocking=False):
                continue  # a live commit of this key is in progress
            try:
                data = json.loads(journal.read_text())
                parents = data.pop("parents", [])
                parts = KeyParts.from_dict(data["parts"])
                if self.store.exists(data["hash"]):
                    self._insert(Entry(**{**data, "parts": parts}), parents)
                journal.unlink(missing_ok=True)
            except DiskFull:
                return
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

    def keys_of(self, digests: Iterable[str]) -> list[str]:
        """The keys of the entries that map to the objects ``digests``."""
        found: list[str] = []
        for digest in digests:
            rows = self._db.execute("SELECT key FROM entries WHERE hash=?", (digest,))
            found.extend(k for (k,) in rows)
        return found

    def unpin(self, job: str) -> None:
        """Drop every pin of ``job`` (on a full disk they stay, and count for nothing once
        the job's liveness lock is free)."""
        with suppress(DiskFull), self._write() as db:
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
            gone = {e.key for e in report.removed}
            ObjectMarks.drop(db, doomed)
            lineage.tidy(db)
            self.inputs.keep_trees(
                db, {d for e in entries if e.key not in gone for d in e.parts.sources.values()}
            )
            trashed = []
            for digest in doomed:
                dest = self.trash / f"{digest}-{os.urandom(4).hex()}"
                if self.store.take(digest, dest):
                    trashed.append(dest)
        for dest in trashed:
            shutil.rmtree(dest, ignore_errors=True)
        return report

    def _quarantine(self, digest: str) -> None:
        dest = self.quarantine / f"{digest}-{int(time.time())}-{os.urandom(2).hex()}"
        self.store.take(digest, dest)  # False: quarantined by another process meanwhile

    def condemn(self, digests: set[str]) -> Condemned:
        """Quarantine the damaged objects ``digests`` with their entries, and drop every entry
        computed from them, directly or not (its object too, unless another entry uses it)."""
        out = Condemned(objects=sorted(digests))
        with self._write() as db:
            for digest in out.objects:
                rows = db.execute(f"SELECT {_COLUMNS} FROM entries WHERE hash=?", (digest,))
                out.entries.extend(_entry(r) for r in rows)
            bad = {e.key for e in out.entries}
            derived = lineage.descendants(db, bad)
            for key in sorted(derived):
                row = db.execute(f"SELECT {_COLUMNS} FROM entries WHERE key=?", (key,)).fetchone()
                if row is not None:
                    out.derived.append(_entry(row))
            gone = bad | derived
            db.executemany("DELETE FROM entries WHERE key=?", [(k,) for k in gone])
            lineage.forget(db, gone)
            used = {h for (h,) in db.execute("SELECT DISTINCT hash FROM entries")}
            doomed = set(digests) | {e.hash for e in out.derived if e.hash not in used}
            ObjectMarks.drop(db, doomed)
            for digest in sorted(doomed):
                self._quarantine(digest)
        return out

    def verify(self) -> VerifyReport:
        """Re-hash every object: quarantine corrupt ones with what was computed from them, and
        unreferenced ones; drop dangling rows; refresh the marks of intact objects."""
        report = VerifyReport()
        by_hash: dict[str, list[str]] = {}
        for entry in self.entries():
            by_hash.setdefault(entry.hash, []).append(entry.key)
        in_flight = {json.loads(j.read_text()).get("hash") for j in self.pending.glob("*.json")}
        for digest, keys in by_hash.items():
            if not self.store.exists(digest):
                report.missing.extend(keys)
                continue
            path = self.store.get(digest)
            report.checked += 1
            try:
                found = scan(path, {}, object_stamp)
            except OSError:
                report.corrupt.append(digest)
                continue
            if found.digest != digest:
                report.corrupt.append(digest)
            else:
                with suppress(DiskFull):
                    self.marks.record(digest, found.marks)
        with self._write() as db:
            db.executemany("DELETE FROM entries WHERE key=?", [(k,) for k in report.missing])
        if report.corrupt:
            report.condemned = self.condemn(set(report.corrupt))
        for path in self.store.scratch_paths():
            shutil.rmtree(path, ignore_errors=True)
        for name in sorted(self.store.list()):
            if name not in by_hash and name not in in_flight:
                report.orphans.append(name)
                self._quarantine(name)
        return report

    def parents(self, key: str) -> list[tuple[str, Entry | None]]:
        """The entries ``key`` was computed from: each parent key with its entry (None once
        it is no longer cached)."""
        out = []
        for parent in lineage.parents(self._db, key):
            row = self._db.execute(f"SELECT {_COLUMNS} FROM entries WHERE key=?", (parent,))
            found = row.fetchone()
            out.append((parent, _entry(found) if found else None))
        return out
