"""The smoke recipe's stage programs: tiny, deterministic, no numpy or torch.

Each reads its frozen args (``ctx.args``) and upstream artifacts
(``ctx.inputs``), writes ``numbers.json`` or ``report.json`` into its staging
dir, and honours ``sleep`` (seconds) and ``fail`` (exit 3) for tests.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from blut.payload.context import StageContext


def _pace(ctx: StageContext) -> int | None:
    """Sleep as asked (reporting progress); 3 when the stage was told to fail."""
    seconds = float(ctx.args.get("sleep", 0))
    steps = max(1, int(seconds * 10))
    for step in range(1, steps + 1):
        time.sleep(seconds / steps)
        ctx.progress(step, steps, "ticks")
    if ctx.args.get("fail"):
        ctx.log(f"stage {ctx.stage} fails on request (fail=true)", level="error")
        return 3
    return None


def _write(ctx: StageContext, name: str, data: Any) -> None:
    (ctx.staging / name).write_text(json.dumps(data, sort_keys=True) + "\n")


def _numbers(item: dict[str, Any]) -> list[int]:
    data: list[int] = json.loads((Path(item["path"]) / "numbers.json").read_text())
    return data


def make(ctx: StageContext, argv: list[str]) -> int:
    """Write ``count`` seeded random integers."""
    rng = random.Random(int(ctx.args.get("seed", 0)))
    numbers = [rng.randint(-9, 9) for _ in range(int(ctx.args.get("count", 8)))]
    failed = _pace(ctx)
    if failed is not None:
        return failed
    _write(ctx, "numbers.json", numbers)
    return 0


def power(ctx: StageContext, argv: list[str]) -> int:
    """Raise every upstream number to ``exponent``."""
    exponent = int(ctx.args.get("exponent", 2))
    (source,) = ctx.inputs
    failed = _pace(ctx)
    if failed is not None:
        return failed
    _write(ctx, "numbers.json", [n**exponent for n in _numbers(source)])
    return 0


def total(ctx: StageContext, argv: list[str]) -> int:
    """Sum every upstream branch into ``report.json``."""
    sums = {item["stage"]: sum(_numbers(item)) for item in ctx.inputs}
    failed = _pace(ctx)
    if failed is not None:
        return failed
    _write(ctx, "report.json", {"sums": sums, "total": sum(sums.values())})
    ctx.metric({"total": float(sum(sums.values()))})
    branches = ", ".join(f"{name} {value}" for name, value in sorted(sums.items()))
    ctx.log(f"total {sum(sums.values())} ({branches})")
    return 0
