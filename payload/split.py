"""Stage ``split``: row-range manifests over the labeled shards (kind ``splits``).

The trading calendar is the sorted set of all dates. A split covers calendar
days [lo, hi); when a later split follows, its last ``embargo`` (≥ horizon) days
are dropped and every row must have ``label_end`` before day hi, so no label
window crosses a boundary. Labeled rows are sorted by (ticker, date), so each
split is a list of global row ranges ``[start, stop)`` (shards in manifest order).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from blut.payload import args
from blut.payload.context import StageContext
from blut.payload.errors import ArgsError
from blut.payload.shards import MANIFEST, read_manifest, read_shard

KIND = "splits"


@dataclass(frozen=True)
class Span:
    """Calendar days [lo, hi) of one split; ``embargoed``: a later split follows."""

    lo: int
    hi: int
    embargoed: bool


def calendar(directory: Path, manifest: dict[str, Any]) -> np.ndarray:
    """All trading dates of the labeled rows, sorted (datetime64[D])."""
    dates = [
        np.unique(read_shard(directory, s).column("date").to_numpy()) for s in manifest["shards"]
    ]
    return np.unique(np.concatenate(dates)).astype("datetime64[D]")


def spans(n: int, opts: dict[str, Any]) -> list[dict[str, Span]]:
    """The folds: each a mapping of split name to its calendar span."""
    test_lo = n - round(n * opts["test_fraction"])
    test = {"test": Span(test_lo, n, False)} if test_lo < n else {}
    if opts["mode"] == "holdout":
        val_lo = test_lo - round(n * opts["val_fraction"])
        return [{"train": Span(0, val_lo, True), "val": Span(val_lo, test_lo, bool(test)), **test}]
    k = opts["folds"]
    edges = np.linspace(0, test_lo, k + 2).round().astype(int)
    return [
        {
            "train": Span(0, int(edges[i + 1]), True),
            "val": Span(int(edges[i + 1]), int(edges[i + 2]), bool(test) or i + 2 <= k),
            **test,
        }
        for i in range(k)
    ]


def ranges(mask: np.ndarray, offset: int) -> list[list[int]]:
    """``[start, stop)`` runs of True in ``mask``, shifted by ``offset``."""
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [
        [int(a) + offset, int(b) + offset] for a, b in zip(edges[::2], edges[1::2], strict=True)
    ]


def merge(runs: list[list[int]]) -> list[list[int]]:
    """Adjacent ranges joined."""
    out: list[list[int]] = []
    for start, stop in runs:
        if out and out[-1][1] == start:
            out[-1][1] = stop
        else:
            out.append([start, stop])
    return out


def select(
    directory: Path, manifest: dict[str, Any], days: np.ndarray, span: Span, embargo: int
) -> dict[str, Any]:
    """The rows of ``span``: ranges, row count and date span."""
    hi = span.hi - embargo if span.embargoed else span.hi
    lo_date, hi_date = days[span.lo], days[hi] if hi < len(days) else None
    boundary = days[span.hi] if span.hi < len(days) else None
    runs: list[list[int]] = []
    offset = 0
    for shard in manifest["shards"]:
        table = read_shard(directory, shard)
        date = table.column("date").to_numpy().astype("datetime64[D]")
        mask = date >= lo_date
        if hi_date is not None:
            mask &= date < hi_date
        if span.embargoed and boundary is not None:
            mask &= table.column("label_end").to_numpy().astype("datetime64[D]") < boundary
        runs += ranges(mask, offset)
        offset += table.num_rows
    last = days[hi - 1] if hi > span.lo else None
    return {
        "first_date": str(lo_date),
        "last_date": str(last) if last is not None else None,
        "rows": sum(b - a for a, b in runs),
        "ranges": merge(runs),
    }


def run(ctx: StageContext, argv: list[str]) -> int:
    """Split the ``labeled`` input; write ``manifest.json`` into ``ctx.staging``."""
    opts = args.resolve("split", ctx.args, argv)
    source = ctx.input("labeled")
    manifest = read_manifest(source, "labeled")
    horizon = manifest["horizon"]
    embargo = horizon if opts["embargo"] is None else opts["embargo"]
    if embargo < horizon:
        raise ArgsError(f"split: embargo {embargo} is shorter than the label horizon {horizon}")
    days = calendar(source, manifest)
    folds: list[dict[str, Any]] = []
    for index, fold in enumerate(spans(len(days), opts)):
        if any(s.hi - (embargo if s.embargoed else 0) <= s.lo for s in fold.values()):
            raise ArgsError(f"split: {len(days)} trading days are too few for these fractions")
        name = "holdout" if opts["mode"] == "holdout" else f"fold-{index}"
        chosen = {k: select(source, manifest, days, s, embargo) for k, s in fold.items()}
        folds.append({"name": name, "splits": chosen})
        sizes = ", ".join(f"{k} {v['rows']}" for k, v in chosen.items())
        ctx.log(f"split: {name}: {sizes} rows")
    first_val = min(str(f["splits"]["val"]["first_date"]) for f in folds)
    if manifest.get("class_method") == "quantile" and manifest["quantile_period_end"] > first_val:
        ctx.log(
            f"split: class quantiles were fitted on data up to {manifest['quantile_period_end']}, "
            f"after validation starts ({first_val}); set label.train_end <= {first_val}",
            level="warning",
        )
    out = {
        "kind": KIND,
        "mode": opts["mode"],
        "embargo": embargo,
        "horizon": horizon,
        "labeled_hash": manifest["content_hash"],
        "trading_days": len(days),
        "folds": folds,
        "args": opts,
    }
    (ctx.staging / MANIFEST).write_text(json.dumps(out, indent=2) + "\n")
    return 0
