"""The registry of stage programs: name → ``stage(ctx, argv) -> exit code``.

Each entry imports its module only when called, so listing the stages (or
``--help``) imports no numpy or torch.
"""

from __future__ import annotations

from collections.abc import Callable

from blut.payload.context import StageContext

Stage = Callable[[StageContext, list[str]], int]


def demo(ctx: StageContext, argv: list[str]) -> int:
    """A small numpy logistic-regression training run (the `make demo` job)."""
    from blut.payload.demo import run

    return run(ctx, argv)


def encode(ctx: StageContext, argv: list[str]) -> int:
    """OHLCV → per-ticker features without look-ahead (Parquet shards + manifest)."""
    from blut.payload.encode import run

    return run(ctx, argv)


def label(ctx: StageContext, argv: list[str]) -> int:
    """Features → forward-return targets (3-class or regression) as Arrow shards."""
    from blut.payload.label import run

    return run(ctx, argv)


def split(ctx: StageContext, argv: list[str]) -> int:
    """Chronological train/val/test or walk-forward folds with an embargo (manifests)."""
    from blut.payload.split import run

    return run(ctx, argv)


def train(ctx: StageContext, argv: list[str]) -> int:
    """Train a windowed model (MLP/CNN/GRU/linear) with checkpoints and exact resume."""
    from blut.payload.train import run

    return run(ctx, argv)


def evaluate(ctx: StageContext, argv: list[str]) -> int:
    """Test-split metrics, confusion matrix and a long/short backtest vs buy-and-hold."""
    from blut.payload.evaluate import run

    return run(ctx, argv)


def smoke_make(ctx: StageContext, argv: list[str]) -> int:
    """Smoke recipe: write seeded random integers."""
    from blut.payload.smoke import make

    return make(ctx, argv)


def smoke_power(ctx: StageContext, argv: list[str]) -> int:
    """Smoke recipe: raise the upstream numbers to a power."""
    from blut.payload.smoke import power

    return power(ctx, argv)


def smoke_total(ctx: StageContext, argv: list[str]) -> int:
    """Smoke recipe: sum the upstream branches into a report."""
    from blut.payload.smoke import total

    return total(ctx, argv)


STAGES: dict[str, Stage] = {
    "demo": demo,
    "encode": encode,
    "label": label,
    "split": split,
    "train": train,
    "evaluate": evaluate,
    "smoke-make": smoke_make,
    "smoke-power": smoke_power,
    "smoke-total": smoke_total,
}


def summary(stage: Stage) -> str:
    """The first line of a stage's docstring."""
    return (stage.__doc__ or "").strip().partition("\n")[0]
