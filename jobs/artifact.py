"""Typed, content-hashed stage outputs.

A file hashes to blake3 of its bytes (large files through blake3's
multithreaded mmap hashing). A directory hashes to a sorted Merkle tree: blake3
over one ``(relative path, entry hash)`` record per file or symlink, sorted by
relative path, so the hash depends only on names and contents, never on mtimes
or the order the filesystem lists entries in.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from blake3 import blake3

MMAP_THRESHOLD = 4 << 20
"""Files at least this large are hashed with multithreaded mmap hashing."""


class Kind(StrEnum):
    """What an artifact holds; plan edges must agree on it."""

    OHLCV = "ohlcv"
    FEATURES = "features"
    LABELED = "labeled"
    SPLITS = "splits"
    MODEL = "model"
    EVALUATION = "evaluation"
    NUMBERS = "numbers"
    REPORT = "report"
    LM = "lm"
    REWARD_MODEL = "reward-model"
    TOKENS = "tokens"
    PREFERENCES = "preferences"
    PROMPTS = "prompts"
    COMPLETIONS = "completions"
    NONE = "none"
    """No cached output: a stage run for its effects (the command of a `blut run` job)."""


TABLE_KINDS = frozenset({Kind.TOKENS, Kind.PREFERENCES, Kind.PROMPTS, Kind.COMPLETIONS})
"""Kinds whose artifact is one Parquet table (beside a JSON manifest)."""


@dataclass(frozen=True)
class Artifact:
    """A stage output: its kind, where it lives and its content hash."""

    kind: Kind
    path: Path
    hash: str

    @classmethod
    def of(cls, kind: Kind, path: Path) -> Artifact:
        """The artifact at ``path``, hashed now."""
        return cls(kind, path, hash_path(path))


def hash_file(path: Path, size: int | None = None) -> str:
    """blake3 hex digest of a file's bytes (``size``: its size, when the caller has it)."""
    hasher = blake3(max_threads=blake3.AUTO)
    if (path.stat().st_size if size is None else size) >= MMAP_THRESHOLD:
        hasher.update_mmap(path)
    else:
        hasher.update(path.read_bytes())
    return hasher.hexdigest()


def hash_entry(path: Path, st: os.stat_result) -> str:
    """The hash of one tree entry: a file's bytes, or a symlink's target (never followed)."""
    if stat.S_ISLNK(st.st_mode):
        return blake3(b"link:" + str(path.readlink()).encode()).hexdigest()
    return hash_file(path, st.st_size)


def walk(root: Path) -> list[tuple[str, str, os.stat_result]]:
    """``(relative posix path, path, lstat)`` of every file and symlink under ``root``.

    Symlinks (to directories too) are entries of their own, never followed. Paths
    are strings: a `Path` per file would cost more than its ``stat``.
    """
    found = []
    folders = [("", str(root))]
    while folders:
        prefix, folder = folders.pop()
        with os.scandir(folder) as listing:
            for item in listing:
                if item.is_dir(follow_symlinks=False):
                    folders.append((f"{prefix}{item.name}/", item.path))
                else:
                    found.append((prefix + item.name, item.path, item.stat(follow_symlinks=False)))
    return found


def merkle(entries: Iterable[tuple[str, str]]) -> str:
    """The directory hash of ``(relative path, entry hash)`` records (see the module docstring)."""
    hasher = blake3(b"blut-dir-v1\n")
    for rel, digest in sorted(entries):
        hasher.update(rel.encode("utf-8", "surrogateescape") + b"\0" + digest.encode() + b"\n")
    return hasher.hexdigest()


def hash_dir(root: Path) -> str:
    """The sorted Merkle hash of a directory (see the module docstring)."""
    return merkle((rel, hash_entry(Path(path), st)) for rel, path, st in walk(root))


def hash_path(path: Path) -> str:
    """The hash of a file or a directory."""
    return hash_dir(path) if path.is_dir() else hash_file(path)
