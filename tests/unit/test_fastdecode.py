"""The fast decoder: what it keeps of a stream, against the full parser and the writer."""

from __future__ import annotations

from blut.status.events import (
    Event,
    JobSubmitted,
    Log,
    Metric,
    Progress,
    Resources,
    StageDone,
    StageStarted,
)
from blut.status.fastdecode import METRIC_SAMPLE, decode_buffer, decode_lines
from blut.status.jobstate import fold
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


def test_decode_keeps_the_peak_and_the_newest_memory_sample() -> None:
    mem = [5, 9, 3, *range(10, 10 + 500), 7]
    events = [Resources(job="j", stage="s", memory_bytes=m * 1000, ts=i) for i, m in enumerate(mem)]
    view = fold("j", decode_lines(lines(*events)).events)
    assert view.stages["s"].peak_memory == 509_000
    assert view.stages["s"].memory_now == 7_000


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


def test_each_stage_keeps_its_newest_memory_sample() -> None:
    samples = [Resources(job="j", stage="a", memory_bytes=100 - i) for i in range(100)]
    samples.append(Resources(job="j", stage="b", memory_bytes=5))
    buf = b"".join(map(encode_line, [*samples, StageDone(job="j", stage="b")]))
    for decoded in (decode_buffer(buf), decode_lines(buf.split(b"\n"))):
        stages = fold("j", decoded.events).stages
        assert (stages["a"].memory_now, stages["a"].peak_memory) == (1, 100)
        assert (stages["b"].memory_now, stages["b"].peak_memory) == (None, 5)  # it ended since
