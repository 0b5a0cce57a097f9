"""A stage's view of its job: where to write, what to read, where to report.

`StageContext.from_env` reads what the driver sets (``BLUT_JOB_DIR``,
``BLUT_STAGE_NAME``, ``BLUT_JOB_ID``, ``BLUT_CONTAINED``; ``BLUT_EVENTS=stage`` on a
cluster node: events go to the stage's own file, relayed). Outside a blut job it warns loudly and falls back to a temporary job dir, so a stage program still
runs standalone. Under torchrun (``RANK`` set) every process gets a context,
but only rank 0 reports: the others' events are dropped, except error logs,
which any rank emits (prefixed with its rank) so a crash on rank 1 is seen.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from blut.payload.errors import InputError
from blut.payload.telemetry import Hub
from blut.status.events import Event, Log, LogLevel, Metric, Progress
from blut.status.layout import JobPaths, StagePaths
from blut.status.private import private_dir
from blut.status.relay import EVENTS_VAR, RELAYED, SYNC_EVERY
from blut.status.telemetry import TelemetryError, read_record
from blut.status.writer import EventWriter, append_event

_FALSE = ("0", "false", "no")


@dataclass(frozen=True)
class StageContext:
    """One stage run: its job dir, names, frozen args and event helpers.

    Events go to `events_path` (``job_dir/status.jsonl``, or with ``relayed`` the
    stage's own ``events.jsonl``) through one writer kept open until `close` (or the
    end of a ``with`` block). ``rank`` is the process's rank
    when the stage runs as several (torchrun's ``RANK``); only rank 0 emits.
    The same events feed the job's telemetry sinks (job.json's ``telemetry``,
    `blut.payload.telemetry`), with the stage's start (``with``) and end (`finish`).
    """

    job_dir: Path
    stage: str
    job_id: str
    args: dict[str, Any] = field(default_factory=dict)
    contained: bool = True
    inputs: list[dict[str, Any]] = field(default_factory=list)
    rank: int = 0
    relayed: bool = False
    """It runs on a cluster node: its events go to its own file, relayed by the executor."""

    @property
    def primary(self) -> bool:
        """True in the one process that reports and writes outputs (rank 0)."""
        return self.rank == 0

    def __post_init__(self) -> None:
        private_dir(self.staging)

    @property
    def files(self) -> StagePaths:
        """Every file of this stage (the layout lives in `blut.status.layout`)."""
        return JobPaths(self.job_dir).stage(self.stage)

    @property
    def stage_dir(self) -> Path:
        """``job_dir/stages/<stage>/``."""
        return self.files.dir

    @property
    def staging(self) -> Path:
        """The only place a stage writes its outputs (created)."""
        return self.files.staging

    @property
    def metrics_dir(self) -> Path:
        """Where per-epoch Parquet metric parts go."""
        return self.files.metrics

    @property
    def checkpoints_dir(self) -> Path:
        """Where checkpoints go (outside staging, so a killed run resumes from them)."""
        return self.files.checkpoints

    @property
    def status_path(self) -> Path:
        """The job's event stream."""
        return JobPaths(self.job_dir).status

    @property
    def events_path(self) -> Path:
        """Where this process appends its events: the job's stream, or (``relayed``) the
        stage's own events file, so no two hosts append to one file."""
        return self.files.events if self.relayed else self.status_path

    def input(self, kind: str) -> Path:
        """The directory of the one upstream artifact of ``kind``.

        Raises :class:`InputError` naming the kind and what is available when
        there is no such input, or more than one.
        """
        paths = [Path(item["path"]) for item in self.inputs if item.get("kind") == kind]
        if len(paths) == 1:
            return paths[0]
        available = ", ".join(f"{i.get('kind')} (from {i.get('stage')})" for i in self.inputs)
        problem = "no input" if not paths else f"{len(paths)} inputs"
        raise InputError(
            f"stage {self.stage}: {problem} of kind {kind!r}; available: {available or 'none'}"
        )

    @classmethod
    def from_env(cls, stage: str, environ: Mapping[str, str] = os.environ) -> StageContext:
        """The context the driver set up for ``stage``, or a loud standalone fallback."""
        raw_dir = environ.get("BLUT_JOB_DIR", "")
        name = environ.get("BLUT_STAGE_NAME", "")
        if raw_dir and name:
            job = JobPaths(Path(raw_dir))
            files = job.stage(name)
            return cls(
                job_dir=job.dir,
                stage=name,
                job_id=environ.get("BLUT_JOB_ID") or job.id,
                args=_load_args(files.args if files.args.is_file() else job.args),
                contained=environ.get("BLUT_CONTAINED", "1").strip().lower() not in _FALSE,
                inputs=_load_inputs(files.inputs),
                rank=int(environ.get("RANK") or 0),
                relayed=environ.get(EVENTS_VAR) == RELAYED,
            )
        return cls._standalone(stage, raw_dir, name, environ.get("BLUT_JOB_ID"))

    @classmethod
    def _standalone(cls, stage: str, raw_dir: str, name: str, job_id: str | None) -> StageContext:
        """A temporary job dir; the warning goes to stderr and to every status file at hand."""
        tmp = Path(tempfile.mkdtemp(prefix=f"blut-{stage}-"))
        missing = "/".join(
            var for var, val in (("BLUT_JOB_DIR", raw_dir), ("BLUT_STAGE_NAME", name)) if not val
        )
        msg = f"{missing} not set: running outside a blut job, uncontained; events go to {tmp}"
        print(f"blut: warning: {msg}", file=sys.stderr, flush=True)
        ctx = cls(job_dir=tmp, stage=stage, job_id=tmp.name, contained=False)
        ctx.log(msg, level="warning")
        job_status = JobPaths(Path(raw_dir)).status if raw_dir else None
        if job_status is not None and job_status.is_file():
            warning = Log(job=job_id or Path(raw_dir).name, level="warning", msg=msg)
            append_event(job_status, warning)
        return ctx

    @cached_property
    def _writer(self) -> EventWriter:
        if self.relayed:
            return EventWriter(self.events_path, sync_every=SYNC_EVERY)
        return EventWriter(self.status_path)

    @cached_property
    def _telemetry(self) -> Hub | None:
        """The sinks' hub when job.json names sinks (rank 0 only); a bad record warns."""
        if not self.primary:
            return None
        from blut.payload.sinks import RunInfo, build

        try:
            record = read_record(self.job_dir)
        except TelemetryError as exc:
            self._warn(f"telemetry: off for this stage: {exc}")
            return None
        info = RunInfo(self.job_id, self.stage, record.root(self.job_dir), self.args)
        sinks = build(record, info)
        return Hub(sinks, self.job_id, self.stage, self._warn) if sinks else None

    def _warn(self, msg: str) -> None:
        """A warning line in the stage's log and a ``log`` event (safe from any thread)."""
        print(f"warning: {msg}", file=sys.stderr, flush=True)
        append_event(
            self.events_path, Log(job=self.job_id, stage=self.stage, level="warning", msg=msg)
        )

    def emit(self, kind: type[Event], **fields: Any) -> None:
        """Append one ``kind`` event for this job and stage, and feed the sinks (rank 0 only)."""
        if self.primary:
            event = kind(job=self.job_id, stage=self.stage, **fields)
            self._writer.emit(event)
            hub = self._telemetry
            if hub is not None:
                hub.put(event)

    def finish(self, code: int, error: BaseException | None = None) -> None:
        """Tell the sinks the stage ended with exit ``code`` (``error``: what it raised)."""
        hub = self.__dict__.get("_telemetry")
        if hub is not None:
            hub.finish(code, error)

    def progress(self, step: float, total: float | None = None, unit: str | None = None) -> None:
        """Report ``step`` of ``total`` ``unit``."""
        self.emit(Progress, step=step, total=total, unit=unit)

    def metric(
        self, values: Mapping[str, float], step: int | None = None, epoch: int | None = None
    ) -> None:
        """Report named scalars (live plots)."""
        self.emit(Metric, values=dict(values), step=step, epoch=epoch)

    def log(self, msg: str, level: LogLevel = "info") -> None:
        """Report a message for humans: a ``log`` event, and a line in the stage's log.

        Off rank 0 only the line is written, except for errors, which every rank
        reports (prefixed with its rank).
        """
        if not self.primary:
            msg = f"rank {self.rank}: {msg}"
            if level == "error":
                self._writer.emit(Log(job=self.job_id, stage=self.stage, level=level, msg=msg))
        self.emit(Log, level=level, msg=msg)
        print(msg if level == "info" else f"{level}: {msg}", flush=True)

    def close(self) -> None:
        """Let the sinks write what is queued (bounded), then close the event writer."""
        hub = self.__dict__.pop("_telemetry", None)
        if hub is not None:
            hub.close()
        writer = self.__dict__.pop("_writer", None)
        if writer is not None:
            writer.close()

    def __enter__(self) -> Self:
        hub = self._telemetry
        if hub is not None:
            hub.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self.finish(1, exc)
        self.close()


def _load_inputs(path: Path) -> list[dict[str, Any]]:
    """The stage's upstream artifacts (``[{stage, kind, path, hash}]``), or ``[]``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    if not isinstance(data, list) or not all(
        isinstance(item, dict) and "kind" in item and "path" in item for item in data
    ):
        raise ValueError(f"{path}: expected a JSON list of {{stage, kind, path, hash}} objects")
    return data


def _load_args(path: Path) -> dict[str, Any]:
    """The job's frozen args, or ``{}`` when it has none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data
