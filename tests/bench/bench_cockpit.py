"""The cockpit on a realistic home: first screen, full table, RSS, idle CPU (latency: bench_cockpit_latency.py).

    python tests/bench/bench_cockpit.py [--home DIR] [--jobs 1000] [--lines 1000000]
                                        [--idle 10]

The home is built by realhome.py (from real job folders) unless ``--home`` holds
one. The cockpit is measured twice, the same way each time the app is built as
`blut` builds it (reconcile and system sampling on):

- in a terminal, as its user sees it: `blut` in a subprocess on an 80×24
  pseudo-terminal. First screen: a job's state is on the terminal. Full
  table: the status line says "N jobs" with no history left to read. Then
  ``--idle`` s with nothing changing: CPU of the process (/proc) as % of a
  core; peak RSS (VmHWM). The baseline is `blut --help` of the same run.
- in-process, headless (Pilot, ``run_test`` at 80×24). First screen: the Jobs
  table has rows. Full table: every row's STATE cell shows the job's final state
  (sweeps are collapsed into one group row each). RSS (VmRSS of this process).
  Idle CPU: ``time.process_time`` (every thread of the app) over ``--idle`` s.

Event → screen and key → screen latency are measured at the terminal by
bench_cockpit_latency.py (not at an in-app hook).

Goals (issue 10): first screen ≤ 1 s, full table ≤ 2 s, RSS ≤ 150 MB, idle CPU ≤ 2% of a core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clirun import (
    COLUMNS,
    LINES,
    Terminal,
    blut,
    cli_env,
    compile_bytecode,
    machine,
    proc_cpu_seconds,
    proc_rss,
    run_timed,
    user_manager_env,
    verdict,
)
from realhome import describe, realhome
from textual.css.query import NoMatches
from textual.widgets import DataTable

from blut.cockpit.app import CockpitApp

GOAL_FIRST, GOAL_FULL, GOAL_RSS, GOAL_IDLE = 1.0, 2.0, 150 * 2**20, 0.02
FIRST_ROW = re.compile(r"(succeeded|failed|running|cancelled|queued)")
"""A job's state on the terminal: the table's first rows are drawn (at 80 columns the ID
column is not shown)."""
STATUS = re.compile(r"(\d+) jobs, \d+ running([^\r\n]*)")
MB = 2**20


def line(label: str, value: str, goal: str = "") -> None:
    """One result line: label, value, then the ratio to its goal."""
    print(f"  {label:<38} {value:>8}   {goal}")


def table_complete(jobs: int) -> Callable[[str], bool]:
    """Whether the terminal's latest status line counts ``jobs`` jobs, all read."""

    def seen(text: str) -> bool:
        found = list(STATUS.finditer(text))
        last = found[-1] if found else None
        return (
            last is not None
            and int(last[1]) >= jobs
            and "reading history" not in last[2]
            and "waiting" not in last[2]
        )

    return seen


def idle_cpu(pid: int, term: Terminal, seconds: float) -> float:
    """CPU of a live process as a share of one core over ``seconds`` (its terminal drained)."""
    cpu, start = proc_cpu_seconds(pid), time.perf_counter()
    while time.perf_counter() - start < seconds:
        term.read(start + seconds - time.perf_counter())
    return (proc_cpu_seconds(pid) - cpu) / (time.perf_counter() - start)


def in_terminal(home: Path, jobs: int, idle: float) -> None:
    """`blut` on a pseudo-terminal, timed where its user sees it."""
    env = cli_env(home)
    helped = statistics.median(run_timed(blut("--help"), env).wall for _ in range(3))
    term = Terminal(blut(), env)
    first = term.wait_for(lambda text: FIRST_ROW.search(text) is not None, timeout=300)
    full = term.wait_for(table_complete(jobs), timeout=600)
    if first is None or full is None:
        term.proc.kill()
        raise RuntimeError(f"the cockpit never showed its table: {term.output[-2000:]!r}")
    rss = proc_rss(term.pid)[1]
    cpu = idle_cpu(term.pid, term, idle)
    term.type(b"q")
    done = term.finish()
    print(f"in a terminal (`blut`, 80×24 pty; baseline blut --help {helped * 1000:.0f} ms):")
    line("first screen (a job row shown)", f"{first:.2f} s", verdict(first, GOAL_FIRST))
    line(f"full table ({jobs} jobs, all read)", f"{full:.2f} s", verdict(full, GOAL_FULL))
    line("  in blut --help start-ups", f"{full / helped:.1f}×")
    line("peak RSS at full table", f"{rss / MB:.0f} MB", verdict(rss, GOAL_RSS))
    line("peak RSS by quit", f"{done.peak_rss / MB:.0f} MB", verdict(done.peak_rss, GOAL_RSS))
    line(f"idle CPU over {idle:.0f} s", f"{cpu:.1%}", verdict(cpu, GOAL_IDLE))


def final_table(app: CockpitApp, states: dict[str, str], rows: int) -> bool:
    """Whether the Jobs table shows ``rows`` rows, each job's STATE its final state."""
    if app.state.loading:  # cheap: no cell is final while histories are being read
        return False
    table = jobs_table(app)
    if table is None or table.row_count != rows:
        return False
    for key in table.rows:
        state = str(table.get_cell(key, "state"))
        expected = states.get(str(key.value))
        if state == "loading" or (expected is not None and state != expected):
            return False
    return True


def jobs_table(app: CockpitApp) -> DataTable[Any] | None:
    """The Jobs screen's table, once mounted."""
    try:
        return app.screen.query_one("#jobs", DataTable)
    except NoMatches:
        return None


async def until(done: Callable[[], bool], every: float = 0.01, timeout: float = 600) -> None:
    """Wait (yielding to the app) until ``done()``."""
    deadline = time.perf_counter() + timeout
    while not done():
        if time.perf_counter() > deadline:
            raise TimeoutError("the cockpit did not get there")
        await asyncio.sleep(every)


async def in_process(home: Path, manifest: dict[str, Any], opts: argparse.Namespace) -> None:
    """The app headless under Pilot: load, idle, then live events."""
    states, sweep_of = manifest["states"], manifest["sweep_of"]
    rows = len(states) - len(sweep_of) + len(set(sweep_of.values()))
    before = proc_rss(os.getpid())[0]
    start = time.perf_counter()
    app = CockpitApp(home)
    async with app.run_test(size=(COLUMNS, LINES)) as pilot:
        await until(lambda: (t := jobs_table(app)) is not None and t.row_count > 0)
        first = time.perf_counter() - start
        await until(lambda: final_table(app, states, rows), every=0.05)
        full = time.perf_counter() - start
        rss = proc_rss(os.getpid())[0]
        cpu, t0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(opts.idle)
        idle = (time.process_time() - cpu) / (time.perf_counter() - t0)
        print("in-process (CockpitApp under Pilot, headless 80×24):")
        line("first screen (table has rows)", f"{first:.2f} s", verdict(first, GOAL_FIRST))
        line(f"full table ({rows} rows, final states)", f"{full:.2f} s", verdict(full, GOAL_FULL))
        line("RSS after load", f"{rss / MB:.0f} MB", verdict(rss, GOAL_RSS))
        line("  of which before the app", f"{before / MB:.0f} MB", "(interpreter, imports)")
        line(f"idle CPU over {opts.idle:.0f} s", f"{idle:.1%}", verdict(idle, GOAL_IDLE))
        await pilot.pause()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="reuse (or build and keep) this home")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--idle", type=float, default=10, help="seconds of idle CPU measured")
    opts = parser.parse_args()
    print(compile_bytecode(), flush=True)
    os.environ.update(user_manager_env())
    with realhome(opts.home, opts.jobs, opts.lines) as (home, manifest):
        print(describe(manifest), flush=True)
        print(machine(), flush=True)
        in_terminal(home, manifest["jobs"], opts.idle)
        asyncio.run(in_process(home, manifest, opts))


if __name__ == "__main__":
    main()
