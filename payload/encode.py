"""Stage ``encode``: OHLCV → features, as Parquet shards plus a manifest (kind ``features``).

Rows are streamed block by block (packaged set, synthetic generator or user
files), features computed per ticker with carried history (see
`blut.payload.features`), and written in shards of ``shard_rows`` rows, so
memory is bounded by the shard and block sizes. Shards hold rows sorted by
(ticker, date), which the later stages rely on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from blut.payload import args
from blut.payload.context import StageContext
from blut.payload.data import packaged, synthetic
from blut.payload.data.files import load_file
from blut.payload.data.ohlcv import Block, frame_blocks
from blut.payload.features import FeatureEncoder, FeatureSpec
from blut.payload.shards import ShardWriter, write_manifest

KIND = "features"


def source_blocks(ctx: StageContext, opts: dict[str, Any]) -> tuple[str, int, Iterator[Block]]:
    """A description of the source, its row count and its blocks."""
    chunk, tickers = opts["chunk_rows"], opts["tickers"]
    if any(item.get("kind") == "ohlcv" for item in ctx.inputs):
        path = ctx.input("ohlcv")
        frame = load_file(path, tickers)
        return f"ohlcv input {path}", len(frame), frame_blocks(frame, chunk)
    name = opts["dataset"]
    if name == synthetic.NAME:
        n, days = opts["synthetic_tickers"], opts["synthetic_days"]
        blocks = synthetic.generate(n, days, opts["seed"], chunk)
        return f"synthetic {n}×{days} seed {opts['seed']}", n * days, blocks
    frame = (
        packaged.load_stocks(tickers) if name == packaged.NAME else load_file(Path(name), tickers)
    )
    return name, len(frame), frame_blocks(frame, chunk)


def block_table(ticker: str, cols: dict[str, Any]) -> pa.Table:
    """Feature columns of one block as a table with a leading ticker column."""
    n = len(cols["date"])
    return pa.table({"ticker": pa.repeat(pa.scalar(ticker), n), **cols})


def run(ctx: StageContext, argv: list[str]) -> int:
    """Encode the configured source into ``ctx.staging``."""
    opts = args.resolve("encode", ctx.args, argv)
    spec = FeatureSpec(tuple(opts["lags"]), tuple(opts["windows"]), opts["volume_window"])
    source, total, blocks = source_blocks(ctx, opts)
    ctx.log(f"encode: {source}, {total} rows, {len(spec.names)} features")
    encoder = FeatureEncoder(spec)
    writer = ShardWriter(ctx.staging, opts["shard_rows"])
    done = 0
    for block in blocks:
        writer.add(block_table(block.ticker, encoder.push(block)))
        done += len(block)
        ctx.progress(done, total, "rows")
    manifest = write_manifest(
        ctx.staging, KIND, writer, writer.close(),
        source=source, features=spec.names, warmup=spec.warmup, input_rows=done, args=opts,
    )  # fmt: skip
    ctx.log(
        f"encode: {manifest['rows']} feature rows in {len(manifest['shards'])} shard(s), "
        f"{manifest['first_date']}..{manifest['last_date']}"
    )
    return 0
