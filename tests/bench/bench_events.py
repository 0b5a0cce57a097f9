"""Event parsing throughput: lines/s of ``parse_line`` and of the cockpit's ``decode_buffer``.

    python tests/bench/bench_events.py [LINES] [--repeat 5]

The lines are what the real writer (``encode_line``) emits for a training job:
mostly progress, metric and resources, with some log lines and stage/job events.
Prints the best of ``--repeat`` runs for each reader.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from blut.status.events import (
    Event,
    JobDone,
    JobStarted,
    JobSubmitted,
    Log,
    Metric,
    Progress,
    Resources,
    StageDone,
    StageFailed,
    StageStarted,
    parse_line,
)
from blut.status.fastdecode import decode_buffer
from blut.status.writer import encode_line

STEPS_PER_STAGE = 2_000


def training_events(lines: int, job: str = "20250101-000000-abcd") -> list[Event]:
    """About ``lines`` events of a job training stage after stage: per step a progress and a
    metric line, every 4th step a resources sample, every 100th a log line."""
    t0 = 1_750_000_000.0
    events: list[Event] = [
        JobSubmitted(job=job, ts=t0, name="train", argv=["python", "train.py"], memory_max=1 << 32),
        JobStarted(job=job, ts=t0, driver="blut-x.service", launcher="systemd"),
    ]
    n = 0
    while len(events) < lines:
        stage = f"train{n}"
        events.append(StageStarted(job=job, stage=stage, ts=t0, unit="u", memory_max=1 << 32))
        for i in range(STEPS_PER_STAGE):
            ts = t0 + n * STEPS_PER_STAGE + i * 0.137
            loss = 2.5 / (1 + i * 0.01)
            events.append(Progress(job=job, stage=stage, ts=ts, step=i, total=STEPS_PER_STAGE))
            values = {"loss": loss, "lr": 3e-4 * (1 - i / STEPS_PER_STAGE), "grad_norm": loss * 3}
            events.append(
                Metric(job=job, stage=stage, ts=ts, step=i, epoch=i // 500, values=values)
            )
            if i % 4 == 0:
                mem = (1 << 30) + (i * 7919 % 4096) * 65536
                events.append(
                    Resources(job=job, stage=stage, ts=ts, memory_bytes=mem, memory_max=1 << 32)
                )
            if i % 100 == 0:
                events.append(Log(job=job, stage=stage, ts=ts, msg=f"step {i}: loss {loss:.4f}"))
        end = t0 + (n + 1) * STEPS_PER_STAGE
        if n % 5 == 4:
            events.append(StageFailed(job=job, stage=stage, ts=end, reason="oom", exit_code=137))
        else:
            events.append(StageDone(job=job, stage=stage, ts=end, seconds=274.0, peak_mem=1 << 31))
        n += 1
    events.append(JobDone(job=job, ts=t0 + n * STEPS_PER_STAGE))
    return events


def best(run: Callable[[], object], repeat: int) -> float:
    """The shortest of ``repeat`` timings of ``run``, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lines", type=int, nargs="?", default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    lines = [encode_line(e) for e in training_events(opts.lines)]
    buf = b"".join(lines)
    print(f"{len(lines):,} lines, {len(buf) / len(lines):.0f} bytes per line on average")
    seconds = best(lambda: [parse_line(line) for line in lines], opts.repeat)
    print(f"parse_line     {len(lines) / seconds:>12,.0f} lines/s")
    seconds = best(lambda: decode_buffer(buf), opts.repeat)
    print(f"decode_buffer  {len(lines) / seconds:>12,.0f} lines/s")


if __name__ == "__main__":
    main()
