"""Event schema v1: typed round trips, unknown kinds and fields kept, garbage rejected."""

from __future__ import annotations

import json
from typing import get_args

import pytest

from blut.status.errors import SchemaError
from blut.status.events import (
    EVENT_TYPES,
    FailureReason,
    JobSubmitted,
    Log,
    LogLevel,
    Metric,
    StageFailed,
    StageStarted,
    UnknownEvent,
    parse_line,
)


@pytest.mark.parametrize("kind", sorted(EVENT_TYPES))
def test_every_kind_round_trips(kind: str) -> None:
    event = EVENT_TYPES[kind](job="j1", stage="train", ts=12.5)
    line = event.to_json()
    again = parse_line(line)
    assert type(again) is type(event)
    assert again == event
    assert again.to_json() == line
    data = json.loads(line)
    assert (data["v"], data["ts"], data["job"], data["stage"], data["event"]) == (
        1,
        12.5,
        "j1",
        "train",
        kind,
    )


def test_typed_fields_parse() -> None:
    event = parse_line(
        '{"v":1,"ts":3,"job":"j","stage":"s","event":"stage_failed","reason":"oom",'
        '"exit_code":null,"signal":"KILL","peak_mem":100}'
    )
    assert isinstance(event, StageFailed)
    assert (event.reason, event.signal, event.peak_mem) == ("oom", "KILL", 100)


def test_unknown_fields_survive_round_trip() -> None:
    line = '{"v":1,"ts":1.0,"job":"j","stage":null,"event":"job_submitted","name":"x","future":{"a":[1,2]}}'
    event = parse_line(line)
    assert isinstance(event, JobSubmitted)
    assert event.extra == {"future": {"a": [1, 2]}}
    assert json.loads(event.to_json())["future"] == {"a": [1, 2]}


def test_unknown_event_kind_survives_round_trip() -> None:
    line = '{"v":1,"ts":2.0,"job":"j","stage":"s","event":"gpu_sample","util":0.5}'
    event = parse_line(line)
    assert isinstance(event, UnknownEvent)
    assert event.event == "gpu_sample"
    assert json.loads(event.to_json()) == json.loads(line)


def test_non_finite_floats_become_strings() -> None:
    line = Metric(job="j", values={"loss": float("nan"), "lr": float("inf")}).to_json()
    assert json.loads(line)["values"] == {"loss": "nan", "lr": "inf"}


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        "[1, 2]",
        '{"v":1,"ts":1,"event":"log"}',
        '{"v":1,"ts":1,"job":"j"}',
        '{"v":1,"ts":"x","job":"j","event":"log"}',
        '{"v":1,"ts":NaN,"job":"j","event":"log"}',
        '{"v":1,"ts":1e999,"job":"j","event":"log"}',
        '{"v":1,"ts":1,"job":"j","stage":3,"event":"log"}',
        b"\xff\xfe",
    ],
)
def test_garbage_is_a_schema_error(line: str | bytes) -> None:
    with pytest.raises(SchemaError):
        parse_line(line)


def line(kind: str, **fields: object) -> str:
    head = {"v": 1, "ts": 1, "job": "j", "stage": "s", "event": kind}
    return json.dumps({**head, **fields})


@pytest.mark.parametrize(
    "bad",
    [
        line("stage_failed", reason="bogus"),
        line("job_failed", reason="Oom"),
        line("log", level="fatal", msg="x"),
        line("metric", values={"loss": "abc"}),
        line("metric", values={"loss": True}),
        line("metric", values={"loss": None}),
        line("metric", values={"loss": [1.0]}),
        line("metric", values={"loss": 1.0}, step=1.5),
        line("stage_started", gpus=[0, 1.5]),
        line("stage_started", gpus=[True]),
        line("stage_started", contained=1),
        line("resources", memory_bytes=True),
        line("resources", memory_bytes=1.5),
        line("stage_done", seconds=[1]),  # was a TypeError (unhashable) out of the reader
        line("stage_done", seconds={"a": 1}),
        line("stage_done", seconds="NaN"),
        line("job_submitted", argv=["a", 1]),
    ],
)
def test_a_field_off_its_type_is_a_schema_error(bad: str) -> None:
    with pytest.raises(SchemaError):
        parse_line(bad)


def test_allowed_values_come_from_the_literal_types() -> None:
    for reason in get_args(FailureReason):
        event = parse_line(line("stage_failed", reason=reason))
        assert isinstance(event, StageFailed) and event.reason == reason
    for level in get_args(LogLevel):
        event = parse_line(line("log", level=level, msg="m"))
        assert isinstance(event, Log) and event.level == level


def test_numbers_and_non_finite_strings_fit_float_fields() -> None:
    values = {"a": 1, "b": -2.5e-7, "c": "nan", "d": "inf", "e": "-inf"}
    event = parse_line(line("metric", values=values, step=3, epoch=None))
    assert isinstance(event, Metric) and event.values == values
    assert parse_line(event.to_json()) == event
    started = parse_line(line("stage_started", gpus=[0, 3], contained=False))
    assert isinstance(started, StageStarted) and started.gpus == [0, 3]
