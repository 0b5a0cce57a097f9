"""The job index: ``summary.json``, a small per-job summary that listing reads.

status.jsonl stays the source of truth. A summary is the fold of the stream's
first ``offset`` bytes (a :class:`~blut.status.jobstate.JobView`), stamped with
the stream's inode. Readers take it, fold only what was appended after
``offset``, and get exactly the view a fold of the whole stream gives, without
re-reading history. A summary is never trusted blindly: a missing, damaged or
foreign one (another schema version, another inode, an offset past the end or
not at a line boundary) is ignored and the view is rebuilt from the stream.

The executor, the one writer of stage and terminal events, saves the summary
as it goes; whoever records an outcome outside it (reconcile, a cancel) saves
it too. Writes are atomic renames of complete files, so concurrent writers can
only make a summary older (more tail to fold), never wrong.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blut.status.atomic import atomic_write
from blut.status.errors import SchemaError
from blut.status.events import Event
from blut.status.jobstate import JOB_PHASES, STAGE_PHASES, JobView, StageView
from blut.status.layout import JobPaths
from blut.status.tailer import LineTailer, parse_block

SUMMARY_VERSION = 1
SAVE_TAIL_BYTES = 256 << 10
"""A reader that folded at least this much tail saves the summary (when allowed)."""

_JOB_FIELDS = frozenset(f.name for f in dataclasses.fields(JobView))
_STAGE_FIELDS = frozenset(f.name for f in dataclasses.fields(StageView))
STAGE_FIELDS_ADDED: dict[str, Any] = {"producer": None}
"""Stage fields added since version 1 summaries were first written, with the value a fold
of the events from before them gives: a summary without them is read with these (so an
upgrade does not rebuild every job's summary from its stream)."""


def view_to_dict(view: JobView) -> dict[str, Any]:
    """The JSON form of a view."""
    return dataclasses.asdict(view)


def view_from_dict(data: Mapping[str, Any]) -> JobView:
    """A view from its JSON form; raises :class:`SchemaError` when it does not fit."""
    try:
        if set(data) != _JOB_FIELDS:
            raise SchemaError(f"fields differ: {sorted(set(data) ^ _JOB_FIELDS)}")
        stages = {}
        for name, saved in data["stages"].items():
            raw = {**STAGE_FIELDS_ADDED, **saved}
            if set(raw) != _STAGE_FIELDS:
                raise SchemaError(f"stage {name}: fields differ")
            stage = StageView(**raw)
            if stage.progress is not None:
                step, total, unit = stage.progress
                stage.progress = (step, total, unit)
            if stage.state not in STAGE_PHASES or stage.name != name:
                raise SchemaError(f"stage {name}: bad state {stage.state!r}")
            stages[name] = stage
        view = JobView(**{**data, "stages": stages})
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise SchemaError(f"not a job view: {exc}") from exc
    if view.state not in JOB_PHASES or not isinstance(view.id, str):
        raise SchemaError(f"bad job state {view.state!r}")
    return view


@dataclass
class Indexed:
    """A job's view and how far into its stream (bytes) it has folded."""

    view: JobView
    offset: int
    inode: int
    from_summary: bool = False
    """True when a saved summary was the starting point (no full rebuild)."""
    folded: int = 0
    """Bytes of stream folded on top of the starting point."""
    size: int = -1
    """The stream's size when the summary was read (-1: unknown)."""


def read_summary(paths: JobPaths, job_id: str) -> Indexed | None:
    """The saved summary of the job when it can be trusted for the stream as it is now."""
    try:
        data = json.loads(paths.summary.read_bytes())
        fd = os.open(paths.status, os.O_RDONLY | os.O_CLOEXEC)
    except (OSError, ValueError):
        return None
    try:
        st = os.fstat(fd)
        if not isinstance(data, dict) or data.get("v") != SUMMARY_VERSION:
            return None
        offset, inode = data.get("offset"), data.get("inode")
        if not isinstance(offset, int) or not isinstance(inode, int) or inode != st.st_ino:
            return None
        # A fold stops only at a line's end: the byte before the offset must end one.
        if offset > st.st_size or (offset > 0 and os.pread(fd, 1, offset - 1) != b"\n"):
            return None
        size = st.st_size
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        view = view_from_dict(data.get("view") or {})
    except SchemaError:
        return None
    if view.id != job_id:
        return None
    return Indexed(view, offset, inode, from_summary=True, size=size)


def save_summary(paths: JobPaths, indexed: Indexed) -> None:
    """Write ``indexed`` as the job's summary (atomic; not fsynced: it is rebuildable)."""
    data = {
        "v": SUMMARY_VERSION,
        "offset": indexed.offset,
        "inode": indexed.inode,
        "view": view_to_dict(indexed.view),
    }
    atomic_write(paths.summary, json.dumps(data, separators=(",", ":")), durable=False)


class JobIndex:
    """Keeps one job's view current by folding only what its stream gained.

    ``decode`` turns a block of complete lines into events (the full parser by
    default; the fast decoder skips superseded progress and metric samples,
    which no view field depends on).
    """

    def __init__(
        self,
        paths: JobPaths,
        job_id: str,
        *,
        decode: Callable[[bytes], list[Event]] = parse_block,
        start: Indexed | None = None,
    ) -> None:
        """``start``: a summary already read (else it is read here)."""
        self.paths = paths
        self.job_id = job_id
        self._decode = decode
        self.indexed = start or read_summary(paths, job_id) or Indexed(JobView(job_id), 0, 0)
        self._tailer = LineTailer(paths.status, self.indexed.offset)

    @property
    def view(self) -> JobView:
        """The view as of the last :meth:`refresh`."""
        return self.indexed.view

    def refresh(self) -> list[Event]:
        """Fold what was appended since the last call; returns those events."""
        restarts = self._tailer.restarts
        block = self._tailer.read_block()
        indexed = self.indexed
        if self._tailer.restarts != restarts:  # the stream was replaced or truncated
            indexed = self.indexed = Indexed(JobView(self.job_id), 0, 0)
        events = self._decode(block) if block else []
        for event in events:
            indexed.view.apply(event)
        indexed.offset = self._tailer.offset
        indexed.folded += len(block)
        if self._tailer.inode is not None:
            indexed.inode = self._tailer.inode
        return events

    def save(self) -> None:
        """Save the summary as of the last :meth:`refresh`."""
        save_summary(self.paths, self.indexed)


def current_view(paths: JobPaths, job_id: str, *, save: bool = False) -> JobView:
    """The job's view: its summary plus a fold of what came after it (or a rebuild).

    With ``save``, a summary that was missing, damaged or far behind is saved
    back, so the next reader starts from it.
    """
    summary = read_summary(paths, job_id)
    if summary is not None and summary.size == summary.offset:
        return summary.view  # the summary covers the whole stream: nothing to fold
    index = JobIndex(paths, job_id, start=summary)
    index.refresh()
    stale = not index.indexed.from_summary or index.indexed.folded >= SAVE_TAIL_BYTES
    if save and stale and index.indexed.inode:
        with contextlib.suppress(OSError):  # a read-only home still lists
            index.save()
    return index.view


def rebuild_summary(job_dir: Path) -> None:
    """Fold the whole stream of the job in ``job_dir`` and save its summary."""
    paths = JobPaths(job_dir)
    paths.summary.unlink(missing_ok=True)
    index = JobIndex(paths, paths.id)
    index.refresh()
    index.save()
