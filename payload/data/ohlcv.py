"""The canonical OHLCV table: column names, normalisation and validation.

Canonical columns, in order: ticker, date, open, high, low, close, volume,
adj_close. Other spellings (``Adj Close``, ``Date``, ``Symbol``) are mapped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from blut.payload.errors import DataError

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import NDArray

COLUMNS = ("ticker", "date", "open", "high", "low", "close", "volume", "adj_close")
REQUIRED = ("date", "open", "high", "low", "close", "volume")
_ALIASES = {"symbol": "ticker", "adjclose": "adj_close", "adjusted_close": "adj_close"}


def canonical_name(column: str) -> str:
    """``"Adj Close"`` → ``"adj_close"``; known aliases mapped."""
    name = re.sub(r"[^0-9a-z]+", "_", column.strip().lower()).strip("_")
    return _ALIASES.get(name, name)


def normalize(frame: pd.DataFrame, source: str, ticker: str | None = None) -> pd.DataFrame:
    """``frame`` with canonical columns and dtypes, sorted by (ticker, date).

    A missing ``ticker`` column takes ``ticker``; a missing ``adj_close`` takes
    ``close``. Raises :class:`DataError` naming the missing columns, or rows
    that are unusable (unparseable dates, duplicate (ticker, date)).
    """
    import pandas as pd

    frame = frame.rename(columns={c: canonical_name(str(c)) for c in frame.columns})
    if "ticker" not in frame.columns and ticker is not None:
        frame = frame.assign(ticker=ticker)
    if "adj_close" not in frame.columns and "close" in frame.columns:
        frame = frame.assign(adj_close=frame["close"])
    missing = [c for c in (*REQUIRED, "ticker") if c not in frame.columns]
    if missing:
        have = ", ".join(map(str, frame.columns)) or "none"
        raise DataError(f"{source}: missing OHLCV column(s) {', '.join(missing)} (have: {have})")
    out = frame.loc[:, list(COLUMNS)].copy()
    out["ticker"] = out["ticker"].astype(str)
    try:
        out["date"] = pd.to_datetime(out["date"]).dt.normalize().astype("datetime64[s]")
    except (ValueError, TypeError) as exc:
        raise DataError(f"{source}: column date does not parse as dates: {exc}") from exc
    for col in COLUMNS[2:]:
        try:
            out[col] = pd.to_numeric(out[col]).astype("float64")
        except (ValueError, TypeError) as exc:
            raise DataError(f"{source}: column {col} is not numeric: {exc}") from exc
    dupes = out.duplicated(["ticker", "date"])
    if dupes.any():
        first = out.loc[dupes].iloc[0]
        raise DataError(
            f"{source}: {int(dupes.sum())} duplicate (ticker, date) rows, "
            f"first {first['ticker']} {first['date'].date()}"
        )
    return out.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Block:
    """Consecutive days of one ticker: ``date`` (datetime64[D]) and float64 OHLCV arrays."""

    ticker: str
    columns: dict[str, NDArray[Any]]

    def __len__(self) -> int:
        return len(self.columns["date"])


def frame_blocks(frame: pd.DataFrame, chunk_rows: int) -> Iterator[Block]:
    """A normalised frame as blocks of at most ``chunk_rows`` days per ticker, in order."""
    for ticker, group in frame.groupby("ticker", sort=True):
        for start in range(0, len(group), chunk_rows):
            part = group.iloc[start : start + chunk_rows]
            cols = {c: part[c].to_numpy(dtype="float64") for c in COLUMNS[2:]}
            cols["date"] = part["date"].to_numpy().astype("datetime64[D]")
            yield Block(str(ticker), cols)
