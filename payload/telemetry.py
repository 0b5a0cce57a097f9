"""Feeding a stage's telemetry sinks without blocking it: a bounded queue and one thread.

`StageContext` hands every event it emits to a `Hub` (`put`, which never waits),
plus the stage's start and end (`start`, `finish`: ``stage_started``,
``stage_done`` or ``stage_failed`` with the seconds it ran). One daemon thread
takes them off the queue and writes them to each sink (`blut.payload.sinks`).
A sink that raises is switched off with one warning; a full queue drops
records with one warning; `close` waits a bounded time for the thread, then
warns and lets the stage end. Nothing a sink does fails the stage.

Sinks that make runs elsewhere (``lazy``: TensorBoard, MLflow, wandb) open at
the first metric, checkpoint or failure, and then get the stage's start first:
a stage that reports nothing and succeeds (encode, say) makes no empty run.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from blut.status.events import Checkpoint, Event, Metric, StageDone, StageFailed, StageStarted

FED = (StageStarted, Metric, Checkpoint, StageDone, StageFailed)
"""The events sinks get; the rest (progress, logs) stay in status.jsonl only."""
QUEUE_SIZE = 4096
CLOSE_TIMEOUT = 60.0
"""Seconds a stage waits at its end for the sinks to write what is queued."""
_STOP = object()


class Sink(Protocol):
    """Where telemetry records go. Called from the hub's thread only."""

    name: str
    lazy: bool
    """True: open only once the stage reports something (see the module doc)."""

    def open(self) -> None:
        """Import what the sink needs and create its run (may take seconds)."""

    def write(self, event: Event) -> None:
        """Record one event (one of `FED`)."""

    def close(self) -> None:
        """Flush and end the run."""


class Hub:
    """The queue and thread between a stage and its sinks."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        job: str,
        stage: str,
        warn: Callable[[str], None],
        *,
        size: int = QUEUE_SIZE,
    ) -> None:
        self.job, self.stage = job, stage
        self._warn = warn
        self._queue: queue.Queue[object] = queue.Queue(size)
        self._sinks = list(sinks)
        self._opened: set[str] = set()
        self._started: Event | None = None
        self._began = time.monotonic()
        self._ended = False
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name="blut-telemetry", daemon=True)
        self._thread.start()

    def put(self, event: Event) -> None:
        """Queue ``event`` for the sinks when they take its kind; never waits."""
        if not isinstance(event, FED):
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._dropped += 1
            if self._dropped == 1:
                self._warn(
                    "telemetry: the sinks fall behind; records are dropped "
                    f"(the queue holds {self._queue.maxsize})"
                )

    def start(self) -> None:
        """The stage began (now)."""
        self._began = time.monotonic()
        self.put(StageStarted(job=self.job, stage=self.stage))

    def finish(self, code: int, error: BaseException | None = None) -> None:
        """The stage ended with exit ``code`` (``error``: what it raised); the first call counts."""
        if self._ended:
            return
        self._ended = True
        seconds = time.monotonic() - self._began
        if code == 0 and error is None:
            self.put(StageDone(job=self.job, stage=self.stage, seconds=seconds))
            return
        detail = f"{type(error).__name__}: {error}" if error is not None else f"exit {code}"
        self.put(
            StageFailed(
                job=self.job,
                stage=self.stage,
                reason="error" if error is not None else "exit",
                detail=detail,
                exit_code=code,
                seconds=seconds,
            )
        )

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Let the thread write what is queued and close the sinks, waiting ``timeout`` s at most."""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            self._warn(
                f"telemetry: the sinks did not finish within {timeout:g} s; "
                "what they had not written is lost"
            )

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            assert isinstance(item, Event)
            if isinstance(item, StageStarted):
                self._started = item
            for sink in list(self._sinks):
                self._call(sink, item)
        for sink in list(self._sinks):
            if sink.name in self._opened:
                self._guard(sink, sink.close)

    def _call(self, sink: Sink, event: Event) -> None:
        if sink.name not in self._opened:
            if sink.lazy and isinstance(event, StageStarted | StageDone):
                return  # nothing worth a run yet
            if not self._guard(sink, sink.open):
                return
            self._opened.add(sink.name)
            started = self._started
            if (
                sink.lazy
                and started is not None
                and not self._guard(sink, lambda: sink.write(started))
            ):
                return
        self._guard(sink, lambda: sink.write(event))

    def _guard(self, sink: Sink, call: Callable[[], None]) -> bool:
        """Run ``call``; on an exception switch ``sink`` off with one warning."""
        try:
            call()
        except Exception as exc:
            self._sinks.remove(sink)
            first = str(exc).strip().partition("\n")[0]
            self._warn(
                f"telemetry: sink {sink.name} failed ({type(exc).__name__}: {first}); "
                "it is off for the rest of this stage"
            )
            if sink.name in self._opened:
                with contextlib.suppress(Exception):  # already reported as failed
                    sink.close()
            return False
        return True
