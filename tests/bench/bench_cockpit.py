"""Cockpit benchmark: N jobs and M events on disk, then live events at R per second.

Prints: time to first screen, time to the full table (every job's history folded
and shown), RSS after loading, and the event-to-screen latency (p50/p95) of
progress events appended at R/s to one job while the cockpit runs headless.

    python tests/bench/bench_cockpit.py                  # 1,000 jobs, 1M events, 1,000/s
    python tests/bench/bench_cockpit.py --jobs 100 --events 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

from blut.cockpit.app import CockpitApp
from blut.cockpit.screens.jobs import JobsScreen
from blut.jobs.store import JobSpec
from blut.status.events import (
    JobStarted,
    JobSubmitted,
    Metric,
    Progress,
    Resources,
    StageStarted,
)
from blut.status.writer import EventWriter, encode_line


def populate(home: Path, jobs: int, events: int) -> list[str]:
    """``jobs`` job folders sharing ``events`` events (progress, metric, resources)."""
    per_job = max(4, events // jobs)
    ids = []
    t0 = time.time() - 86_400
    for n in range(jobs):
        job_id = f"20250101-{n // 3600:02d}{n // 60 % 60:02d}{n % 60:02d}-{n:04x}"
        ids.append(job_id)
        job_dir = home / "jobs" / job_id
        (job_dir / "stages" / "main").mkdir(parents=True)
        spec = JobSpec(job_id, f"job{n}", ["python", "train.py"], "/tmp", "systemd", t0, 1 << 30)
        (job_dir / "job.json").write_text(json.dumps(asdict(spec)))
        lines = [
            JobSubmitted(job=job_id, ts=t0, name=spec.name, memory_max=1 << 30),
            JobStarted(job=job_id, ts=t0),
            StageStarted(job=job_id, stage="main", ts=t0, memory_max=1 << 30),
        ]
        out = [encode_line(e) for e in lines]
        for i in range(per_job - 3):
            ts = t0 + i
            kind = i % 10
            if kind < 6:
                e = Progress(job=job_id, stage="main", ts=ts, step=i, total=per_job)
            elif kind < 9:
                e = Metric(job=job_id, stage="main", ts=ts, step=i, values={"loss": 1 / (1 + i)})
            else:
                e = Resources(job=job_id, stage="main", ts=ts, memory_bytes=(1 << 28) + i * 4096)
            out.append(encode_line(e))
        (job_dir / "status.jsonl").write_bytes(b"".join(out))
    return ids


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def bench(home: Path, jobs: int, rate: int, seconds: float) -> None:
    t_start = time.perf_counter()
    first_screen: float | None = None
    full: float | None = None
    app = CockpitApp(home, reconcile=False, system=False)
    async with app.run_test(size=(120, 40)) as pilot:
        while not isinstance(app.screen, JobsScreen) or not app.screen.is_mounted:
            await asyncio.sleep(0.001)
        first_screen = time.perf_counter() - t_start
        while True:
            screen = app.screen
            if (
                isinstance(screen, JobsScreen)
                and len(screen._keys) == jobs
                and not app.state.loading
            ):
                break
            await asyncio.sleep(0.01)
        await pilot.pause()
        full = time.perf_counter() - t_start
        rss = rss_mb()
        print(f"time to first screen: {first_screen * 1000:.0f} ms")
        print(f"time to full table ({jobs} jobs): {full:.2f} s")
        print(f"RSS after load: {rss:.0f} MB")

        # live: progress events at `rate`/s to the newest job; latency = paint - write
        job_id = max(app.state.jobs)
        path = home / "jobs" / job_id / "status.jsonl"
        written: dict[int, float] = {}
        latencies: list[float] = []
        shown = [0]
        base_step = 10_000_000

        def painted(app_: CockpitApp, deltas: object) -> None:
            now = time.time()
            screen = app_.screen
            if not isinstance(screen, JobsScreen):
                return
            job = app_.state.jobs[job_id]
            prog = job.view.stages["main"].progress
            if prog is None:
                return
            step = int(prog[0]) - base_step
            for s in range(shown[0] + 1, step + 1):
                if s in written:
                    latencies.append(now - written.pop(s))
            shown[0] = max(shown[0], step)

        app.after_update = painted
        stop = threading.Event()

        def writer() -> None:
            w = EventWriter(path)
            step = 0
            t0 = time.perf_counter()
            while not stop.is_set():
                step += 1
                written[step] = time.time()
                w.emit(
                    Progress(job=job_id, stage="main", step=base_step + step, total=2 * base_step)
                )
                delay = t0 + step / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            w.close()

        thread = threading.Thread(target=writer)
        thread.start()
        await asyncio.sleep(seconds)
        stop.set()
        thread.join()
        await pilot.pause(0.5)
        if latencies:
            q = statistics.quantiles(latencies, n=100)
            print(
                f"event-to-screen latency at {rate}/s over {seconds:.0f}s: "
                f"p50 {q[49] * 1000:.0f} ms, p95 {q[94] * 1000:.0f} ms, "
                f"max {max(latencies) * 1000:.0f} ms ({len(latencies)} events)"
            )
        print(f"RSS at end: {rss_mb():.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="blut-bench-") as tmp:
        home = Path(tmp)
        os.environ["BLUT_HOME"] = str(home)
        t = time.perf_counter()
        populate(home, args.jobs, args.events)
        print(f"wrote {args.jobs} jobs, {args.events} events in {time.perf_counter() - t:.1f} s")
        asyncio.run(bench(home, args.jobs, args.rate, args.seconds))


if __name__ == "__main__":
    main()
