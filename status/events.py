"""Event schema v1: one JSON object per line of a job's ``status.jsonl``.

Every line carries ``v`` (schema version), ``ts`` (unix seconds), ``job``,
``stage`` (or null) and ``event`` (the kind), plus the kind's own fields.
Known kinds parse into typed dataclasses, every field checked against its
annotation (a ``Literal`` against its values); unknown kinds parse into
:class:`UnknownEvent`, and unknown fields of any kind are kept in ``extra`` so
that a read-modify-write never drops what a newer writer added.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import NoneType, UnionType
from typing import Any, ClassVar, Literal, TypeAlias, Union, get_args, get_origin, get_type_hints

from blut.status.errors import SchemaError

SCHEMA_VERSION = 1
BASE_KEYS = frozenset({"v", "ts", "job", "stage", "event"})

JSONValue: TypeAlias = Any
FailureReason: TypeAlias = Literal[
    "exit", "signal", "oom", "timeout", "cancelled", "error", "skipped"
]
"""Why a stage or job failed; ``skipped`` is only for a stage whose upstream failed."""
FAILURE_REASONS: tuple[FailureReason, ...] = get_args(FailureReason)
LogLevel: TypeAlias = Literal["debug", "info", "warning", "error"]


def _now() -> float:
    return time.time()


@dataclass(frozen=True, kw_only=True)
class Event:
    """Fields every event has. Subclasses add their kind's fields (all defaulted)."""

    kind: ClassVar[str] = ""
    job: str
    stage: str | None = None
    ts: float = field(default_factory=_now)
    extra: Mapping[str, JSONValue] = field(default_factory=dict, compare=False)

    @property
    def event(self) -> str:
        """The event kind as written on the wire (``event`` key)."""
        return self.kind

    def to_dict(self) -> dict[str, JSONValue]:
        """The wire form: base keys, then the kind's fields, then kept unknown fields."""
        out: dict[str, JSONValue] = {
            "v": SCHEMA_VERSION,
            "ts": self.ts,
            "job": self.job,
            "stage": self.stage,
            "event": self.event,
        }
        for f in dataclasses.fields(self):
            if f.name in _OWN_FIELDS:
                continue
            out[f.name] = getattr(self, f.name)
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    def to_json(self) -> str:
        """One compact JSON line, without the trailing newline."""
        return json.dumps(
            _json_safe(self.to_dict()), separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )


_OWN_FIELDS = frozenset({"job", "stage", "ts", "extra", "event_name"})

# How a written line begins, for readers that match raw bytes (blut.status.fastdecode):
# LINE_START ts JOB_KEY job STAGE_KEY stage EVENT_KEY kind ", then `,"field":value` for each
# field in FIELD_TYPES order, then the extra keys. Tests tie these to to_json's output.
LINE_START = b'{"v":%d,"ts":' % SCHEMA_VERSION
JOB_KEY = b',"job":'
STAGE_KEY = b',"stage":'
EVENT_KEY = b',"event":"'


def _json_safe(value: JSONValue) -> JSONValue:
    """Replace NaN/inf floats by strings so every line is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@dataclass(frozen=True, kw_only=True)
class UnknownEvent(Event):
    """An event kind this version does not know; kept verbatim."""

    event_name: str = ""

    @property
    def event(self) -> str:
        return self.event_name


@dataclass(frozen=True, kw_only=True)
class JobSubmitted(Event):
    """A job was created in the store."""

    kind: ClassVar[str] = "job_submitted"
    name: str | None = None
    argv: list[str] | None = None
    memory_max: int | None = None
    timeout: float | None = None
    recipe: str | None = None
    sweep: str | None = None


@dataclass(frozen=True, kw_only=True)
class JobStarted(Event):
    """The job's driver is running."""

    kind: ClassVar[str] = "job_started"
    driver: str | None = None
    launcher: str | None = None


@dataclass(frozen=True, kw_only=True)
class StageQueued(Event):
    """A stage waits for its inputs or resources."""

    kind: ClassVar[str] = "stage_queued"


@dataclass(frozen=True, kw_only=True)
class StageCached(Event):
    """A stage's output was found in the cache; nothing was launched."""

    kind: ClassVar[str] = "stage_cached"
    artifact: str | None = None
    producer: str | None = None
    """The job whose run computed the reused output (None: unknown, an older entry)."""


@dataclass(frozen=True, kw_only=True)
class StageStarted(Event):
    """A stage's process was launched."""

    kind: ClassVar[str] = "stage_started"
    unit: str | None = None
    launcher: str | None = None
    memory_max: int | None = None
    contained: bool = True
    log: str | None = None
    gpus: list[int] | None = None
    """The GPU indices allocated to the stage (``CUDA_VISIBLE_DEVICES``); None: none or unknown."""


@dataclass(frozen=True, kw_only=True)
class StagePlaced(Event):
    """A stage sent to a cluster started on a node, contained there or not."""

    kind: ClassVar[str] = "stage_placed"
    node: str | None = None
    launcher: str | None = None
    """What contains it on the node ("systemd", or "bare": the loud fallback)."""
    contained: bool = True


@dataclass(frozen=True, kw_only=True)
class Progress(Event):
    """How far a stage is: ``step`` of ``total`` ``unit``."""

    kind: ClassVar[str] = "progress"
    step: float = 0
    total: float | None = None
    unit: str | None = None


@dataclass(frozen=True, kw_only=True)
class Metric(Event):
    """Named scalar values at a step/epoch (live plots)."""

    kind: ClassVar[str] = "metric"
    values: dict[str, float] = field(default_factory=dict)
    step: int | None = None
    epoch: int | None = None


@dataclass(frozen=True, kw_only=True)
class Resources(Event):
    """A resource sample of a running stage (memory now, against its ceiling)."""

    kind: ClassVar[str] = "resources"
    memory_bytes: int | None = None
    memory_max: int | None = None


@dataclass(frozen=True, kw_only=True)
class Log(Event):
    """A message for humans (warnings show in the CLI and the cockpit)."""

    kind: ClassVar[str] = "log"
    level: LogLevel = "info"
    msg: str = ""


@dataclass(frozen=True, kw_only=True)
class Checkpoint(Event):
    """A checkpoint was written."""

    kind: ClassVar[str] = "checkpoint"
    path: str = ""
    step: int | None = None


@dataclass(frozen=True, kw_only=True)
class StageDone(Event):
    """A stage finished successfully."""

    kind: ClassVar[str] = "stage_done"
    artifact: str | None = None
    seconds: float | None = None
    peak_mem: int | None = None


@dataclass(frozen=True, kw_only=True)
class StageFailed(Event):
    """A stage ended without success; ``reason`` says how."""

    kind: ClassVar[str] = "stage_failed"
    reason: FailureReason = "error"
    detail: str = ""
    exit_code: int | None = None
    signal: str | None = None
    seconds: float | None = None
    peak_mem: int | None = None


@dataclass(frozen=True, kw_only=True)
class CancelRequested(Event):
    """Someone asked to cancel the job (or one stage)."""

    kind: ClassVar[str] = "cancel_requested"
    by: str | None = None


@dataclass(frozen=True, kw_only=True)
class JobDone(Event):
    """Every stage succeeded."""

    kind: ClassVar[str] = "job_done"


@dataclass(frozen=True, kw_only=True)
class JobFailed(Event):
    """The job ended because a stage failed (or its driver was lost)."""

    kind: ClassVar[str] = "job_failed"
    reason: FailureReason = "error"
    detail: str = ""


@dataclass(frozen=True, kw_only=True)
class JobCancelled(Event):
    """The job ended because it was cancelled."""

    kind: ClassVar[str] = "job_cancelled"


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        JobSubmitted,
        JobStarted,
        StageQueued,
        StageCached,
        StageStarted,
        StagePlaced,
        Progress,
        Metric,
        Resources,
        Log,
        Checkpoint,
        StageDone,
        StageFailed,
        CancelRequested,
        JobDone,
        JobFailed,
        JobCancelled,
    )
}
TERMINAL_JOB_EVENTS = frozenset({JobDone.kind, JobFailed.kind, JobCancelled.kind})
_NON_FINITE = frozenset({"nan", "inf", "-inf"})
"""How :func:`_json_safe` writes NaN and ±inf."""

_Check: TypeAlias = Callable[[JSONValue], bool]
"""Whether a value as ``json.loads`` makes it fits a field's type (exact types: no bool for int)."""


def _is_float(value: JSONValue) -> bool:
    kind = type(value)
    return kind is float or kind is int or (kind is str and value in _NON_FINITE)


_SCALAR_CHECKS: dict[object, _Check] = {
    str: lambda v: type(v) is str,
    bool: lambda v: type(v) is bool,
    int: lambda v: type(v) is int,
    float: _is_float,
}


def _check(annotation: object) -> _Check:
    """The check for a field annotated ``annotation`` (a resolved type, not a string).

    Raises TypeError for a type it cannot check, so a new kind of field needs a check here.
    """
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        if not all(isinstance(a, str) for a in args):
            raise TypeError(f"only string literals are checked: {annotation!r}")
        allowed = frozenset(args)
        return lambda v: type(v) is str and v in allowed
    if origin is Union or origin is UnionType:
        rest = [a for a in args if a is not NoneType]
        if len(rest) != 1:
            raise TypeError(f"only `X | None` unions are checked: {annotation!r}")
        inner = _check(rest[0])
        return lambda v: v is None or inner(v)
    if origin is list:
        item = _check(args[0])
        return lambda v: type(v) is list and all(map(item, v))
    if origin is dict:
        key, value = _check(args[0]), _check(args[1])
        return lambda v: type(v) is dict and all(map(key, v)) and all(map(value, v.values()))
    check = _SCALAR_CHECKS.get(annotation)
    if check is None:
        raise TypeError(f"no check for field type {annotation!r}")
    return check


FIELD_TYPES: dict[str, dict[str, object]] = {
    kind: {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name not in _OWN_FIELDS}
    for kind, cls in EVENT_TYPES.items()
    for hints in [get_type_hints(cls)]
}
"""Kind → its own fields' types, in the order the writer writes them (after the base keys)."""
_FIELD_CHECKS: dict[str, dict[str, _Check]] = {
    kind: {name: _check(annotation) for name, annotation in types.items()}
    for kind, types in FIELD_TYPES.items()
}


def event_from_dict(data: Mapping[str, JSONValue]) -> Event:
    """Build a typed event from a decoded line; unknown kinds and keys are kept.

    Raises :class:`SchemaError` when a field of a known kind does not fit its type.
    """
    job = data.get("job")
    kind = data.get("event")
    if not isinstance(job, str) or not isinstance(kind, str):
        raise SchemaError("event needs string 'job' and 'event' keys")
    stage = data.get("stage")
    if stage is not None and not isinstance(stage, str):
        raise SchemaError("'stage' must be a string or null")
    ts = data.get("ts")
    if not isinstance(ts, int | float) or isinstance(ts, bool) or not math.isfinite(ts):
        raise SchemaError("'ts' must be a finite number")
    checks = _FIELD_CHECKS.get(kind, {})
    own: dict[str, JSONValue] = {}
    extra: dict[str, JSONValue] = {}
    for key, value in data.items():
        if key in BASE_KEYS:
            continue
        check = checks.get(key)
        if check is None:
            extra[key] = value
        elif check(value):
            own[key] = value
        else:
            raise SchemaError(f"{kind}: bad value for {key!r}: {value!r}")
    if data.get("v", SCHEMA_VERSION) != SCHEMA_VERSION:
        extra["v"] = data.get("v")
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        return UnknownEvent(job=job, stage=stage, ts=float(ts), extra=extra, event_name=kind)
    return cls(job=job, stage=stage, ts=float(ts), extra=extra, **own)


def parse_line(line: str | bytes) -> Event:
    """Parse one line of status.jsonl; raises :class:`SchemaError` on garbage."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise SchemaError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SchemaError("line is not a JSON object")
    return event_from_dict(data)
