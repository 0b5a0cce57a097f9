"""The train stage with every telemetry sink against the same stage with none, same run.

    python tests/bench/bench_telemetry.py [--tickers 16] [--days 2520] [--epochs 8] [--repeat 3]

Both sides run the quant ``train`` stage in-process on the same synthetic data
and args (one torch thread, a metric event every 5 steps). The sinks side's
job.json names console, tensorboard, mlflow and wandb. Prints each side's time
in the stage (until ``run`` returns) and until its sinks are closed, for a
first sinks run (their libraries import on the hub's thread, which holds the
GIL while it runs module code) and for later ones (libraries loaded; the
fastest of ``--repeat`` interleaved runs of each side), and the ratios to the
baseline. Goal: time in the stage ≤ 1.10 × the baseline once the libraries are
loaded. What the sinks cost is mostly one-off (importing tensorboard, mlflow
and wandb, ~2 s of CPU each, and starting wandb's service), then ~1-2 ms of
the hub thread per record.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

from blut.payload.context import StageContext
from blut.payload.stages import STAGES
from tests.bench.bench_loader import prepare

SINKS = ["console", "tensorboard", "mlflow", "wandb"]


def train(
    job: Path, labeled: Path, splits: Path, epochs: int, sinks: list[str]
) -> tuple[float, float]:
    """Seconds in the train stage, and until its context (and sinks) closed."""
    job.mkdir(parents=True)
    (job / "job.json").write_text(json.dumps({"telemetry": {"sinks": sinks, "dir": None}}))
    args = {"epochs": epochs, "hidden": 32, "threads": 1, "metric_every": 5, "patience": 0}
    inputs = [
        {"stage": "label", "kind": "labeled", "path": str(labeled), "hash": ""},
        {"stage": "split", "kind": "splits", "path": str(splits), "hash": ""},
    ]
    began = time.perf_counter()
    quiet = contextlib.redirect_stdout(io.StringIO())  # the console sink's lines
    with quiet, StageContext(job, "train", job.name, args, False, inputs) as ctx:
        STAGES["train"](ctx, [])
        ctx.finish(0)
        ran = time.perf_counter() - began
    return ran, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--tickers", type=int, default=16)
    parser.add_argument("--days", type=int, default=2520)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        labeled, _ranges = prepare(root / "data", opts.tickers, opts.days)
        splits = root / "data" / "stages" / "split" / "staging"
        train(root / "warm", labeled, splits, 1, [])  # imports, caches
        cold = train(root / "cold", labeled, splits, opts.epochs, SINKS)
        runs: dict[str, list[tuple[float, float]]] = {"none": [], "all": []}
        for i in range(opts.repeat):  # interleaved; the fastest of each counts
            runs["none"].append(train(root / f"none-{i}", labeled, splits, opts.epochs, []))
            runs["all"].append(train(root / f"all-{i}", labeled, splits, opts.epochs, SINKS))
    base, warm = min(runs["none"]), min(runs["all"])
    print(f"no sinks:              stage {base[0]:.2f} s, closed {base[1]:.2f} s")
    print(f"all sinks, first:      stage {cold[0]:.2f} s, closed {cold[1]:.2f} s")
    print(f"all sinks, libs known: stage {warm[0]:.2f} s, closed {warm[1]:.2f} s")
    print(f"ratio (stage, libs loaded): {warm[0] / base[0]:.3f}  (goal ≤ 1.10)")
    print(f"ratio (stage, first, libraries loading on the thread): {cold[0] / base[0]:.3f}")
    print(
        f"extra seconds in the stage: {warm[0] - base[0]:.2f} (loaded), {cold[0] - base[0]:.2f} (first)"
    )


if __name__ == "__main__":
    main()
