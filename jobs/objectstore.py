"""Where content-addressed objects live: the `Store` protocol and its local filesystem
implementation.

An object is an immutable file or folder named by the hash of its content (the
cache's stage outputs, ``cache/objects/<hash>/``; the snapshots' bundles,
``snapshots/<id>.tar``). Whoever holds objects (`blut.jobs.cache`,
`blut.jobs.snapshots`) builds one at a `Store.scratch` path, hashes it and
`Store.put`s it under its name; everything else about them (the cache index,
file marks, a snapshot's origin sidecar) stays with the holder. The small set of
operations is what an object-store backend (fsspec: S3, GCS, ...) can offer as
well: a second implementation of `Store` is all such a backend needs.
"""

from __future__ import annotations

import builtins
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

SCRATCH_PREFIX = ".tmp-"
"""Names of objects being built or copied in (never listed)."""


@runtime_checkable
class Store(Protocol):
    """Content-addressed objects by name: put, get, exists, list, delete (and take)."""

    def scratch(self) -> Path:
        """A fresh local path to build an object at before `put` (nothing is there yet)."""
        ...

    def put(self, name: str, source: Path) -> bool:
        """Move ``source`` (a file or folder) in as object ``name``; an object of that name
        already there wins (its content is the same) and ``source`` is removed. True when
        ``source`` itself became the object (renamed: its files keep their stamps)."""
        ...

    def get(self, name: str) -> Path:
        """A local path holding object ``name``; `FileNotFoundError` when there is none."""
        ...

    def exists(self, name: str) -> bool:
        """Whether object ``name`` is stored."""
        ...

    def list(self) -> Iterator[str]:
        """The names of the stored objects (none being built), in no given order."""
        ...

    def delete(self, name: str) -> bool:
        """Remove object ``name``; False when there was none."""
        ...

    def take(self, name: str, dest: Path) -> bool:
        """Move object ``name`` out of the store to the local path ``dest`` (to be dropped
        or kept aside later); False when there was none."""
        ...


def _remove(path: Path) -> None:
    """Remove a file or a folder tree (gone already is fine)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class LocalStore:
    """Objects as files or folders ``<root>/<name><suffix>`` on the local filesystem.

    ``put`` is a rename (atomic; across filesystems a copy to a scratch path,
    then a rename), so a reader sees an object whole or not at all, and two
    writers of the same object leave one.
    """

    def __init__(self, root: Path, suffix: str = "") -> None:
        self.root = root
        self.suffix = suffix

    def path(self, name: str) -> Path:
        """Where object ``name`` is (or would be) stored."""
        return self.root / f"{name}{self.suffix}"

    def scratch(self) -> Path:
        return self.root / f"{SCRATCH_PREFIX}{os.getpid()}-{os.urandom(4).hex()}{self.suffix}"

    def put(self, name: str, source: Path) -> bool:
        target = self.path(name)
        if target.exists():
            _remove(source)
            return False
        try:
            source.rename(target)
        except OSError as exc:
            if target.exists():  # another writer stored equal content meanwhile
                _remove(source)
                return False
            if exc.errno != errno.EXDEV:  # not merely another filesystem
                raise
            self._copy_in(source, target)
            return False
        return True

    def _copy_in(self, source: Path, target: Path) -> None:
        tmp = self.scratch()
        try:
            if source.is_dir():
                shutil.copytree(source, tmp, symlinks=True)
            else:
                shutil.copy2(source, tmp)
            tmp.rename(target)
        except OSError:
            _remove(tmp)
            raise
        _remove(source)

    def get(self, name: str) -> Path:
        path = self.path(name)
        if not path.exists():
            raise FileNotFoundError(path)
        return path

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def list(self) -> Iterator[str]:
        try:
            entries = list(self.root.iterdir())
        except FileNotFoundError:
            return
        for path in entries:
            name = path.name
            if name.startswith(SCRATCH_PREFIX) or not name.endswith(self.suffix):
                continue
            yield name[: len(name) - len(self.suffix)] if self.suffix else name

    def scratch_paths(self) -> builtins.list[Path]:
        """What builds and copies left behind (a crash between scratch and put)."""
        try:
            return sorted(self.root.glob(f"{SCRATCH_PREFIX}*"))
        except OSError:
            return []

    def delete(self, name: str) -> bool:
        path = self.path(name)
        if not path.exists():
            return False
        _remove(path)
        return True

    def take(self, name: str, dest: Path) -> bool:
        try:
            self.path(name).rename(dest)
        except FileNotFoundError:
            return False
        return True
