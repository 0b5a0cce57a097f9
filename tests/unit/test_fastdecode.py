"""The fast decoder: what it keeps of a stream, against the full parser and the writer."""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Sequence
from types import NoneType, UnionType
from typing import Literal, get_args, get_origin
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blut.status import fastdecode
from blut.status.errors import SchemaError
from blut.status.events import (
    EVENT_TYPES,
    FIELD_TYPES,
    LINE_START,
    Event,
    JobFailed,
    JobSubmitted,
    Log,
    Metric,
    Progress,
    Resources,
    StageDone,
    StageFailed,
    StageStarted,
    UnknownEvent,
    parse_line,
)
from blut.status.fastdecode import (
    METRIC_SAMPLE,
    Decoded,
    decode_buffer,
    decode_lines,
    wire_pattern,
)
from blut.status.jobstate import JobView, fold
from blut.status.writer import encode_line


def lines(*events: Event) -> list[bytes]:
    return [encode_line(e).rstrip(b"\n") for e in events]


def test_decode_keeps_the_last_progress_per_stage_in_order() -> None:
    j = "job"
    decoded = decode_lines(
        lines(
            StageStarted(job=j, stage="a"),
            *[Progress(job=j, stage="a", step=i, total=10) for i in range(5)],
            *[Progress(job=j, stage="b", step=i, total=10) for i in range(3)],
            Log(job=j, stage="a", msg="mid"),
            Progress(job=j, stage="a", step=7, total=10),
            StageDone(job=j, stage="a"),
        )
    )
    kinds = [(e.event, e.stage, getattr(e, "step", None)) for e in decoded.events]
    assert kinds == [
        ("stage_started", "a", None),
        ("progress", "a", 4),
        ("progress", "b", 2),
        ("log", "a", None),
        ("progress", "a", 7),
        ("stage_done", "a", None),
    ]
    assert decoded.lines == 12


def test_decode_samples_metrics_and_counts_garbage() -> None:
    metrics = lines(*[Metric(job="j", step=i, values={"loss": float(i)}) for i in range(1000)])
    decoded = decode_lines([b"not json", *metrics, b'{"event": "x"}', b""])
    got = [e for e in decoded.events if isinstance(e, Metric)]
    assert len(got) == METRIC_SAMPLE
    assert got[0].step == 0 and got[-1].step == 999
    assert decoded.garbage == 2


def test_decode_takes_non_canonical_lines_through_the_full_parser() -> None:
    line = b'{"event":"progress","job":"j","stage":"s","ts":1,"step":3,"total":4}'
    decoded = decode_lines([line, line])
    assert [getattr(e, "step", None) for e in decoded.events] == [3, 3]


def test_equal_memory_lines_are_distinct_samples() -> None:
    # Found by the property test below: the same line twice (say a stage's memory unknown
    # at two moments with one clock tick) must not let an older sample win "memory now".
    unknown = Resources(job="j", stage="a", ts=1.0, memory_bytes=None)
    stream = lines(
        unknown,
        *[Resources(job="j", stage="a", ts=2.0 + i, memory_bytes=i) for i in range(1, 100)],
        unknown,
        Resources(job="j", stage="b", ts=200.0, memory_bytes=5),
    )
    for decode in (decode_lines, by_lines_of):
        view = fold("j", decode(stream).events)
        assert view.stages["a"].memory_now is None and view.stages["a"].peak_memory == 99


def by_lines_of(stream: list[bytes]) -> Decoded:
    return decode_buffer(b"".join(line + b"\n" for line in stream))


def test_decode_keeps_the_peak_and_the_newest_memory_sample() -> None:
    mem = [5, 9, 3, *range(10, 10 + 500), 7]
    events = [Resources(job="j", stage="s", memory_bytes=m * 1000, ts=i) for i, m in enumerate(mem)]
    view = fold("j", decode_lines(lines(*events)).events)
    assert view.stages["s"].peak_memory == 509_000
    assert view.stages["s"].memory_now == 7_000


def test_each_stage_keeps_its_newest_memory_sample() -> None:
    samples = [Resources(job="j", stage="a", memory_bytes=100 - i) for i in range(100)]
    samples.append(Resources(job="j", stage="b", memory_bytes=5))
    buf = b"".join(map(encode_line, [*samples, StageDone(job="j", stage="b")]))
    for decoded in (decode_buffer(buf), decode_lines(buf.split(b"\n"))):
        stages = fold("j", decoded.events).stages
        assert (stages["a"].memory_now, stages["a"].peak_memory) == (1, 100)
        assert (stages["b"].memory_now, stages["b"].peak_memory) == (None, 5)  # it ended since


def test_fast_decoder_matches_the_line_decoder() -> None:
    written = [encode_line(JobSubmitted(job="j", ts=1.0, name="x"))]
    for i in range(500):
        written.append(encode_line(Progress(job="j", stage="main", ts=2.0 + i, step=i, total=500)))
        if i % 3 == 0:
            written.append(
                encode_line(Metric(job="j", stage="main", ts=2.0 + i, step=i, values={"l": i}))
            )
        if i % 7 == 0:
            written.append(
                encode_line(Resources(job="j", stage="main", ts=2.0 + i, memory_bytes=i * 10))
            )
        if i == 250:
            written.append(b"garbage\n")
    buf = b"".join(written)
    fast, slow = decode_buffer(buf), decode_lines(buf.split(b"\n"))
    assert fast.lines == slow.lines and fast.garbage == slow.garbage == 1

    def last(decoded: object, kind: str) -> object:
        return [e for e in decoded.events if e.event == kind][-1]  # type: ignore[attr-defined]

    assert last(fast, "progress") == last(slow, "progress")
    peaks = [e.memory_bytes or 0 for e in fast.events if isinstance(e, Resources)]
    assert max(peaks) == max(range(0, 500, 7)) * 10
    assert decode_buffer(buf.replace(b"garbage\n", b"")).raw  # plot samples: parsed lazily


# ---- writer and decoder, tied ----------------------------------------------------------

INTS = st.integers(0, 2**50)
TEXT = st.text(max_size=12)
NAMES = st.text(alphabet=string.ascii_letters + string.digits + "_/.-", min_size=1, max_size=8)
FAST_KINDS = (Progress.kind, Metric.kind, Resources.kind)


def values(
    annotation: object, ints: st.SearchStrategy[int], text: st.SearchStrategy[str]
) -> st.SearchStrategy[object]:
    """Values the writer may be given for a field annotated ``annotation``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return st.sampled_from(args)
    if origin is UnionType:
        return st.one_of(*(st.none() if a is NoneType else values(a, ints, text) for a in args))
    if origin is list:
        return st.lists(values(args[0], ints, text), max_size=3)
    if origin is dict:
        return st.dictionaries(text, values(args[1], ints, text), max_size=3)
    scalars: dict[object, st.SearchStrategy[object]] = {
        str: text,
        int: ints,
        float: st.floats() | ints,
        bool: st.booleans(),
    }
    return scalars[annotation]


def events(
    kinds: Sequence[str] = tuple(EVENT_TYPES),
    stages: Sequence[str | None] = (None, "a", "b"),
    ints: st.SearchStrategy[int] = INTS,
    text: st.SearchStrategy[str] = TEXT,
) -> st.SearchStrategy[Event]:
    """Events of ``kinds`` with every field drawn from its type."""
    return st.one_of(
        *(
            st.builds(
                EVENT_TYPES[kind],
                job=st.just("20250101-000000-abcd"),
                stage=st.sampled_from(stages),
                ts=st.floats(0, 2e9),
                **{name: values(tp, ints, text) for name, tp in FIELD_TYPES[kind].items()},
            )
            for kind in kinds
        )
    )


def bad(event: Event, **fields: object) -> bytes:
    """``event`` as the writer lays it out, with ``fields`` replaced by values off the schema."""
    return json.dumps({**json.loads(encode_line(event)), **fields}, separators=(",", ":")).encode()


BAD_REASON = bad(StageFailed(job="j", stage="a", ts=1.0), reason="bogus")
BAD_METRIC = bad(Metric(job="j", stage="a", ts=1.0), values={"loss": "abc"})
GARBAGE = [
    b"garbage",
    b'{"v":1,"ts":1,"job":"j"',
    BAD_REASON,
    bad(JobFailed(job="j", ts=1.0), reason="OOM"),
    bad(Log(job="j", stage="b", ts=1.0), level="fatal"),
    bad(StageStarted(job="j", stage="a", ts=1.0), gpus=[0, 1.5]),
]
"""Lines the full parser rejects that no decoder may skip: each one is counted."""
BAD_METRICS = st.builds(
    lambda stage, value: bad(Metric(job="j", stage=stage, ts=1.0), values={"loss": value}),
    st.sampled_from([None, "a", "b"]),
    st.sampled_from(["abc", True, None, [1]]),
)
"""Rejected lines of a kind the decoders may skip: counted only if looked at."""
FAST_LINES = events(kinds=FAST_KINDS).map(encode_line)
STREAMS = st.lists(
    st.one_of(
        st.lists(FAST_LINES, max_size=3),
        st.lists(FAST_LINES, min_size=60, max_size=150),  # past the sample sizes
        events().map(lambda e: [encode_line(e)]),
        st.just(
            [encode_line(UnknownEvent(job="j", ts=1.0, event_name="gpu", extra={"util": 0.5}))]
        ),
        st.sampled_from(GARBAGE).map(lambda line: [line + b"\n"]),
        BAD_METRICS.map(lambda line: [line + b"\n"]),
    ),
    max_size=30,
).map(lambda chunks: [line for chunk in chunks for line in chunk])


def parsed(line: bytes) -> Event | None:
    try:
        return parse_line(line)
    except SchemaError:
        return None


def stage_state(view: JobView) -> dict[str, tuple[object, ...]]:
    """What the cockpit shows of each stage (stages it knows only by name left out)."""
    shown = {
        name: (s.state, s.progress, s.memory_now, s.peak_memory) for name, s in view.stages.items()
    }
    return {name: state for name, state in shown.items() if state != ("queued", None, None, None)}


def by_lines(buf: bytes) -> Decoded:
    return decode_lines(buf.split(b"\n"))


@pytest.mark.parametrize("decode", [decode_buffer, by_lines])
@settings(max_examples=200, deadline=None)
@given(stream=STREAMS)
def test_decoders_agree_with_the_full_parser(
    decode: Callable[[bytes], Decoded], stream: list[bytes]
) -> None:
    lines = [line.rstrip(b"\n") for line in stream]
    full = [parsed(line) for line in lines]
    events = [e for e in full if e is not None]
    decoded = decode(b"".join(stream))
    assert decoded.lines == len(lines)
    # every event is the full parser's, and every event not sampled is there, in order
    assert all(any(e == p for p in events) for e in decoded.events)
    kept = [e for e in decoded.events if e.event not in FAST_KINDS]
    assert kept == [e for e in events if e.event not in FAST_KINDS]
    # the newest progress per stage, the peak and the newest memory sample per stage
    assert stage_state(fold("j", decoded.events)) == stage_state(fold("j", events))
    # garbage is counted unless skipped unread, and never left for the plots
    assert sum(line in GARBAGE for line in lines) <= decoded.garbage <= full.count(None)
    assert all(line in lines and parsed(line) is not None for line in decoded.raw)


@settings(max_examples=300, deadline=None)
@given(
    stream=st.lists(
        events(FAST_KINDS, stages=["main"], text=NAMES).map(encode_line), min_size=1, max_size=200
    )
)
def test_writer_lines_take_the_fast_path(stream: list[bytes]) -> None:
    with mock.patch.object(fastdecode, "parse_line", wraps=parse_line) as parse:
        decoded = decode_buffer(b"".join(stream))
    # only the newest progress, the peak and the newest memory sample are parsed; the sampled
    # metric and memory lines are left raw, and none needed parsing to be checked
    assert parse.call_count == len(decoded.events) <= 3
    assert decoded.garbage == 0 and decoded.lines == len(stream)
    metrics = [line.rstrip(b"\n") for line in stream if b'"event":"metric"' in line]
    assert min(len(metrics), METRIC_SAMPLE) <= len(decoded.raw)
    assert not metrics or metrics[-1] in decoded.raw


@settings(max_examples=500, deadline=None)
@given(event=events(ints=st.integers(-(2**63), 2**63), text=NAMES))
def test_writer_lines_have_the_wire_shape(event: Event) -> None:
    line = encode_line(event).rstrip(b"\n")
    assert line.startswith(LINE_START)
    assert wire_pattern(event.event).fullmatch(line), line


@pytest.mark.parametrize("kind", sorted(EVENT_TYPES))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_a_line_of_the_wire_shape_parses(kind: str, data: st.DataObject) -> None:
    """Plot lines are left raw when they have this shape: every line of it must parse."""
    line = data.draw(st.from_regex(wire_pattern(kind), fullmatch=True))
    event = parse_line(line)
    assert event.event == kind
    again = event.to_json()  # what a read-modify-write writes back reads the same
    assert parse_line(again).to_json() == again


@pytest.mark.parametrize("line", [BAD_REASON, BAD_METRIC])
def test_lines_off_the_schema_are_garbage_on_every_path(line: bytes) -> None:
    with pytest.raises(SchemaError):
        parse_line(line)
    good = encode_line(Metric(job="j", stage="a", values={"loss": 1.0}))
    for buf in (line + b"\n", good * 3 + line + b"\n" + good * 3):
        for decoded in (decode_buffer(buf), by_lines(buf)):
            assert decoded.garbage == 1
            assert line not in decoded.raw
            assert all(isinstance(e, Metric) and e.values == {"loss": 1.0} for e in decoded.events)
