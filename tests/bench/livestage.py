"""The contained process of the terminal latency bench: a stage that reports as training does.

    blut run --memory-max 2G -- python tests/bench/livestage.py GO_FILE ROUNDS

Runs inside a real `blut run` unit. Once GO_FILE exists (the bench has the Job
screen open), each round does four things, a short random pause after each:
prints a log line (to the unit's log file, as any program's stdout), emits a
progress event and a metric event through blut's own event writer, and grows
its memory by 16 MiB (the executor's cgroup sampling turns that into a
resources event). Each log line carries its write time; events carry theirs in
``ts``. Then it sleeps until it is cancelled.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

from blut.status.events import Metric, Progress
from blut.status.writer import EventWriter

PROGRESS_TOTAL = 100
"""Progress is reported out of 100 so that every step shows its own percentage."""
METRIC_STEP0 = 7000
"""Metric steps start here (the Job screen's plot title shows the newest step)."""
GROW = 16 << 20


def main() -> None:
    go, rounds = Path(sys.argv[1]), int(sys.argv[2])
    job_dir, job, stage = (
        os.environ[k] for k in ("BLUT_JOB_DIR", "BLUT_JOB_ID", "BLUT_STAGE_NAME")
    )
    rng = random.Random(0)
    held: list[bytearray] = []
    while not go.exists():
        time.sleep(0.05)
    with EventWriter(Path(job_dir) / "status.jsonl") as events:
        for i in range(1, rounds + 1):
            print(f"live-log {i:04d} @{time.time():.6f}", flush=True)
            time.sleep(rng.uniform(0.1, 0.3))
            events.emit(Progress(job=job, stage=stage, step=9 + 4 * i, total=PROGRESS_TOTAL))
            time.sleep(rng.uniform(0.1, 0.3))
            values = {"train_loss": 2.0 / i, "val_loss": 2.2 / i}
            events.emit(Metric(job=job, stage=stage, values=values, step=METRIC_STEP0 + i))
            time.sleep(rng.uniform(0.1, 0.3))
            held.append(bytearray(b"x") * GROW)  # touched: it counts in the cgroup at once
            time.sleep(rng.uniform(0.1, 0.3))
    print("live-stage: all rounds written", flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    main()
