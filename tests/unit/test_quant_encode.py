"""encode: features without look-ahead, independent of chunking, sharded with a manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from blut.payload.data import packaged
from blut.payload.data.ohlcv import Block, frame_blocks
from blut.payload.features import FeatureEncoder, FeatureSpec
from tests.unit.quant_support import REAL_TICKERS, run_stage

SPEC = FeatureSpec()


def encode_frame(frame: pd.DataFrame, chunk_rows: int) -> dict[str, np.ndarray]:
    encoder = FeatureEncoder(SPEC)
    parts = [encoder.push(block) for block in frame_blocks(frame, chunk_rows)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def test_no_look_ahead_perturbing_the_future_keeps_past_features() -> None:
    frame = packaged.load_stocks(["MSFT"]).head(400)
    cut = 250
    future = frame.copy()
    rng = np.random.default_rng(0)
    for col in ("open", "high", "low", "close", "adj_close", "volume"):
        future.loc[cut:, col] *= rng.uniform(0.5, 2.0, len(future) - cut)
    base, moved = encode_frame(frame, 1000), encode_frame(future, 1000)
    cut_date = frame["date"].iloc[cut].to_datetime64().astype("datetime64[D]")
    past = base["date"] < cut_date
    assert past.sum() == cut - SPEC.warmup
    for name in SPEC.names:
        assert np.array_equal(base[name][past], moved[name][past]), name
        assert not np.array_equal(base[name][~past], moved[name][~past]), name


def test_features_do_not_depend_on_chunking_and_match_pandas() -> None:
    frame = packaged.load_stocks(["IBM"]).head(300)
    whole, chunked = encode_frame(frame, 10_000), encode_frame(frame, 23)
    for key in whole:
        assert np.array_equal(whole[key], chunked[key]), key
    adj = frame["adj_close"].to_numpy()
    log_ret = pd.Series(np.log(adj)).diff()
    expected_vol = log_ret.rolling(20).std(ddof=0).to_numpy()[SPEC.warmup :]
    np.testing.assert_allclose(whole["vol_20"], expected_vol, rtol=1e-5)
    expected_ret = np.log(adj[SPEC.warmup :] / adj[SPEC.warmup - 5 : -5])
    np.testing.assert_allclose(whole["ret_5"], expected_ret, rtol=1e-5)


def test_encoder_refuses_dates_that_go_back() -> None:
    encoder = FeatureEncoder(SPEC)
    cols = {c: np.ones(2) for c in ("open", "high", "low", "close", "volume", "adj_close")}
    encoder.push(
        Block("X", {"date": np.array(["2020-01-02", "2020-01-03"], "datetime64[D]"), **cols})
    )
    try:
        encoder.push(
            Block("X", {"date": np.array(["2020-01-03", "2020-01-06"], "datetime64[D]"), **cols})
        )
    except Exception as exc:
        assert "not strictly increasing" in str(exc)
    else:
        raise AssertionError("no error")


def test_encode_stage_writes_shards_and_manifest(tmp_path: Path) -> None:
    out = run_stage(
        tmp_path, "encode", {"tickers": REAL_TICKERS, "shard_rows": 4000, "chunk_rows": 1000}
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "features"
    assert manifest["rows"] == 3 * (3270 - SPEC.warmup)
    assert [s["rows"] for s in manifest["shards"]] == [4000, 4000, manifest["rows"] - 8000]
    assert manifest["features"] == SPEC.names
    assert manifest["tickers"] == sorted(REAL_TICKERS)
    table = pq.read_table(out / manifest["shards"][1]["file"])
    assert table.column_names == ["ticker", "date", "adj_close", *SPEC.names]
    assert manifest["first_date"] < manifest["last_date"]


def test_encode_synthetic_stage(tmp_path: Path) -> None:
    args = {
        "dataset": "synthetic",
        "synthetic_tickers": 2,
        "synthetic_days": 300,
        "shard_rows": 100,
    }
    out = run_stage(tmp_path, "encode", args)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"] == 2 * (300 - SPEC.warmup)
    assert len(manifest["shards"]) == 5
