"""The cockpit's latency as its user sees it: event → terminal, and key → terminal.

    python tests/bench/bench_cockpit_latency.py [--home DIR] [--jobs 1000] [--lines 1000000]
                                                [--rounds 20] [--idle 10]

On the realistic home of realhome.py (1,000 real job folders unless ``--home``
holds another), a real job runs `livestage.py` in its `blut run` unit, and
`blut --open JOB` runs on an 80×24 pseudo-terminal whose output feeds a
terminal emulator (pyte): a value counts as shown when it is on the emulated
screen, read as the bytes arrive. No in-app hook is used.

- Events (``--rounds`` of each, written by the contained process at random
  gaps): a log line → the log pane; progress → the stage table's percentage;
  a metric → the metric plot's title (``step N``); memory grown by 16 MiB →
  the executor's resources event → the header's ``mem``. Latency runs from the
  event's write time (its ``ts``, or the time printed in the log line) to the
  screen; an event overtaken by a newer one of its kind before it was drawn
  counts as shown when the newer one is.
- Keys, each pressed ``--rounds`` times: Enter (Jobs → the job's screen), Esc
  (back to Jobs), ``s`` (the next sort, named in the status line), and a
  character typed into the filter (the status line shows it).
- Idle CPU of the cockpit on the Jobs screen, the live job quiet, over ``--idle`` s.

Goals (issue 12): p95 event → screen ≤ 150 ms for each kind with 1,000 jobs
present; keys p95 ≤ 100 ms; idle CPU ≤ 2 % of a core. Each p95 is also printed
as a ratio to the same run's `python -c "import textual"`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyte
from clirun import (
    COLUMNS,
    LINES,
    Terminal,
    blut,
    cli_env,
    compile_bytecode,
    machine,
    proc_cpu_seconds,
    run_timed,
    user_manager_env,
    verdict,
)
from livestage import METRIC_STEP0
from realhome import describe, realhome

from blut.jobs.quantities import short_size

GOAL_EVENT, GOAL_KEY, GOAL_IDLE = 0.150, 0.100, 0.02
LIVE_NAME = "live-latency"
STATUS_LINE = re.compile(r"\d+ jobs, \d+ running")
LOG_LINE = re.compile(r"live-log (\d{4}) @(\d+\.\d+)")


class Screen:
    """The cockpit on a pty, as a terminal emulator shows it."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.term = Terminal(argv, env)
        self.screen = pyte.Screen(COLUMNS, LINES)
        self.stream = pyte.ByteStream(self.screen)
        self.fed = 0
        self.text = ""

    def pump(self, timeout: float) -> str:
        """Read what arrived within ``timeout`` s; the screen's text afterwards."""
        self.term.read(timeout)
        if len(self.term.output) != self.fed:
            self.stream.feed(bytes(self.term.output[self.fed :]))
            self.fed = len(self.term.output)
            self.text = "\n".join(self.screen.display)
        return self.text

    def wait(self, shown: Callable[[str], bool], timeout: float = 10.0) -> float:
        """Seconds until ``shown(screen text)``; raises after ``timeout``."""
        start = time.perf_counter()
        while True:
            if shown(self.pump(0.002)):
                return time.perf_counter() - start
            if time.perf_counter() - start > timeout:
                tail = "\n".join(self.screen.display)
                raise TimeoutError(f"not on the screen after {timeout:.0f} s:\n{tail}")

    def settle(self, seconds: float) -> str:
        """Keep reading for ``seconds``; the screen's text then."""
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            self.pump(end - time.perf_counter())
        return self.text

    def key(self, keys: bytes, shown: Callable[[str], bool]) -> float:
        """Type ``keys``; seconds until ``shown``."""
        self.pump(0)
        self.term.type(keys)
        return self.wait(shown)


@dataclass
class Pending:
    """An event written by the live stage, not yet on the screen."""

    kind: str
    order: int
    written: float
    token: str


@dataclass
class EventLatencies:
    """Seconds from write to screen, per event kind."""

    by_kind: dict[str, list[float]] = field(default_factory=dict)
    missed: dict[str, int] = field(default_factory=dict)


def new_events(job_dir: Path, offset: int) -> tuple[list[Pending], int]:
    """Events the stage (and its executor) appended since ``offset``, with their tokens."""
    with (job_dir / "status.jsonl").open("rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    out = []
    for raw in data[:end].splitlines():
        event = json.loads(raw)
        kind, ts = event.get("event"), float(event["ts"])
        if kind == "progress" and event.get("total") == 100:
            out.append(Pending("progress", int(event["step"]), ts, f"{event['step']:3.0f}%"))
        elif kind == "metric" and event.get("step", 0) > METRIC_STEP0:
            out.append(Pending("metric", int(event["step"]), ts, f"step {event['step']}"))
        elif kind == "resources" and event.get("memory_bytes"):
            size = short_size(event["memory_bytes"])
            ceiling = f"/{short_size(event['memory_max'])}" if event.get("memory_max") else ""
            out.append(Pending("resources", int(ts * 1e6), ts, f"mem {size}{ceiling}"))
    return out, offset + end


def new_log_lines(log: Path, offset: int) -> tuple[list[Pending], int]:
    """Lines the stage printed since ``offset`` (each carries its write time)."""
    with log.open("rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    out = [
        Pending("log", int(m[1]), float(m[2]), f"live-log {m[1]}")
        for m in LOG_LINE.finditer(data[:end].decode())
    ]
    return out, offset + end


def watch_events(screen: Screen, job_dir: Path, log: Path, go: Path) -> EventLatencies:
    """Start the rounds (``go``); follow the stage's writes and the screen together until
    every round was shown."""
    result = EventLatencies()
    pending: list[Pending] = []
    status_at = (job_dir / "status.jsonl").stat().st_size  # only what the rounds write
    log_at = log.stat().st_size
    go.touch()
    done = deadline = None
    while True:
        text = screen.pump(0.002)
        now = time.time()
        events, status_at = new_events(job_dir, status_at)
        lines, log_at = new_log_lines(log, log_at)
        pending += events + lines
        shown = [p for p in pending if p.token in text]
        for hit in shown:
            # What a newer value of the same kind overtook counts as shown with it.
            for p in [q for q in pending if q.kind == hit.kind and q.order <= hit.order]:
                result.by_kind.setdefault(p.kind, []).append(now - p.written)
                pending.remove(p)
        if done is None and "all rounds written" in log.read_text(errors="replace"):
            done = time.perf_counter()
            deadline = done + 5.0
        if deadline is not None and (not pending or time.perf_counter() > deadline):
            break
    for p in pending:
        result.missed[p.kind] = result.missed.get(p.kind, 0) + 1
    return result


def start_live_job(home: Path, env: dict[str, str], go: Path, rounds: int) -> str:
    """A real `blut run` job running livestage.py, waiting for ``go``."""
    stage = Path(__file__).with_name("livestage.py")
    argv = blut("run", "--detach", "--name", LIVE_NAME, "--memory-max", "2G", "--")
    argv += [sys.executable, str(stage), str(go), str(rounds)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout.strip()


def stage_log(job_dir: Path, timeout: float = 60) -> Path:
    """The running stage's log file, once the stage started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for raw in (job_dir / "status.jsonl").read_bytes().splitlines():
            event = json.loads(raw)
            if event.get("event") == "stage_started" and event.get("log"):
                path = Path(event["log"])
                return path if path.is_absolute() else job_dir / path
        time.sleep(0.1)
    raise TimeoutError("the live job's stage did not start")


def quantiles(values: list[float]) -> tuple[float, float]:
    """p50 and p95 of ``values`` (seconds)."""
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    q = statistics.quantiles(values, n=20, method="inclusive")
    return statistics.median(values), q[18]


def report(label: str, values: list[float], goal: float, baseline: float, extra: str = "") -> None:
    """One line: p50, p95, the goal verdict and the ratio to ``import textual``."""
    p50, p95 = quantiles(values)
    print(
        f"  {label:<30} p50 {p50 * 1000:4.0f} ms  p95 {p95 * 1000:4.0f} ms  "
        f"{verdict(p95, goal)}  p95 = {p95 / baseline:.2f}× import textual  "
        f"(n={len(values)}{extra})"
    )


def measure_keys(screen: Screen, live_id: str, rounds: int) -> dict[str, list[float]]:
    """Enter, Esc, sort and filter keys, timed to the screen."""
    on_jobs: Callable[[str], bool] = lambda text: STATUS_LINE.search(text) is not None  # noqa: E731
    keys: dict[str, list[float]] = {"enter": [], "esc": [], "sort (s)": [], "filter char": []}
    screen.wait(lambda text: live_id in text)  # the Job screen of --open
    for _ in range(rounds):
        keys["esc"].append(screen.key(b"\x1b", lambda t: on_jobs(t) and live_id not in t))
        keys["enter"].append(screen.key(b"\r", lambda t: live_id in t))
    screen.key(b"\x1b", on_jobs)
    sorts = ("name ▲", "state ▲", "elapsed ▼", "memory ▼", "peak ▼", "id ▼")
    for i in range(rounds):
        name = sorts[i % len(sorts)]
        keys["sort (s)"].append(screen.key(b"s", lambda t, n=name: f"sort {n}" in t))
    for _ in range(len(sorts)):  # back to the default sort
        if "sort id ▼" in screen.pump(0.05):
            break
        screen.term.type(b"s")
        screen.settle(0.3)
    screen.key(b"/", lambda t: "filter: regex" in t)
    typed = ""
    for i in range(rounds):
        char = "abcdefghij"[i % 10]
        if i and i % 5 == 0:  # keep the pattern short: clear it and start again
            screen.term.type(b"\x7f" * len(typed))
            screen.wait(lambda t: "filter /" not in t)
            typed = ""
        typed += char
        keys["filter char"].append(
            screen.key(char.encode(), lambda t, f=typed: f"filter /{f}/" in t)
        )
    screen.term.type(b"\x1b")
    screen.settle(0.3)
    screen.key(b"\x1b", lambda t: "filter /" not in t)
    return keys


def idle_cpu(screen: Screen, seconds: float) -> float:
    """CPU of the cockpit as a share of one core over ``seconds`` (its output drained)."""
    pid = screen.term.pid
    cpu, start = proc_cpu_seconds(pid), time.perf_counter()
    while time.perf_counter() - start < seconds:
        screen.pump(0.05)
    return (proc_cpu_seconds(pid) - cpu) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="reuse (or build and keep) this home")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20, help="appends of each kind, presses")
    parser.add_argument("--idle", type=float, default=10, help="seconds of idle CPU measured")
    opts = parser.parse_args()
    print(compile_bytecode(), flush=True)
    os.environ.update(user_manager_env())
    with (
        realhome(opts.home, opts.jobs, opts.lines) as (home, manifest),
        tempfile.TemporaryDirectory() as tmp,
    ):
        print(describe(manifest), flush=True)
        env = cli_env(home)
        textual = statistics.median(
            run_timed([sys.executable, "-c", "import textual"], env).wall for _ in range(3)
        )
        go = Path(tmp) / "go"
        live_id = start_live_job(home, env, go, opts.rounds)
        job_dir = home / "jobs" / live_id
        try:
            log = stage_log(job_dir)
            screen = Screen(blut("--open", live_id), env)
            screen.wait(lambda text: live_id in text and "running" in text, timeout=120)
            screen.wait(lambda text: "live-log" not in text and "mem " in text, timeout=30)
            print(machine(), flush=True)
            events = watch_events(screen, job_dir, log, go)
            keys = measure_keys(screen, live_id, opts.rounds)
            cpu = idle_cpu(screen, opts.idle)
            screen.term.type(b"q")
            screen.term.finish()
        finally:
            subprocess.run(blut("cancel", live_id, "--yes"), env=env, capture_output=True)
            if opts.home is not None:  # a kept home stays as it was built
                subprocess.run(["rm", "-rf", str(job_dir)], check=False)
    print(f"baseline: python -c 'import textual' {textual * 1000:.0f} ms (median of 3)")
    print(f"event → screen (Job screen open on a live job, {manifest['jobs']} jobs present):")
    names = {"resources": "resources → header", "log": "log line → pane"}
    names |= {"progress": "progress → stage table", "metric": "metric → plot"}
    for kind, label in names.items():
        missed = events.missed.get(kind, 0)
        extra = f", {missed} never shown" if missed else ""
        report(label, events.by_kind.get(kind, []), GOAL_EVENT, textual, extra)
    print("key → screen:")
    for name, values in keys.items():
        report(name, values, GOAL_KEY, textual)
    print(f"  idle CPU on Jobs over {opts.idle:.0f} s      {cpu:6.1%}  {verdict(cpu, GOAL_IDLE)}")


if __name__ == "__main__":
    main()
