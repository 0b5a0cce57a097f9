"""The telemetry hub: a slow sink never holds the stage up, a failing one warns once, a
lazy one makes no run for a stage that reports nothing; the stage context feeds it."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from blut.payload.context import StageContext
from blut.payload.telemetry import Hub
from blut.status.events import (
    Checkpoint,
    Event,
    Log,
    Metric,
    Progress,
    StageDone,
    StageFailed,
    StageStarted,
    parse_line,
)


class Recorder:
    """A sink (the `Sink` protocol) that records what it gets, optionally held or failing."""

    def __init__(self, name: str = "rec", *, lazy: bool = False, fail_on: int = 0) -> None:
        self.name, self.lazy = name, lazy
        self.events: list[Event] = []
        self.opened = self.closed = 0
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_on = fail_on

    def open(self) -> None:
        self.opened += 1

    def write(self, event: Event) -> None:
        self.entered.set()
        self.gate.wait()
        self.events.append(event)
        if len(self.events) == self.fail_on:
            raise RuntimeError("disk on fire\nsecond line")

    def close(self) -> None:
        self.closed += 1


def metric(step: int) -> Metric:
    return Metric(job="j", stage="s", values={"loss": 1.0 / step}, step=step)


def test_a_held_sink_does_not_hold_up_put_and_gets_everything_in_order() -> None:
    sink, warnings = Recorder(), []
    sink.gate.clear()  # the sink blocks inside its first write until released
    hub = Hub([sink], "j", "s", warnings.append)
    hub.put(metric(1))
    assert sink.entered.wait(10)
    for step in range(2, 201):  # would never return if put waited for the sink
        hub.put(metric(step))
    assert sink.events == []  # still held: all 199 are queued, none written
    sink.gate.set()
    hub.close(timeout=30)
    assert [e.step for e in sink.events if isinstance(e, Metric)] == list(range(1, 201))
    assert sink.closed == 1 and warnings == []


def test_a_full_queue_drops_with_one_warning() -> None:
    sink, warnings = Recorder(), []
    sink.gate.clear()
    hub = Hub([sink], "j", "s", warnings.append, size=4)
    hub.put(metric(1))
    assert sink.entered.wait(10)
    for step in range(2, 20):
        hub.put(metric(step))
    sink.gate.set()
    hub.close(timeout=30)
    assert len(warnings) == 1 and "dropped" in warnings[0]
    assert [e.step for e in sink.events if isinstance(e, Metric)] == [1, 2, 3, 4, 5]


def test_a_failing_sink_warns_once_and_the_others_go_on() -> None:
    bad, good, warnings = Recorder("bad", fail_on=2), Recorder("good"), []
    hub = Hub([bad, good], "j", "s", warnings.append)
    hub.start()
    for step in range(1, 11):
        hub.put(metric(step))
    hub.finish(0)
    hub.close(timeout=30)
    assert warnings == [
        "telemetry: sink bad failed (RuntimeError: disk on fire); it is off for the rest "
        "of this stage"
    ]
    assert len(bad.events) == 2 and bad.closed == 1
    assert [type(e) for e in good.events] == [StageStarted, *[Metric] * 10, StageDone]


def test_close_gives_up_on_a_hung_sink_with_a_warning() -> None:
    sink, warnings = Recorder(), []
    sink.gate.clear()  # never released
    hub = Hub([sink], "j", "s", warnings.append)
    hub.put(metric(1))
    hub.close(timeout=0.2)
    assert len(warnings) == 1 and "did not finish within 0.2 s" in warnings[0]
    sink.gate.set()


def test_a_lazy_sink_opens_at_the_first_record_and_gets_the_start_first() -> None:
    quiet, busy, failed = (Recorder(lazy=True) for _ in range(3))
    for sink, body in ((quiet, []), (busy, [metric(3)]), (failed, [])):
        hub = Hub([sink], "j", "s", [].append)
        hub.start()
        for event in body:
            hub.put(event)
        hub.finish(1 if sink is failed else 0, ValueError("bad row") if sink is failed else None)
        hub.close(timeout=30)
    assert quiet.opened == 0 and quiet.events == [] and quiet.closed == 0
    assert [type(e) for e in busy.events] == [StageStarted, Metric, StageDone]
    assert [type(e) for e in failed.events] == [StageStarted, StageFailed]
    end = failed.events[-1]
    assert isinstance(end, StageFailed) and end.detail == "ValueError: bad row"
    assert end.exit_code == 1 and end.seconds is not None and end.seconds >= 0


def test_only_stage_metric_and_checkpoint_events_are_fed() -> None:
    sink = Recorder()
    hub = Hub([sink], "j", "s", [].append)
    hub.put(Progress(job="j", stage="s", step=1))
    hub.put(Log(job="j", stage="s", msg="hi"))
    hub.put(Checkpoint(job="j", stage="s", path="/c", step=4))
    hub.finish(0)
    hub.close(timeout=30)
    assert [type(e) for e in sink.events] == [Checkpoint, StageDone]


def job_with(tmp_path: Path, sinks: list[str]) -> Path:
    (tmp_path / "job.json").write_text(json.dumps({"telemetry": {"sinks": sinks, "dir": None}}))
    return tmp_path


def test_the_context_feeds_the_console_sink_from_its_events(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    job_dir = job_with(tmp_path, ["jsonl", "console"])
    with StageContext(job_dir=job_dir, stage="train", job_id="j") as ctx:
        ctx.metric({"loss": 0.5}, step=3, epoch=1)
        ctx.progress(3, 10)
        ctx.emit(Checkpoint, path="/ck/epoch-0001.pt", step=3)
        ctx.finish(0)
    lines = [x for x in capfd.readouterr().out.splitlines() if x.startswith("telemetry:")]
    assert lines[:3] == [
        "telemetry: stage train started",
        "telemetry: step 3 epoch 1 loss=0.5",
        "telemetry: checkpoint step 3: /ck/epoch-0001.pt",
    ]
    assert lines[3].startswith("telemetry: stage train done in ") and len(lines) == 4


def test_a_crash_reaches_the_sinks_and_no_sinks_means_no_thread(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a").mkdir()
    job_dir = job_with(tmp_path / "a", ["console"])
    with pytest.raises(KeyError), StageContext(job_dir=job_dir, stage="s", job_id="j"):
        raise KeyError("missing")
    out = capfd.readouterr().out
    assert "telemetry: stage s failed after" in out and "(KeyError: 'missing')" in out
    plain = StageContext(job_dir=tmp_path, stage="s", job_id="j")  # no job.json: no sinks
    with plain:
        plain.metric({"x": 1.0})
    assert plain.__dict__.get("_telemetry", "unset") in (None, "unset")


def test_a_bad_record_or_a_failing_sink_warns_in_the_log_and_the_stream(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "job.json").write_text(json.dumps({"telemetry": {"sinks": ["carrier-pigeon"]}}))
    with StageContext(job_dir=tmp_path, stage="s", job_id="j") as ctx:
        ctx.metric({"x": 1.0})
    assert (
        "warning: telemetry: off for this stage: unknown telemetry sink" in capfd.readouterr().err
    )
    events = [parse_line(x) for x in (tmp_path / "status.jsonl").read_text().splitlines()]
    warned = [e for e in events if isinstance(e, Log) and e.level == "warning"]
    assert len(warned) == 1 and "carrier-pigeon" in warned[0].msg
