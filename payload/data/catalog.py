"""What `blut data list` / `blut data show NAME` print: plain data about each set.

Sets: ``stocks`` (packaged real data), ``synthetic`` (generated on demand), or
a path to the user's own CSV/Parquet file or folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from blut.payload.data import packaged, synthetic
from blut.payload.data.files import load_file
from blut.payload.data.ohlcv import COLUMNS
from blut.payload.errors import DataError

SYNTHETIC_TICKERS = 10
SYNTHETIC_DAYS = 2520


def list_datasets() -> list[dict[str, Any]]:
    """One summary per named set: name, kind, description."""
    return [
        {
            "name": packaged.NAME,
            "kind": "packaged",
            "description": "daily OHLCV of AAPL, FB, GOOG, IBM, MSFT, 2000–2013 (real)",
        },
        {
            "name": synthetic.NAME,
            "kind": "generated",
            "description": "seeded regime-switching GBM OHLCV, any tickers × days",
        },
    ]


def show_dataset(
    name: str, tickers: int = SYNTHETIC_TICKERS, days: int = SYNTHETIC_DAYS
) -> dict[str, Any]:
    """Name, tickers, rows (per ticker too), date span, columns, provenance, licence.

    ``name`` is a set from :func:`list_datasets` or a path to a user file or
    folder; ``tickers``/``days`` size the synthetic set. Raises :class:`DataError`.
    """
    if name == synthetic.NAME:
        end = np.busday_offset(synthetic.START, days - 1, roll="forward")
        names = synthetic.ticker_names(tickers)
        return _info(
            name, "generated", dict.fromkeys(names, days), str(synthetic.START), str(end),
            synthetic.PROVENANCE, synthetic.LICENCE,
        )  # fmt: skip
    if name == packaged.NAME:
        frame = packaged.load_stocks()
        provenance, licence, kind = packaged.PROVENANCE, packaged.LICENCE, "packaged"
    elif Path(name).exists():
        frame = load_file(Path(name))
        provenance, licence, kind = (
            f"user file {Path(name).resolve()}",
            "unknown (user's own data)",
            "file",
        )
    else:
        known = ", ".join(d["name"] for d in list_datasets())
        raise DataError(f"no data set {name!r}; known: {known}, or a CSV/Parquet path")
    counts = {str(k): int(v) for k, v in frame.groupby("ticker").size().items()}
    first, last = (str(frame["date"].min().date()), str(frame["date"].max().date()))
    return _info(name, kind, counts, first, last, provenance, licence)


def _info(
    name: str, kind: str, rows: dict[str, int], first: str, last: str, provenance: str, licence: str
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "tickers": sorted(rows),
        "rows": sum(rows.values()),
        "rows_per_ticker": rows,
        "first_date": first,
        "last_date": last,
        "columns": list(COLUMNS),
        "provenance": provenance,
        "licence": licence,
    }
