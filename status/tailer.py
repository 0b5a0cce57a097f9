"""Read a growing ``status.jsonl`` by byte offset, and wake up when it changes.

Readers never crash on what they find: a partial last line waits for its
newline, a file that shrank (truncated) or was replaced starts over from byte 0,
garbage lines are counted and skipped, and a missing file reads as empty.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from blut.status.errors import SchemaError
from blut.status.events import Event, parse_line

CHUNK = 1 << 20
"""Bytes read per system call, and the batch size :func:`follow` reads at a time."""
POLL_INTERVAL = 0.1
"""Seconds between checks of the polling fallback of :func:`watch_changes`."""


class LineTailer:
    """Complete lines appended to a file since a byte offset.

    ``offset`` is always just past the last complete line returned; ``restarts``
    counts how often the file shrank below it or was replaced, which makes the
    tailer start over at 0. (A file truncated and then regrown past the offset
    between two reads cannot be told from one that only grew.) ``more`` is True
    when the last read stopped at ``max_bytes`` with possibly more to read.
    """

    def __init__(self, path: Path, offset: int = 0) -> None:
        """Tail ``path`` from byte ``offset`` (0: the start; resume with a saved offset)."""
        self.path = path
        self.offset = offset
        self.restarts = 0
        self.more = False
        self._identity: tuple[int, int] | None = None

    @property
    def inode(self) -> int | None:
        """The inode of the file as last read (None before the first read finds it)."""
        return None if self._identity is None else self._identity[1]

    def read_lines(self, max_bytes: int | None = None) -> list[bytes]:
        """New complete lines (without ``b"\\n"``) since ``offset``, which moves past them.

        A partial last line is left for a later call. Without ``max_bytes`` it
        returns everything available, reading in :data:`CHUNK`-sized pieces.
        With it, it returns the complete lines among about the next ``max_bytes``
        bytes (more only to finish a longer line) and sets ``more`` if it stopped
        before the end, so callers can take a huge file in bounded batches.
        """
        block = self.read_block(max_bytes)
        return block[:-1].split(b"\n") if block else []

    def read_block(self, max_bytes: int | None = None) -> bytes:
        """Like :meth:`read_lines`, as one buffer of whole lines, each ending in ``b"\\n"``.

        For readers that scan many lines in bulk instead of one at a time.
        """
        self.more = False
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            return b""
        with f:
            st = os.fstat(f.fileno())
            identity = (st.st_dev, st.st_ino)
            replaced = self._identity is not None and identity != self._identity
            self._identity = identity
            if replaced or st.st_size < self.offset:
                self.offset = 0
                self.restarts += 1
            f.seek(self.offset)
            buf = bytearray()
            seen_newline = False
            size = CHUNK if max_bytes is None else max(1, min(CHUNK, max_bytes))
            while chunk := f.read(size):
                buf += chunk
                seen_newline = seen_newline or b"\n" in chunk
                if max_bytes is not None and len(buf) >= max_bytes and seen_newline:
                    self.more = bool(f.read(1))
                    break
        end = buf.rfind(b"\n")
        if end < 0:
            self.more = False
            return b""
        self.offset += end + 1
        return bytes(memoryview(buf)[: end + 1])

    def read_final(self) -> list[bytes]:
        """Like :meth:`read_lines`, plus a last line without a newline: for a finished file."""
        lines = self.read_lines()
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                rest = f.read()
        except FileNotFoundError:
            return lines
        self.offset += len(rest)
        return [*lines, rest] if rest else lines


class Tailer:
    """Events appended to a ``status.jsonl`` since a byte offset.

    Blank lines are ignored; lines that are not valid events are skipped and
    counted in ``garbage``.
    """

    def __init__(self, path: Path, offset: int = 0) -> None:
        """Tail the events of ``path`` from byte ``offset``."""
        self._lines = LineTailer(path, offset)
        self.garbage = 0

    @property
    def path(self) -> Path:
        """The file being tailed."""
        return self._lines.path

    @property
    def offset(self) -> int:
        """Byte offset just past the last complete line read (save it to resume)."""
        return self._lines.offset

    @property
    def restarts(self) -> int:
        """How often the file was truncated or replaced and reading started over."""
        return self._lines.restarts

    @property
    def more(self) -> bool:
        """True when the last read stopped at ``max_bytes`` with possibly more to read."""
        return self._lines.more

    def read(self, max_bytes: int | None = None) -> list[Event]:
        """New events since the last read (see :meth:`LineTailer.read_lines`)."""
        events: list[Event] = []
        for line in self._lines.read_lines(max_bytes):
            if not line.strip():
                continue
            try:
                events.append(parse_line(line))
            except SchemaError:
                self.garbage += 1
        return events


def parse_block(block: bytes) -> list[Event]:
    """Every valid event of a block of whole lines (garbage and blank lines skipped)."""
    events: list[Event] = []
    for line in block.split(b"\n"):
        if line.strip():
            try:
                events.append(parse_line(line))
            except SchemaError:
                continue
    return events


def read_events(path: Path) -> list[Event]:
    """Every valid event of ``path`` (garbage skipped; missing file: none)."""
    return Tailer(path).read()


def watch_changes(
    paths: Sequence[Path], stop: threading.Event, timeout: float = 0.5
) -> Iterator[bool]:
    """Yield True when something under ``paths`` changes, False after ``timeout`` s of quiet.

    A path may be a file (that need not exist yet) or a directory (any change
    below it counts). Stops once ``stop`` is set. Uses inotify through
    ``watchfiles``; if that cannot start or fails, or ``BLUT_FORCE_POLLING=1``,
    it polls sizes and mtimes every :data:`POLL_INTERVAL` seconds instead.
    """
    targets = [Path(p).absolute() for p in paths]
    if os.environ.get("BLUT_FORCE_POLLING") != "1":
        try:
            yield from _watch_native(targets, stop, timeout)
            return
        except (OSError, RuntimeError) as exc:
            import logging  # only on this rare path: it costs ms at start-up

            logging.getLogger(__name__).warning(
                "watching %s failed (%s); falling back to polling", paths, exc
            )
            yield True  # a change may have been missed while switching over
    yield from _watch_polling(targets, stop, timeout)


def watch_tree(
    root: Path, stop: threading.Event, timeout: float = 1.0
) -> Iterator[set[Path] | None]:
    """Yield the paths that changed anywhere below ``root`` (an empty set after ``timeout``
    s of quiet), or None every :data:`POLL_INTERVAL` s when it cannot tell what changed.

    For a reader of many files that knows which of them can change: with inotify
    (``watchfiles``, one recursive watch) it is told where to look; without it
    (``BLUT_FORCE_POLLING=1``, or inotify failed) None asks it to look for itself,
    instead of this function walking a tree of thousands of folders.
    """
    if os.environ.get("BLUT_FORCE_POLLING") != "1":
        try:
            import watchfiles  # deferred: it pulls in anyio

            for changes in watchfiles.watch(
                root,
                watch_filter=None,
                stop_event=stop,
                yield_on_timeout=True,
                rust_timeout=max(1, round(timeout * 1000)),
                debounce=20,
                step=25,
                ignore_permission_denied=True,
            ):
                yield {Path(path) for _, path in changes}
            return
        except (OSError, RuntimeError) as exc:
            import logging

            logging.getLogger(__name__).warning(
                "watching %s failed (%s); falling back to polling", root, exc
            )
    while not stop.wait(POLL_INTERVAL):
        yield None


def _watch_native(targets: list[Path], stop: threading.Event, timeout: float) -> Iterator[bool]:
    import watchfiles  # deferred: it pulls in anyio

    roots = {t if t.is_dir() else t.parent for t in targets}
    missing = sorted(str(root) for root in roots if not root.is_dir())
    if missing:
        raise FileNotFoundError(f"cannot watch missing folders: {missing}")

    def relevant(changed: str) -> bool:
        p = Path(changed)
        return any(p == t or t in p.parents for t in targets)

    quiet_since = time.monotonic()
    for changes in watchfiles.watch(
        *roots,
        watch_filter=None,
        stop_event=stop,
        yield_on_timeout=True,
        rust_timeout=max(1, round(timeout * 1000)),
        debounce=20,
        step=10,
        ignore_permission_denied=True,
    ):
        now = time.monotonic()
        if any(relevant(path) for _, path in changes):
            quiet_since = now
            yield True
        elif not changes or now - quiet_since >= timeout:
            # Unrelated activity next door must not starve the timeout ticks.
            quiet_since = now
            yield False


def _watch_polling(targets: list[Path], stop: threading.Event, timeout: float) -> Iterator[bool]:
    before = _snapshot(targets)
    quiet_since = time.monotonic()
    while not stop.wait(POLL_INTERVAL):
        now = _snapshot(targets)
        if now != before:
            before = now
            quiet_since = time.monotonic()
            yield True
        elif time.monotonic() - quiet_since >= timeout:
            quiet_since = time.monotonic()
            yield False


def _snapshot(targets: list[Path]) -> dict[Path, tuple[int, int]]:
    """(size, mtime_ns) of every target file, and of everything below target folders."""
    out: dict[Path, tuple[int, int]] = {}
    for target in targets:
        below = [Path(top) / name for top, dirs, files in os.walk(target) for name in dirs + files]
        for p in (target, *below):
            try:
                st = p.stat()
            except OSError:
                continue
            out[p] = (st.st_size, st.st_mtime_ns)
    return out


def follow(
    path: Path, stop: threading.Event, offset: int = 0, timeout: float = 0.5
) -> Iterator[list[Event]]:
    """Yield batches of events appended to ``path`` from ``offset`` on, until ``stop`` is set.

    Reads once at the start, then whenever the file changes; yields an empty
    batch after ``timeout`` seconds of quiet so callers can check other things.
    Large backlogs come in batches of about :data:`CHUNK` bytes.
    """
    tailer = Tailer(path, offset)
    yield from _drain(tailer)
    for _ in watch_changes([path], stop, timeout):
        yield from _drain(tailer)


def _drain(tailer: Tailer) -> Iterator[list[Event]]:
    yield tailer.read(CHUNK)
    while tailer.more:
        yield tailer.read(CHUNK)
