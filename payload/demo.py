"""Stage ``demo``: a real, small training run (numpy only), the job of `make demo`.

Logistic regression by mini-batch gradient descent on a seeded synthetic
binary problem (a fixed weight vector plus label noise). Every step reports
progress, every few steps the batch loss, every epoch train/val loss and
accuracy (a metric event, a Parquet part and a human line on stdout). Outputs:
``staging/weights.npy`` (float64, the features' weights then the bias) and
``staging/summary.json``. ``--grow-mb`` then holds ever more memory, to show a
memory ceiling's OOM kill.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from blut.payload.context import StageContext
from blut.status.events import Checkpoint
from blut.status.metrics import MetricsWriter

Array = NDArray[np.float64]
N = TypeVar("N", int, float)

SAMPLES = 2_000
TRUE_WEIGHTS = np.array([1.5, -2.0, 1.0, 0.5, -1.0, 0.0, 2.0, -0.5])
TRUE_BIAS = 0.25
LABEL_NOISE = 1.0
DATA_SEED = 20_240_601
VAL_FRACTION = 0.2
METRIC_EVERY = 5
GROW_STEP_MB = 10
MB = 1 << 20


@dataclass(frozen=True)
class Split:
    """Features (with a trailing column of ones for the bias) and 0/1 labels."""

    x: Array
    y: Array


def make_data() -> tuple[Split, Split]:
    """The fixed synthetic problem, split into train and validation."""
    rng = np.random.default_rng(DATA_SEED)
    features = rng.normal(size=(SAMPLES, TRUE_WEIGHTS.size))
    logits = features @ TRUE_WEIGHTS + TRUE_BIAS + LABEL_NOISE * rng.normal(size=SAMPLES)
    x = np.hstack([features, np.ones((SAMPLES, 1))])
    y = (logits > 0).astype(np.float64)
    n_val = int(SAMPLES * VAL_FRACTION)
    return Split(x[n_val:], y[n_val:]), Split(x[:n_val], y[:n_val])


def loss_accuracy(theta: Array, split: Split) -> tuple[float, float]:
    """Mean binary cross-entropy and accuracy of ``theta`` on ``split``."""
    z = split.x @ theta
    loss = float(np.mean(np.logaddexp(0.0, z) - split.y * z))
    return loss, float(np.mean((z > 0) == (split.y > 0.5)))


def gradient(theta: Array, split: Split) -> Array:
    """Gradient of the mean cross-entropy with respect to ``theta``."""
    p = np.exp(-np.logaddexp(0.0, -(split.x @ theta)))
    return split.x.T @ (p - split.y) / len(split.y)


def batches(train: Split, size: int, rng: np.random.Generator) -> Iterator[Split]:
    """One epoch of shuffled mini-batches."""
    order = rng.permutation(len(train.y))
    for start in range(0, len(order), size):
        idx = order[start : start + size]
        yield Split(train.x[idx], train.y[idx])


def _at_least(low: N, kind: Callable[[str], N]) -> Callable[[str], N]:
    """An argparse type: ``kind`` of ``text``, refused below ``low``."""

    def parse(text: str) -> N:
        value = kind(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text}")
        return value

    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


def parse_args(ctx: StageContext, argv: list[str]) -> argparse.Namespace:
    """Options from ``argv``, over the job's args.json, over the defaults."""
    parser = argparse.ArgumentParser(
        prog="python -m blut.payload demo",
        description="Logistic regression on a seeded synthetic problem (numpy only).",
    )
    parser.add_argument("--epochs", type=_at_least(1, int), default=8)
    parser.add_argument("--batch-size", type=_at_least(1, int), default=100)
    parser.add_argument("--lr", type=_at_least(0.0, float), default=0.5)
    parser.add_argument("--seed", type=int, default=0, help="shuffling order (data is fixed)")
    parser.add_argument(
        "--step-delay", type=_at_least(0.0, float), default=0.05, help="seconds to sleep per step"
    )
    parser.add_argument(
        "--grow-mb", type=_at_least(0, int), default=0, help="after training, hold this much memory"
    )
    parser.add_argument(
        "--grow-delay", type=_at_least(0.0, float), default=0.05, help="seconds per 10 MB step"
    )
    known = vars(parser.parse_args([]))
    frozen = {k.replace("-", "_"): v for k, v in ctx.args.items()}
    parser.set_defaults(**{k: v for k, v in frozen.items() if k in known})
    return parser.parse_args(argv)


def run(ctx: StageContext, argv: list[str]) -> int:
    """Train, report, write the outputs, then grow memory if asked."""
    opts = parse_args(ctx, argv)
    train, val = make_data()
    rng = np.random.default_rng(opts.seed)
    theta = np.zeros(train.x.shape[1])
    per_epoch = math.ceil(len(train.y) / opts.batch_size)
    total = opts.epochs * per_epoch
    metrics = MetricsWriter(ctx.metrics_dir)
    ctx.log(f"demo: {len(train.y)} train / {len(val.y)} val samples, {total} steps")
    started = time.monotonic()
    step = 0
    row: dict[str, float | int] = {}
    for epoch in range(1, opts.epochs + 1):
        losses: list[float] = []
        accuracies: list[float] = []
        for batch in batches(train, opts.batch_size, rng):
            loss, accuracy = loss_accuracy(theta, batch)
            theta -= opts.lr * gradient(theta, batch)
            step += 1
            losses.append(loss)
            accuracies.append(accuracy)
            ctx.progress(step, total, "step")
            if step % METRIC_EVERY == 0:
                ctx.metric({"train_loss": loss}, step=step)
            if opts.step_delay:
                time.sleep(opts.step_delay)
        val_loss, val_accuracy = loss_accuracy(theta, val)
        row = {
            "epoch": epoch,
            "step": step,
            "train_loss": float(np.mean(losses)),
            "train_accuracy": float(np.mean(accuracies)),
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
        }
        metrics.write_epoch(epoch, [row])
        ctx.metric({k: v for k, v in row.items() if k not in ("epoch", "step")}, step, epoch)
        print(
            f"epoch {epoch}/{opts.epochs}  train_loss {row['train_loss']:.3f}"
            f"  val_loss {val_loss:.3f}  val_acc {val_accuracy:.3f}",
            flush=True,
        )
    weights = ctx.staging / "weights.npy"
    np.save(weights, theta)
    ctx.emit(Checkpoint, path=str(weights), step=step)
    summary = {
        "stage": "demo",
        "options": vars(opts),
        "samples": SAMPLES,
        "steps": step,
        "seconds": round(time.monotonic() - started, 3),
        "weights": "weights.npy: float64, the features' weights then the bias",
        "final": row,
    }
    (ctx.staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if opts.grow_mb:
        grow(ctx, opts.grow_mb, opts.grow_delay)
    return 0


def grow(ctx: StageContext, mb: int, delay: float) -> None:
    """Hold ``mb`` MB of touched memory, taken ``GROW_STEP_MB`` at a time."""
    ctx.log(f"demo: growing memory to {mb} MB")
    held: list[NDArray[np.uint8]] = []
    total = 0
    while total < mb:
        size = min(GROW_STEP_MB, mb - total)
        held.append(np.ones(size * MB, dtype=np.uint8))  # writes, so touches, every page
        total += size
        print(f"grow: holding {total} MB", flush=True)
        if delay:
            time.sleep(delay)
