"""Relay a cluster stage's own events file into its job's ``status.jsonl``.

Appends from two hosts to one file interleave unpredictably on a shared filesystem
(no ``O_APPEND`` atomicity across NFS clients), so a stage run on a cluster node writes
its events to ``stages/<s>/events.jsonl`` (one writer: its node) and the executor, the
one writer of ``status.jsonl`` across hosts, copies them over: only whole lines, by byte
offset, each line once. How far it got lies in ``stages/<s>/events.relayed``
(``{"offset", "sink_end"}``), written after each copy. An executor killed between the
copy and that record finds the copied lines after ``sink_end`` in ``status.jsonl`` when
it comes back and skips them, so a restart neither drops nor repeats an event.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from blut.status.atomic import atomic_write_json
from blut.status.layout import StagePaths
from blut.status.tailer import LineTailer
from blut.status.writer import EventWriter

EVENTS_VAR = "BLUT_EVENTS"
"""The stage's environment variable that says where its events go."""
RELAYED = "stage"
""":data:`EVENTS_VAR`'s value for a stage whose events go to its own file, relayed."""
SYNC_EVERY = 0.5
"""Seconds between two pushes of a relayed stage's events file to the shared filesystem."""
CHUNK = 1 << 20
"""About the most bytes of the events file one copy reads (and relays)."""


class Relay:
    """Copies the whole lines a stage appended to its events file into the job's stream."""

    def __init__(self, files: StagePaths) -> None:
        """The relay of stage ``files``, resuming where its state file says."""
        self.source = files.events
        self.state = files.relayed
        self.offset, self._sink_end = self._load()
        self._recovering = True
        """The last copy may have landed without its record (checked on the first pump)."""

    @classmethod
    def start(cls, files: StagePaths, sink: Path) -> Relay:
        """A fresh relay for a new run of the stage: its old events file (relayed in full
        when its run ended) goes, and the relay starts at offset 0 of a new one."""
        with contextlib.suppress(FileNotFoundError):
            files.events.unlink()
        try:
            end = sink.stat().st_size
        except FileNotFoundError:
            end = 0
        atomic_write_json(files.relayed, {"offset": 0, "sink_end": end}, durable=False)
        return cls(files)

    def _load(self) -> tuple[int, int]:
        try:
            data = json.loads(self.state.read_text())
            return int(data["offset"]), int(data["sink_end"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0, 0  # no record: nothing relayed, or look for copies from the start

    def pump(self, sink: EventWriter, *, final: bool = False) -> int:
        """Relay the whole lines appended since the last pump; the number of lines.

        ``final``: the stage ended (its files are closed): relay everything whole that is
        left, in as many chunks as it takes. A last line without its newline is never
        relayed (a stage killed mid-write left it torn). While the stage runs, a line
        that holds NUL bytes is not relayed yet: a shared filesystem can show a file's
        new length before the bytes a later write filled in.
        """
        total = 0
        while True:
            lines = self._read(final=final)
            if not lines:
                return total
            read = sum(map(len, lines))
            todo = self._not_yet_copied(sink.path, lines) if self._recovering else lines
            self._recovering = False
            if todo:
                self._sink_end = sink.write_lines(b"".join(todo))
                total += len(todo)
            self.offset += read
            atomic_write_json(
                self.state, {"offset": self.offset, "sink_end": self._sink_end}, durable=False
            )
            if not final:
                return total

    def _read(self, *, final: bool) -> list[bytes]:
        """The whole lines from :attr:`offset` on (about :data:`CHUNK` bytes at most)."""
        block = LineTailer(self.source, self.offset).read_block(CHUNK)
        lines = _whole_lines(block)
        if not final:
            for i, line in enumerate(lines):
                if b"\0" in line:
                    return lines[:i]
        return lines

    def _not_yet_copied(self, sink: Path, lines: list[bytes]) -> list[bytes]:
        """``lines`` less the first ones an earlier copy already put after ``sink_end``.

        A copy is one write of whole lines, so what landed of it is a run of
        ``lines``' first lines, found whole in the stream after ``sink_end``.
        """
        try:
            with sink.open("rb") as f:
                f.seek(self._sink_end)
                tail = _whole_lines(f.read())
        except FileNotFoundError:
            return lines
        try:
            at = tail.index(lines[0])
        except ValueError:
            return lines
        done = 0
        while done < len(lines) and at + done < len(tail) and tail[at + done] == lines[done]:
            done += 1
        return lines[done:]


def _whole_lines(data: bytes) -> list[bytes]:
    """The lines of ``data`` that end in ``b"\\n"``, each with it."""
    return [line + b"\n" for line in data.split(b"\n")[:-1]]
