"""Arrow loader + train loop against a hand-written torch loop over in-memory tensors, same run.

    python tests/bench/bench_loader.py [--tickers 20] [--days 2520] [--epochs 3] [--model gru]

Both sides train the same model (same init, same optimizer, batch size and
shuffled order) for the same epochs. The loader side reads windows through
`WindowDataset` (memory-mapped Arrow shards) and a DataLoader; the baseline
indexes windows already materialised as one [N, W, F] tensor. Prints samples/s
of each and the ratio loader/baseline. Goal: ≥ 0.95.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from blut.payload import models
from blut.payload.context import StageContext
from blut.payload.load import SeededSampler, WindowDataset, loader
from blut.payload.stages import STAGES


def run_stage(job: Path, stage: str, args: dict[str, object], inputs: dict[str, Path]) -> Path:
    """Run ``stage`` in-process with these frozen args and inputs; its staging dir."""
    listing = [{"stage": k, "kind": k, "path": str(v), "hash": ""} for k, v in inputs.items()]
    with StageContext(job, stage, job.name, dict(args), False, listing) as ctx:
        STAGES[stage](ctx, [])
        return ctx.staging


def prepare(root: Path, tickers: int, days: int) -> tuple[Path, list[list[int]]]:
    """Synthetic OHLCV → features → labels → holdout split; the labeled dir and train ranges."""
    args = {"dataset": "synthetic", "synthetic_tickers": tickers, "synthetic_days": days}
    features = run_stage(root, "encode", args, {})
    labeled = run_stage(root, "label", {}, {"features": features})
    splits = run_stage(root, "split", {}, {"labeled": labeled})
    manifest = json.loads((splits / "manifest.json").read_text())
    return labeled, manifest["folds"][0]["splits"]["train"]["ranges"]


def step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def fresh(config: dict[str, object]) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = models.build(config)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=20)
    parser.add_argument("--days", type=int, default=2520)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--model", default="mlp", choices=models.KINDS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs; medians")
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    root = Path(tempfile.mkdtemp(prefix="blut-bench-loader-"))
    labeled, ranges = prepare(root, opts.tickers, opts.days)
    ds = WindowDataset(labeled, ranges, opts.window)
    n = len(ds)
    config = {"kind": opts.model, "features": len(ds.manifest["features"]), "window": opts.window}
    config |= {"outputs": 3, "hidden": 64, "dropout": 0.0}
    x_all, y_all = ds[np.arange(n)]  # the in-memory copy of the baseline
    sampler = SeededSampler(n, opts.batch_size, seed=0)
    batches = loader(ds, sampler)

    def arrow_side() -> float:
        model, opt = fresh(config)
        start = time.perf_counter()
        for epoch in range(opts.epochs):
            sampler.set_epoch(epoch)
            for x, y in batches:
                step(model, opt, x, y)
        return n * opts.epochs / (time.perf_counter() - start)

    def memory_side() -> float:
        model, opt = fresh(config)
        start = time.perf_counter()
        for epoch in range(opts.epochs):
            sampler.set_epoch(epoch)
            order = torch.from_numpy(sampler.order())
            for i in range(0, n, opts.batch_size):
                idx = order[i : i + opts.batch_size]
                step(model, opt, x_all[idx], y_all[idx])
        return n * opts.epochs / (time.perf_counter() - start)

    memory_side()  # warm-up: torch's first steps are slow
    runs = [(arrow_side(), memory_side()) for _ in range(opts.repeats)]  # interleaved
    arrow = float(np.median([a for a, _ in runs]))
    memory = float(np.median([m for _, m in runs]))

    print(
        f"samples {n} × {opts.epochs} epochs, {opts.model}, window {opts.window}, batch {opts.batch_size}"
    )
    print(f"arrow loader + loop : {arrow:12,.0f} samples/s")
    print(f"in-memory torch loop: {memory:12,.0f} samples/s")
    print(f"ratio {arrow / memory:.3f}  (goal >= 0.95; medians of {opts.repeats} interleaved runs)")


if __name__ == "__main__":
    main()
