"""`blut jobs`, `blut jobs --all` and `blut --once` on a realistic home, as a user sees them.

    python tests/bench/bench_jobs.py [--home DIR] [--jobs 1000] [--lines 1000000] [--runs 5]

The home is built by realhome.py (from real job folders) unless ``--home`` holds
one. While measuring, one real job is running in it (`blut run -- sleep`), as
there usually is. Each command runs in a subprocess on an 80×24 pseudo-terminal
(rich renders as on a terminal); the clock stops at its first output line and at
its exit; peak RSS is the child's high-water mark (VmHWM, read every 10 ms). Runs are
interleaved with `blut --help` (the command line's start-up, the baseline);
medians. Goals (issue 10): wall ≤ 1 s, first line ≤ 0.3 s, peak RSS ≤ 150 MB.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
from pathlib import Path

from clirun import (
    Timed,
    blut,
    cli_env,
    compile_bytecode,
    live_job,
    machine,
    run_timed,
    screen_text,
    user_manager_env,
    verdict,
)
from realhome import describe, realhome

COMMANDS = {
    "blut --help": ("--help",),
    "blut jobs": ("jobs",),
    "blut jobs --all": ("jobs", "--all"),
    "blut --once": ("--once",),
}
GOAL_WALL, GOAL_FIRST, GOAL_RSS = 1.0, 0.3, 150 * 2**20
SLOW = 5.0
"""Seconds past which a command is measured once only."""
JOB_ID = re.compile(r"^\s*\d{8}-\d{6}-[0-9a-f]{4}\b", re.M)


def measure(home: Path, runs: int) -> dict[str, list[Timed]]:
    """Every command ``runs`` times, interleaved, after a first round that is kept only for
    commands slower than :data:`SLOW` (they are run that once: a few minutes in all)."""
    env = cli_env(home)
    samples: dict[str, list[Timed]] = {name: [] for name in COMMANDS}
    slow = set()
    for i in range(runs + 1):
        for name, args in COMMANDS.items():
            if name in slow:
                continue
            timed = run_timed(blut(*args), env, timeout=600)
            if timed.code != 0:
                raise RuntimeError(f"{name} failed ({timed.code}): {screen_text(timed.output)}")
            if i == 0 and timed.wall > SLOW:
                slow.add(name)
            if i or name in slow:
                samples[name].append(timed)
    return samples


def report(samples: dict[str, list[Timed]]) -> None:
    """Medians, ratios against `blut --help` and against the goals."""
    help_wall = statistics.median(t.wall for t in samples["blut --help"])
    for name, timed in samples.items():
        wall = statistics.median(t.wall for t in timed)
        first = statistics.median(t.first_line or t.wall for t in timed)
        rss = statistics.median(t.peak_rss for t in timed)
        cpu = statistics.median(t.cpu for t in timed)
        rows = len(JOB_ID.findall(screen_text(timed[0].output)))
        print(
            f"{name:<16} first line {first * 1000:5.0f} ms  wall {wall * 1000:5.0f} ms  "
            f"CPU {cpu:4.2f} s  peak RSS {rss / 2**20:4.0f} MB  (n={len(timed)}"
            + (f", {rows} job rows)" if rows else ")")
        )
        if name == "blut --help":
            print(f"{'':<16} (baseline: the command line's own start-up)")
            continue
        print(
            f"{'':<16} wall {wall / help_wall:4.1f}× blut --help; wall {verdict(wall, GOAL_WALL)}, "
            f"first line {verdict(first, GOAL_FIRST)}, RSS {verdict(rss, GOAL_RSS)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="reuse (or build and keep) this home")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    print(compile_bytecode(), flush=True)
    os.environ.update(user_manager_env())
    with realhome(opts.home, opts.jobs, opts.lines) as (home, manifest):
        print(describe(manifest), flush=True)
        with live_job(home, cli_env(home)):
            samples = measure(home, opts.runs)
    print(
        f"medians of {opts.runs} interleaved runs (n=1: slower than {SLOW:.0f} s, run once); "
        "warm page cache; one live job running; 80×24 pty; RSS = the child's VmHWM"
    )
    print(machine())
    report(samples)


if __name__ == "__main__":
    main()
