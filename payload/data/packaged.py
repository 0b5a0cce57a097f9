"""The packaged real set: daily OHLCV of AAPL, IBM, MSFT, GOOG, FB, 2000–2013.

Shipped in ``bokeh-sampledata==2026.1`` as ``bokeh_sampledata/_data/stocks.csv.gz``
and read with importlib.resources (never through bokeh's plotting imports).
Returns use ``adj_close`` (the source's adjusted close): raw closes jump at splits.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from blut.payload.data.ohlcv import normalize
from blut.payload.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

NAME = "stocks"
PACKAGE = "bokeh_sampledata"
RESOURCE = ("_data", "stocks.csv.gz")
TICKERS = ("AAPL", "FB", "GOOG", "IBM", "MSFT")
PROVENANCE = (
    "Quandl WIKI Prices (archived copy supplied by marketneutral on Kaggle), as shipped in "
    "the PyPI package bokeh-sampledata==2026.1, file bokeh_sampledata/_data/stocks.csv.gz "
    "(sha256 5abadf99b2d394f920120a27de6f0df129859d71d4cfb0bf661bcc99446ab1fd). "
    "Open/high/low/close/volume are unadjusted; adj_close is the source's adjusted close."
)
LICENCE = (
    "Public domain: the archived Quandl publisher page declares the WIKI data public domain "
    "and explicitly permits copying, distribution and inclusion in commercial or "
    "noncommercial products (recorded in bokeh-sampledata's licenses/datasets.json). "
    "The bokeh-sampledata package code is BSD-3-Clause."
)


def load_stocks(tickers: list[str] | None = None) -> pd.DataFrame:
    """The packaged OHLCV, canonical columns, sorted by (ticker, date); optionally some tickers."""
    import pandas as pd

    try:
        resource = resources.files(PACKAGE).joinpath(*RESOURCE)
        with resource.open("rb") as f:
            raw = pd.read_csv(f, compression="gzip")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise DataError(
            "the packaged market data needs bokeh-sampledata: "
            "pip install 'bokeh-sampledata==2026.1'"
        ) from exc
    frame = normalize(raw, f"{PACKAGE}/{'/'.join(RESOURCE)}")
    if tickers:
        unknown = sorted(set(tickers) - set(TICKERS))
        if unknown:
            raise DataError(f"{NAME}: unknown ticker(s) {', '.join(unknown)}; have {TICKERS}")
        frame = frame[frame["ticker"].isin(tickers)].reset_index(drop=True)
    return frame
