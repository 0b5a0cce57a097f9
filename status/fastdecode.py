"""Decode a job's status lines fast when only its state and plots are needed (the cockpit).

Decoding is the hot path when the cockpit opens on a large history (1,000 jobs,
1M events). :func:`decode_lines` therefore skips what the state cannot use:
of a run of consecutive high-volume events (progress, metric) only the newest
progress per stage and an evenly spaced sample of at most
:data:`METRIC_SAMPLE` metric lines per run are parsed; of resource samples an
evenly spaced sample plus the highest and the newest per stage (peak and current
memory stay exact). Every other event is parsed and kept in order. Lines are
recognised cheaply by the writer's byte layout (``LINE_START`` and the other
markers of :mod:`blut.status.events`); lines in any other shape take the full
parser.

Every event handed out comes from :func:`~blut.status.events.parse_line`, and
every plot-only line left unparsed in :attr:`Decoded.raw` is one the full parser
accepts: it has the writer's exact shape (:func:`wire_pattern`), or it was parsed
to check. A skipped line is never validated (garbage in it is not counted).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import NoneType, UnionType
from typing import Literal, Union, get_args, get_origin

from blut.status.errors import SchemaError
from blut.status.events import (
    EVENT_KEY,
    FIELD_TYPES,
    JOB_KEY,
    LINE_START,
    STAGE_KEY,
    Event,
    Metric,
    Progress,
    Resources,
    parse_line,
)

METRIC_SAMPLE = 64
"""Most metric lines parsed out of one run of consecutive progress/metric lines."""
RESOURCE_SAMPLE = 32
"""Most resource samples (besides the peak) kept out of one run, on the fast path."""

_PROGRESS, _METRIC, _RESOURCES = (k.kind.encode() for k in (Progress, Metric, Resources))
_SKIPPABLE = frozenset({_PROGRESS, _METRIC, _RESOURCES})
_MEMORY_KEY = b'"memory_bytes":'
_FAST_MARKERS = {kind: EVENT_KEY + kind + b'"' for kind in (_PROGRESS, _METRIC, _RESOURCES)}
_IMPORTANT = re.compile(re.escape(EVENT_KEY) + b"(?!(?:" + b"|".join(sorted(_SKIPPABLE)) + b')")')
_MEMORY = re.compile(re.escape(_FAST_MARKERS[_RESOURCES] + b"," + _MEMORY_KEY) + rb"(\d+)")

# JSON values as the writer spells them (compact, ASCII strings), each a subset of what
# json.loads reads into the matching Python type. Anything else takes the full parser.
_CHARS = rb"[\x20\x21\x23-\x5b\x5d-\x7f]*"  # unescaped: printable ASCII but " and \
_STR = b'"' + _CHARS + rb'(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})' + _CHARS + b')*"'
_INT = rb"-?(?:0|[1-9][0-9]{0,19})"
_NUM = _INT + rb"(?:\.[0-9]{1,24})?(?:[eE][+-]?[0-9]{1,3})?"
_TS = _INT + rb"(?:\.[0-9]{1,24})?(?:[eE](?:-[0-9]{1,3}|\+?[0-9]{1,2}))?"  # finite, as ts must be
_SCALARS: dict[object, bytes] = {
    str: _STR,
    int: _INT,
    float: _NUM + rb'|"(?:nan|inf|-inf)"',
    bool: b"true|false",
}


def _value(annotation: object) -> bytes:
    """A regex for a JSON value of a field annotated ``annotation``, as the writer writes it."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        alternatives = b"|".join(re.escape(json.dumps(a).encode()) for a in args)
    elif origin is Union or origin is UnionType:
        alternatives = b"|".join(b"null" if a is NoneType else _value(a) for a in args)
    elif origin is list:
        item = _value(args[0])
        alternatives = rb"\[(?:" + item + b"(?:," + item + rb")*)?\]"
    elif origin is dict and args[0] is str:
        pair = _STR + b":" + _value(args[1])
        alternatives = rb"\{(?:" + pair + b"(?:," + pair + rb")*)?\}"
    elif annotation in _SCALARS:
        alternatives = _SCALARS[annotation]
    else:
        raise TypeError(f"no wire pattern for field type {annotation!r}")
    return b"(?:" + alternatives + b")"


@functools.cache
def wire_pattern(kind: str) -> re.Pattern[bytes]:
    """The exact shape of a ``kind`` line from the writer (no newline, no extra keys).

    A line that fully matches it parses without error.
    """
    parts = [
        re.escape(LINE_START) + _TS,
        re.escape(JOB_KEY) + _STR,
        re.escape(STAGE_KEY) + b"(?:" + _STR + b"|null)",
        re.escape(EVENT_KEY + kind.encode() + b'"'),
    ]
    for name, annotation in FIELD_TYPES[kind].items():
        parts.append(re.escape(b',"' + name.encode() + b'":') + _value(annotation))
    return re.compile(b"".join(parts) + rb"\}")


_PLOT_LINE = re.compile(b"|".join(wire_pattern(k.kind).pattern for k in (Metric, Resources)))


@dataclass
class Decoded:
    """Events decoded from some lines, and how many lines were not events."""

    events: list[Event] = field(default_factory=list)
    garbage: int = 0
    lines: int = 0
    raw: list[bytes] = field(default_factory=list)
    """Sampled metric/resources lines for the plots only, left unparsed (lazy)."""


def _parse(line: bytes, out: Decoded) -> None:
    try:
        out.events.append(parse_line(line))
    except SchemaError:
        out.garbage += 1


def _keep_raw(line: bytes, out: Decoded) -> None:
    """Keep a plot-only line unparsed if the full parser would accept it, else count it."""
    if not _PLOT_LINE.fullmatch(line):
        try:
            parse_line(line)
        except SchemaError:
            out.garbage += 1
            return
    out.raw.append(line)


def _sample(lines: list[bytes], keep: int) -> list[bytes]:
    return [lines[i] for i in _sample_at(len(lines), keep)]


def _sample_at(count: int, keep: int) -> list[int]:
    """Positions of up to ``keep`` evenly spread items of ``count`` (the last included)."""
    if count <= keep:
        return list(range(count))
    step = count / keep
    return [*(int(i * step) for i in range(keep - 1)), count - 1]


def decode_lines(lines: Iterable[bytes]) -> Decoded:
    """Decode status lines into events, skipping superseded progress and excess metrics.

    Order is kept between every event that is parsed; a skipped line is never
    validated (a garbage line in a skipped run is not counted).
    """
    out = Decoded()
    progress: dict[bytes, bytes] = {}
    metrics: list[bytes] = []
    resources: list[bytes] = []
    peaks: dict[bytes, tuple[int, int]] = {}
    """Stage → (its highest memory sample, the position of that line in ``resources``)."""
    newest: dict[bytes, int] = {}
    """Stage → the position of its newest memory sample in ``resources``."""

    def flush() -> None:
        for line in _sample(metrics, METRIC_SAMPLE):
            _parse(line, out)
        # A sample of the memory lines, each stage's peak and its newest, parsed in stream
        # order (by position: equal lines are still distinct samples), so each stage's
        # newest sample comes last and stays "memory now".
        chosen = set(_sample_at(len(resources), METRIC_SAMPLE))
        chosen.update(newest.values())
        chosen.update(at for _, at in peaks.values())
        for at in sorted(chosen):
            _parse(resources[at], out)
        for line in progress.values():
            _parse(line, out)
        metrics.clear()
        resources.clear()
        peaks.clear()
        newest.clear()
        progress.clear()

    for line in lines:
        if not line.strip():
            continue
        out.lines += 1
        if line.startswith(LINE_START):
            at = line.find(EVENT_KEY)
            if at > 0:
                start = at + len(EVENT_KEY)
                kind = line[start : line.find(b'"', start)]
                if kind in _SKIPPABLE:
                    s = line.find(STAGE_KEY)
                    stage = line[s + len(STAGE_KEY) : at] if 0 < s < at else b"null"
                    if kind == _PROGRESS:
                        progress.pop(stage, None)
                        progress[stage] = line
                    elif kind == _METRIC:
                        metrics.append(line)
                    else:
                        newest[stage] = len(resources)
                        resources.append(line)
                        m = line.find(_MEMORY_KEY)
                        end = line.find(b",", m) if m > 0 else -1
                        digits = line[m + len(_MEMORY_KEY) : end if end > 0 else -1]
                        if digits.isdigit():
                            value = int(digits)
                            if stage not in peaks or value > peaks[stage][0]:
                                peaks[stage] = (value, newest[stage])
                    continue
        if progress or metrics or resources:
            flush()
        _parse(line, out)
    flush()
    return out


def _line_at(buf: bytes, at: int, lo: int) -> tuple[int, int]:
    """(start, end) of the line holding byte ``at`` (``end`` at its newline)."""
    start = buf.rfind(b"\n", lo, at) + 1 or lo
    end = buf.find(b"\n", at)
    return start, (len(buf) if end < 0 else end)


def _one_stage(buf: bytes, lo: int, hi: int, marker: bytes, count: int) -> bytes | None:
    """The stage token (``"main"``/``null``) if every ``marker`` line of the run has it."""
    last = buf.rfind(marker, lo, hi)
    start, _ = _line_at(buf, last, lo)
    s = buf.find(STAGE_KEY, start, last)
    if s < 0:
        return None
    stage = buf[s + len(STAGE_KEY) : last]
    return stage if buf.count(STAGE_KEY + stage + marker, lo, hi) == count else None


def _spread(buf: bytes, lo: int, hi: int, marker: bytes, count: int, keep: int) -> list[int]:
    """Start offsets of up to ``keep`` evenly spread ``marker`` lines (the last included)."""
    starts: list[int] = []
    if count <= keep:
        at = buf.find(marker, lo, hi)
        while at >= 0:
            starts.append(_line_at(buf, at, lo)[0])
            at = buf.find(marker, at + 1, hi)
        return starts
    span = hi - lo
    seen: set[int] = set()
    for i in range(keep - 1):
        at = buf.find(marker, lo + span * i // keep, hi)
        if at >= 0:
            start = _line_at(buf, at, lo)[0]
            if start not in seen:
                seen.add(start)
                starts.append(start)
    last = _line_at(buf, buf.rfind(marker, lo, hi), lo)[0]
    if last not in seen:
        starts.append(last)
    return starts


def _fast_run(buf: bytes, lo: int, hi: int, out: Decoded) -> bool:
    """Decode a run of progress/metric/resources lines without visiting each line.

    Only for runs in the writer's canonical shape where each kind comes from one
    stage (the common case: one stage streaming); returns False (nothing done)
    otherwise, and the caller takes the line-by-line path.
    """
    lines = buf.count(b"\n", lo, hi)
    if lines == 0:
        return False
    counts = {kind: buf.count(marker, lo, hi) for kind, marker in _FAST_MARKERS.items()}
    if sum(counts.values()) != lines:
        return False
    for kind, n in counts.items():
        if n and _one_stage(buf, lo, hi, _FAST_MARKERS[kind], n) is None:
            return False
    lazy: list[int] = []
    eager: list[int] = []
    if counts[_METRIC]:
        marker = _FAST_MARKERS[_METRIC]
        lazy += _spread(buf, lo, hi, marker, counts[_METRIC], METRIC_SAMPLE)
    if counts[_RESOURCES]:
        marker = _FAST_MARKERS[_RESOURCES]
        kept = _spread(buf, lo, hi, marker, counts[_RESOURCES], RESOURCE_SAMPLE)
        peak = max(((int(m[1]), m.start()) for m in _MEMORY.finditer(buf, lo, hi)), default=None)
        if peak is not None:
            start = _line_at(buf, peak[1], lo)[0]
            if start != kept[-1]:
                eager.append(start)  # the peak first: the newest sample stays "memory now"
        lazy += kept[:-1]
        eager.append(kept[-1])
    if counts[_PROGRESS]:
        last = buf.rfind(_FAST_MARKERS[_PROGRESS], lo, hi)
        eager.append(_line_at(buf, last, lo)[0])
    for start in lazy:
        end = buf.find(b"\n", start, hi)
        _keep_raw(buf[start : hi if end < 0 else end], out)
    for start in eager:
        end = buf.find(b"\n", start, hi)
        _parse(buf[start : hi if end < 0 else end], out)
    out.lines += lines
    return True


def decode_buffer(buf: bytes) -> Decoded:
    """:func:`decode_lines` over a buffer of whole lines, much faster on long runs.

    Lines other than progress/metric/resources are found with one regex scan and
    parsed in order; each run between them is decoded by :func:`_fast_run` when
    it has the canonical shape, else line by line.
    """
    out = Decoded()
    pos = 0
    size = len(buf)

    def run(lo: int, hi: int) -> None:
        if hi <= lo:
            return
        if not _fast_run(buf, lo, hi, out):
            part = decode_lines(buf[lo:hi].split(b"\n"))
            out.events.extend(part.events)
            out.raw.extend(part.raw)
            out.garbage += part.garbage
            out.lines += part.lines

    for match in _IMPORTANT.finditer(buf):
        start, end = _line_at(buf, match.start(), 0)
        if start < pos:
            continue  # a second match on a line already taken
        run(pos, start)
        line = buf[start:end]
        if line.strip():
            out.lines += 1
            _parse(line, out)
        pos = end + 1
    run(pos, size)
    return out
