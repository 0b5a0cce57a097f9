"""Append events to a job's ``status.jsonl``, one complete line per ``os.write``.

Every line goes out in a single ``write(2)`` on an ``O_APPEND`` descriptor, so any
number of processes (the driver, the payload, its workers) can append to one file
without interleaving: each opens its own :class:`EventWriter`. Lines are kept under
:data:`MAX_LINE` bytes; an oversized ``log`` message is truncated to fit.

That holds on one host only: a stage on another host (a cluster node) writes its own
events file instead, which the executor relays (`blut.status.relay`, `write_lines`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from pathlib import Path
from types import TracebackType

from blut.status.errors import StatusError
from blut.status.events import Event, Log

MAX_LINE = 4096
"""Largest line, in bytes including the newline, that a writer emits."""


def encode_line(event: Event) -> bytes:
    """The event as one UTF-8 line with its newline.

    Lone surrogates (text decoded with ``surrogateescape``) become ``\\udcXX``
    escapes, which is what JSON spells them as, so the line stays valid UTF-8.
    """
    return (event.to_json() + "\n").encode("utf-8", "backslashreplace")


def _fit_log(event: Log) -> bytes:
    """Encode ``event`` with its message cut so the line fits in :data:`MAX_LINE`."""
    msg = event.msg

    def line(keep: int) -> bytes:
        dropped = len(msg[keep:].encode("utf-8", "surrogatepass"))
        note = f"… [truncated {dropped} bytes]"
        return encode_line(dataclasses.replace(event, msg=msg[:keep] + note))

    if len(line(0)) > MAX_LINE:
        raise StatusError(f"log event too large even without its message: {event.event}")
    # The line grows with `keep`, so binary-search the longest prefix that fits.
    lo, hi = 0, min(len(msg), MAX_LINE)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(line(mid)) <= MAX_LINE:
            lo = mid
        else:
            hi = mid - 1
    return line(lo)


class EventWriter:
    """An append-only writer of events to one ``status.jsonl`` (one per process)."""

    def __init__(self, path: Path, *, sync_every: float | None = None) -> None:
        """Open (creating if needed, mode 0600) ``path`` for appending; its folder must exist.

        ``sync_every``: push each line to the file's server (``fdatasync``): at once, or,
        when the last push was less than this many seconds ago, that long after it (from a
        timer thread), so a reader on another host of a shared filesystem sees every event
        within about that long; ``None``: never.
        """
        self.path = path
        self._fd: int | None = os.open(
            path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        self._sync_every = sync_every
        self._synced = float("-inf")
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def emit(self, event: Event) -> None:
        """Append ``event`` as one line with a single write.

        Raises :class:`StatusError` if the writer is closed, if a non-log event
        does not fit in :data:`MAX_LINE`, or if the kernel writes only part of it.
        """
        if self._fd is None:
            raise StatusError(f"writer for {self.path} is closed")
        data = encode_line(event)
        if len(data) > MAX_LINE:
            if not isinstance(event, Log):
                raise StatusError(
                    f"{event.event} event is {len(data)} bytes, over the {MAX_LINE}-byte line limit"
                )
            data = _fit_log(event)
        written = os.write(self._fd, data)
        if written != len(data):
            # A full disk took part of the line: the rest tells (ENOSPC) or completes it.
            try:
                os.write(self._fd, data[written:])
            except OSError as exc:
                self.end_line()
                raise StatusError(
                    f"short write to {self.path}: {written} of {len(data)} bytes"
                ) from exc
        if self._sync_every is not None:
            self._sync_soon(self._sync_every)

    def _sync_soon(self, every: float) -> None:
        """Push the file now, or start a timer to push it once ``every`` has passed."""
        with self._lock:
            wait = self._synced + every - time.monotonic()
            if wait > 0:
                if self._timer is None:
                    self._timer = threading.Timer(wait, self._sync_late)
                    self._timer.daemon = True
                    self._timer.start()
                return
        self._sync_late()

    def _sync_late(self) -> None:
        with self._lock:
            self._timer = None
            if self._fd is None:
                return
            self._synced = time.monotonic()
            with contextlib.suppress(OSError):
                os.fdatasync(self._fd)

    def write_lines(self, data: bytes) -> int:
        """Append ``data`` (whole lines, as relayed) in one write; the file's size after it.

        Raises :class:`StatusError` when closed, when ``data`` does not end a line, or when
        the kernel writes only part of it (the torn line is ended first).
        """
        if self._fd is None:
            raise StatusError(f"writer for {self.path} is closed")
        if not data.endswith(b"\n"):
            raise StatusError(f"relayed data for {self.path} does not end a line")
        written = os.write(self._fd, data)
        if written != len(data):
            self.end_line()
            raise StatusError(f"short write to {self.path}: {written} of {len(data)} bytes")
        return os.fstat(self._fd).st_size

    def end_line(self) -> None:
        """End a torn last line (a write cut short by a full disk, by any writer), so
        readers skip it as one garbage line instead of gluing it to the next line."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            size = os.fstat(self._fd).st_size
            if size and os.pread(self._fd, 1, size - 1) != b"\n":
                os.write(self._fd, b"\n")

    def close(self) -> None:
        """Close the file (synced first when ``sync_every`` is set); further :meth:`emit`
        calls raise. Closing twice is fine."""
        with self._lock:
            fd, self._fd = self._fd, None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if fd is not None:
            try:
                if self._sync_every is not None:
                    with contextlib.suppress(OSError):
                        os.fdatasync(fd)
            finally:
                os.close(fd)

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def append_event(path: Path, event: Event) -> None:
    """Append one event to ``path`` (open, write, close)."""
    with EventWriter(path) as writer:
        writer.emit(event)
