"""Stage ``label``: features → forward-return targets, as Arrow IPC shards (kind ``labeled``).

For a row of ticker T at day t: ``fwd_return`` = log(adj_close[t+h] / adj_close[t])
over the next h rows of T, ``label_end`` = the date of row t+h, ``next_return``
= adj_close[t+1] / adj_close[t] - 1 (for backtests). Rows without h future rows
are dropped. ``target``: the class 0/1/2 (down/flat/up) by a threshold or by
quantiles of the forward returns of the train period only (rows whose label
window ends before ``train_end``), or the forward return itself (regression).
Features are packed into one fixed-size-list column ``x`` (float32), so the
loader can memory-map a shard's rows as one [rows, features] array.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from blut.payload import args
from blut.payload.context import StageContext
from blut.payload.errors import InputError
from blut.payload.shards import ShardWriter, read_manifest, read_shard, write_manifest

KIND = "labeled"
CLASSES = ("down", "flat", "up")


def forward_tables(directory: Path, manifest: dict[str, Any], horizon: int) -> Iterator[pa.Table]:
    """The feature rows that have ``horizon`` future rows, with the forward columns added.

    Shards are read one at a time; the last ``horizon`` rows wait for the next shard.
    """
    pending: pa.Table | None = None
    for shard in manifest["shards"]:
        table = read_shard(directory, shard)
        if pending is not None:
            table = pa.concat_tables([pending, table]).combine_chunks()
        n = table.num_rows
        if n <= horizon:
            pending = table
            continue
        pending = table.slice(n - horizon)
        yield _with_forward(table, horizon)


def _with_forward(table: pa.Table, h: int) -> pa.Table:
    n = table.num_rows
    tickers = table.column("ticker")
    same = pc.equal(tickers.slice(0, n - h), tickers.slice(h)).to_numpy(zero_copy_only=False)
    adj = table.column("adj_close").to_numpy()
    dates = table.column("date")
    head = table.slice(0, n - h)
    fwd = np.log(adj[h:] / adj[: n - h])
    nxt = adj[1 : n - h + 1] / adj[: n - h] - 1.0
    mask = pa.array(same)
    return pa.table(
        {
            "ticker": head.column("ticker"),
            "date": head.column("date"),
            "label_end": dates.slice(h),
            "adj_close": head.column("adj_close"),
            "fwd_return": fwd,
            "next_return": nxt,
            **{name: head.column(name) for name in table.column_names[3:]},
        }
    ).filter(mask)


def train_cut(manifest: dict[str, Any], train_end: str | None, fraction: float) -> dt.date:
    """``train_end``, or the date ``fraction`` of the way through the data's calendar span."""
    if train_end is not None:
        return dt.date.fromisoformat(train_end)
    first = dt.date.fromisoformat(manifest["first_date"])
    last = dt.date.fromisoformat(manifest["last_date"])
    return first + dt.timedelta(days=int((last - first).days * fraction))


def class_cuts(
    directory: Path, manifest: dict[str, Any], opts: dict[str, Any], cut: dt.date
) -> tuple[float, float]:
    """The (down | flat | up) boundaries: ±threshold, or train-period quantiles."""
    if opts["class_method"] == "threshold":
        return -opts["threshold"], opts["threshold"]
    low_q, high_q = sorted(opts["quantiles"])
    train: list[np.ndarray] = []
    for table in forward_tables(directory, manifest, opts["horizon"]):
        ends = table.column("label_end").to_numpy().astype("datetime64[D]")
        train.append(table.column("fwd_return").to_numpy()[ends < np.datetime64(cut)])
    values = np.concatenate(train) if train else np.empty(0)
    if values.size == 0:
        raise InputError(f"label: no rows whose label window ends before {cut} to fit quantiles")
    low, high = np.quantile(values, [low_q, high_q])
    return float(low), float(high)


def targets(fwd: np.ndarray, target: str, cuts: tuple[float, float]) -> pa.Array:
    """Class 0/1/2 (int64) or the forward return (float32)."""
    if target == "regression":
        return pa.array(fwd.astype(np.float32))
    return pa.array((fwd > cuts[0]).astype(np.int64) + (fwd > cuts[1]).astype(np.int64))


def labeled_table(table: pa.Table, features: list[str], target: pa.Array) -> pa.Table:
    """Keys, forward columns, ``target`` and the packed features ``x``."""
    matrix = np.column_stack([table.column(f).to_numpy() for f in features]).astype(np.float32)
    x = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), len(features))
    keep = ["ticker", "date", "label_end", "adj_close", "fwd_return", "next_return"]
    return table.select(keep).append_column("target", target).append_column("x", x)


def run(ctx: StageContext, argv: list[str]) -> int:
    """Label the ``features`` input into ``ctx.staging``."""
    opts = args.resolve("label", ctx.args, argv)
    source = ctx.input("features")
    manifest = read_manifest(source, "features")
    cut = train_cut(manifest, opts["train_end"], opts["train_fraction"])
    cuts = class_cuts(source, manifest, opts, cut) if opts["target"] == "classes" else (0.0, 0.0)
    writer = ShardWriter(ctx.staging, opts["shard_rows"], fmt="arrow")
    counts = np.zeros(len(CLASSES), dtype=np.int64)
    for table in forward_tables(source, manifest, opts["horizon"]):
        fwd = table.column("fwd_return").to_numpy()
        target = targets(fwd, opts["target"], cuts)
        if opts["target"] == "classes":
            counts += np.bincount(target.to_numpy(), minlength=len(CLASSES))
        writer.add(labeled_table(table, manifest["features"], target))
        ctx.progress(sum(s["rows"] for s in writer.shards), manifest["rows"], "rows")
    task = "regression" if opts["target"] == "regression" else "classification"
    out = write_manifest(
        ctx.staging, KIND, writer, writer.close(),
        features=manifest["features"], horizon=opts["horizon"], task=task,
        classes=list(CLASSES) if task == "classification" else None,
        class_cuts=list(cuts) if task == "classification" else None,
        class_counts=counts.tolist() if task == "classification" else None,
        class_method=opts["class_method"] if task == "classification" else None,
        quantile_period_end=cut.isoformat(), source_hash=manifest["content_hash"], args=opts,
    )  # fmt: skip
    detail = (
        f", class counts {dict(zip(CLASSES, counts.tolist(), strict=True))}"
        if task == "classification"
        else ""
    )
    ctx.log(f"label: {out['rows']} rows, horizon {opts['horizon']}, {task}{detail}")
    return 0
