"""Market data: the packaged real set, the synthetic generator, user files, data list/show."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from blut.payload.data import packaged, synthetic
from blut.payload.data.catalog import list_datasets, show_dataset
from blut.payload.data.files import load_file
from blut.payload.data.ohlcv import COLUMNS, frame_blocks
from blut.payload.errors import DataError


def test_packaged_stocks_are_the_real_set() -> None:
    frame = packaged.load_stocks()
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == 12_154
    counts = frame.groupby("ticker").size().to_dict()
    assert counts == {"AAPL": 3270, "FB": 196, "GOOG": 2148, "IBM": 3270, "MSFT": 3270}
    aapl = frame[frame["ticker"] == "AAPL"].iloc[0]
    assert (str(aapl["date"].date()), aapl["close"]) == ("2000-03-01", 130.31)
    assert aapl["adj_close"] == pytest.approx(4.186663)  # adjusted across splits
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()


def test_show_stocks_has_span_provenance_and_licence() -> None:
    info = show_dataset("stocks")
    assert info["tickers"] == ["AAPL", "FB", "GOOG", "IBM", "MSFT"]
    assert (info["rows"], info["first_date"], info["last_date"]) == (
        12_154, "2000-03-01", "2013-03-01",
    )  # fmt: skip
    assert info["columns"] == list(COLUMNS)
    assert "Quandl WIKI" in info["provenance"]
    assert "Public domain" in info["licence"]
    assert {d["name"] for d in list_datasets()} == {"stocks", "synthetic"}


def test_show_synthetic_and_unknown_names() -> None:
    info = show_dataset("synthetic", tickers=3, days=5)
    assert info["tickers"] == ["SYN0000", "SYN0001", "SYN0002"]
    assert (info["rows"], info["first_date"], info["last_date"]) == (15, "2000-01-03", "2000-01-07")
    with pytest.raises(DataError, match="no data set 'nope'; known: stocks, synthetic"):
        show_dataset("nope")


def _concat(blocks: list) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for b in blocks:
        for col, values in b.columns.items():
            out.setdefault(b.ticker, {}).setdefault(col, []).append(values)
    return {t: {c: np.concatenate(v) for c, v in cols.items()} for t, cols in out.items()}


def test_synthetic_is_seeded_and_independent_of_chunking() -> None:
    whole = _concat(list(synthetic.generate(3, 500, seed=7, chunk_rows=500)))
    chunked = _concat(list(synthetic.generate(3, 500, seed=7, chunk_rows=37)))
    other = _concat(list(synthetic.generate(3, 500, seed=8)))
    for ticker, cols in whole.items():
        for col, values in cols.items():
            assert np.array_equal(values, chunked[ticker][col]), (ticker, col)
    assert not np.array_equal(whole["SYN0000"]["close"], other["SYN0000"]["close"])
    bars = whole["SYN0001"]
    assert (bars["high"] >= np.maximum(bars["open"], bars["close"])).all()
    assert (bars["low"] <= np.minimum(bars["open"], bars["close"])).all()
    assert (bars["volume"] > 0).all()
    assert np.all(np.diff(bars["date"]) > np.timedelta64(0, "D"))


def test_user_csv_is_normalised_and_ticker_defaults_to_the_file_name(tmp_path: Path) -> None:
    src = packaged.load_stocks(["IBM"]).head(30).drop(columns=["ticker"])
    src = src.rename(columns={"adj_close": "Adj Close", "date": "Date", "volume": "Volume"})
    src.to_csv(tmp_path / "IBM.csv", index=False)
    frame = load_file(tmp_path / "IBM.csv")
    assert list(frame.columns) == list(COLUMNS)
    assert set(frame["ticker"]) == {"IBM"}
    assert len(list(frame_blocks(frame, 7))) == 5


def test_user_file_missing_columns_are_named(tmp_path: Path) -> None:
    pd.DataFrame({"Date": ["2020-01-02"], "Open": [1.0], "Close": [1.0]}).to_parquet(
        tmp_path / "x.parquet"
    )
    with pytest.raises(DataError, match=r"missing OHLCV column\(s\) high, low, volume"):
        load_file(tmp_path / "x.parquet")
    with pytest.raises(DataError, match="no such file"):
        load_file(tmp_path / "absent.csv")
