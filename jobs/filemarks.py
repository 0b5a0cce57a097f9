"""File marks: what ``stat`` says about each file of a tree, so unchanged files need no re-hash.

A file's *stamp* is ``(size, mtime_ns, inode)`` (external inputs add
``ctime_ns``). A *mark* is a stamp with the hash of the bytes it was taken
with. `scan` stats every file under a root, keeps the hash of each file whose
stamp still matches a clean mark, hashes the rest, and gives the root's
content hash (the same as `blut.jobs.artifact.hash_path`), as git's index does.

A mark is *racy* (not clean) when its file changed within ``racy_ns`` before it
was hashed: a write in the same timestamp tick would leave the stamp as it was,
so such a file is hashed again at the next scan (which then records it clean).
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from blake3 import blake3

from blut.jobs.artifact import hash_entry, merkle, walk

Stamp = tuple[int, ...]


@dataclass(frozen=True)
class Mark:
    """One file: its stamp, the hash of its bytes, and whether the stamp can be trusted."""

    stamp: Stamp
    digest: str
    clean: bool = True


Marks = dict[str, Mark]
"""Relative path (``""`` for a root that is a file) → its mark."""


@dataclass(frozen=True)
class Scan:
    """A root as found now: every file's mark, and the files hashed afresh."""

    marks: Marks
    rehashed: tuple[str, ...]

    @property
    def digest(self) -> str:
        """The root's content hash (`blut.jobs.artifact.hash_path`'s)."""
        if "" in self.marks:
            return self.marks[""].digest
        return merkle((rel, m.digest) for rel, m in self.marks.items())

    def same(self, known: Mapping[str, Mark]) -> bool:
        """Every file as ``known`` marked it (so the content hash is what it was then)."""
        return not self.rehashed and self.marks.keys() == known.keys()

    def changed(self, before: Mapping[str, Mark]) -> list[str]:
        """Files whose bytes differ from ``before``'s, added or removed, each with how."""
        return changes(
            {rel: m.digest for rel, m in self.marks.items()},
            {rel: m.digest for rel, m in before.items()},
        )


def changes(now: Mapping[str, str], before: Mapping[str, str]) -> list[str]:
    """``rel (changed|added|removed)`` for each file whose hash differs between two listings."""
    out = [
        f"{rel} ({'added' if rel not in before else 'changed'})"
        for rel, digest in now.items()
        if before.get(rel) != digest
    ]
    out += [f"{rel} (removed)" for rel in before if rel not in now]
    return sorted(out)


def object_stamp(st: os.stat_result) -> Stamp:
    """The stamp of a file in a cache object (read-only, so its ctime is not watched)."""
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def input_stamp(st: os.stat_result) -> Stamp:
    """The stamp of a file of an external input (any writer changes its ctime)."""
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


Listing = list[tuple[str, str, os.stat_result]]
"""``(relative path, path, stat)`` of every file under a root (`listing`)."""


def listing(root: Path) -> Listing:
    """Every file and symlink under ``root`` with its ``lstat`` (a file root: ``""``, stat)."""
    top = root.stat()
    if not stat.S_ISDIR(top.st_mode):
        return [("", str(root), top)]
    return walk(root)


def summary(stamps: Iterable[tuple[str, Stamp]]) -> str:
    """One hash of every ``(relative path, stamp)``: equal summaries, every file as stamped."""
    lines = sorted([f"{rel}\0{st}\n" for rel, st in stamps])
    return blake3("".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


def scan(
    root: Path,
    known: Mapping[str, Mark],
    stamp: Callable[[os.stat_result], Stamp],
    *,
    racy_ns: int | None = None,
    files: Listing | None = None,
) -> Scan:
    """``root`` now (``files``: its `listing`, if taken already), re-hashing only files
    without a matching clean mark in ``known``.

    ``racy_ns`` None trusts every mark taken (cache objects: nothing writes a
    committed object, so no write can race the hash). Raises `OSError` when
    ``root`` or one of its files cannot be read.
    """
    marks: Marks = {}
    rehashed: list[str] = []
    for rel, path, st in listing(root) if files is None else files:
        now = stamp(st)
        old = known.get(rel)
        if old is not None and old.clean and old.stamp == now:
            marks[rel] = old
            continue
        started = time.time_ns()
        digest = hash_entry(Path(path), st)
        clean = racy_ns is None or max(st.st_mtime_ns, st.st_ctime_ns) < started - racy_ns
        marks[rel] = Mark(now, digest, clean)
        rehashed.append(rel)
    return Scan(marks, tuple(rehashed))


def dumps(marks: Mapping[str, Mark]) -> str:
    """Marks as compact JSON (``{rel: [*stamp, digest, clean]}``), for the cache index."""
    return json.dumps(
        {rel: [*m.stamp, m.digest, int(m.clean)] for rel, m in marks.items()},
        separators=(",", ":"),
    )


def loads(text: str) -> Marks:
    """Inverse of `dumps`."""
    return {
        rel: Mark(tuple(row[:-2]), row[-2], bool(row[-1])) for rel, row in json.loads(text).items()
    }
