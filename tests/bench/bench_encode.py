"""Encode throughput: synthetic OHLCV rows/s through the `encode` stage, with peak RSS.

    python tests/bench/bench_encode.py [ROWS] [--tickers 100] [--shard-rows 250000]

Default 10M rows (100 tickers × 100k days). Runs the stage in a child process
(so its peak RSS is the stage's own) and prints rows/s, the peak RSS and how
it compares with the size of one shard, to show memory is bounded by the shard
size and not by the data set.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=int, nargs="?", default=10_000_000)
    parser.add_argument("--tickers", type=int, default=100)
    parser.add_argument("--shard-rows", type=int, default=250_000)
    opts = parser.parse_args()
    days = max(opts.rows // opts.tickers, 100)
    job = Path(tempfile.mkdtemp(prefix="blut-bench-encode-"))
    args = {"dataset": "synthetic", "synthetic_tickers": opts.tickers, "synthetic_days": days}
    stage_dir = job / "stages" / "encode"
    stage_dir.mkdir(parents=True)
    (stage_dir / "args.json").write_text(json.dumps({**args, "shard_rows": opts.shard_rows}))
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "blut.payload", "encode"],
        env={**os.environ, "BLUT_JOB_DIR": str(job), "BLUT_STAGE_NAME": "encode"},
        check=True,
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    manifest = json.loads((job / "stages" / "encode" / "staging" / "manifest.json").read_text())
    rows = opts.tickers * days
    shard_mb = sum(s["rows"] for s in manifest["shards"][:1]) * len(manifest["schema"]) * 8 / 2**20
    print(
        f"input rows {rows:,} ({opts.tickers} tickers × {days} days) → {manifest['rows']:,} feature rows"
    )
    print(
        f"shards {len(manifest['shards'])} of {opts.shard_rows:,} rows (~{shard_mb:.0f} MB in memory each)"
    )
    print(f"encode: {seconds:.1f} s, {rows / seconds:,.0f} rows/s (incl. ~1 s start-up)")
    print(f"peak RSS {peak / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
