"""Per-ticker features without look-ahead, computed block by block.

The feature at day t uses days ≤ t of the same ticker only. Every rolling
statistic is computed per window from exactly that window's values (no running
sums), so a row's features do not depend on how the input was chunked: the
encoder carries the last ``warmup`` raw rows of each ticker into its next block.
Rows without a full history (the first ``warmup`` days of a ticker) are dropped.

Features (float32): ``ret_<k>`` log return of adj_close over k days; ``range``
log(high/low); ``close_pos`` close's position in the day's range (0..1);
``vol_z`` z-score of log volume over ``volume_window`` days; ``vol_<w>`` and
``mean_<w>`` std and mean of daily log returns over w days.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from blut.payload.data.ohlcv import Block
from blut.payload.errors import DataError

F64 = NDArray[np.float64]
_RAW = ("adj_close", "high", "low", "close", "volume")


@dataclass(frozen=True)
class FeatureSpec:
    """Which lags and windows to compute."""

    lags: tuple[int, ...] = (1, 5, 20)
    windows: tuple[int, ...] = (5, 20, 60)
    volume_window: int = 20

    @property
    def names(self) -> list[str]:
        """Feature column names, in order."""
        return [
            *(f"ret_{k}" for k in self.lags),
            "range",
            "close_pos",
            "vol_z",
            *(f"vol_{w}" for w in self.windows),
            *(f"mean_{w}" for w in self.windows),
        ]

    @property
    def warmup(self) -> int:
        """Days of history a row needs before it: rows before that are dropped."""
        return max(max(self.lags), max(self.windows), self.volume_window - 1)


def _rolling(values: F64, window: int) -> tuple[F64, F64]:
    """Mean and std of each full trailing window (NaN where the window is incomplete)."""
    mean = np.full(len(values), np.nan)
    std = np.full(len(values), np.nan)
    if len(values) >= window:
        view = sliding_window_view(values, window)
        mean[window - 1 :] = view.mean(axis=1)
        std[window - 1 :] = view.std(axis=1)
    return mean, std


def compute(raw: dict[str, F64], spec: FeatureSpec) -> dict[str, NDArray[np.float32]]:
    """Features of consecutive days of one ticker (NaN where history is short)."""
    log_adj = np.log(raw["adj_close"])
    n = len(log_adj)
    out: dict[str, F64] = {}
    for k in spec.lags:
        ret = np.full(n, np.nan)
        ret[k:] = log_adj[k:] - log_adj[:-k]
        out[f"ret_{k}"] = ret
    high, low, close = raw["high"], raw["low"], raw["close"]
    out["range"] = np.log(high / low)
    span = high - low
    out["close_pos"] = np.divide(close - low, span, out=np.full(n, 0.5), where=span > 0)
    log_vol = np.log1p(raw["volume"])
    mean, std = _rolling(log_vol, spec.volume_window)
    out["vol_z"] = np.divide(log_vol - mean, std, out=np.zeros(n), where=std > 0)
    out["vol_z"][np.isnan(mean)] = np.nan
    daily = np.concatenate(([np.nan], np.diff(log_adj)))
    for w in spec.windows:
        mean, std = _rolling(daily, w)
        out[f"vol_{w}"], out[f"mean_{w}"] = std, mean
    return {name: out[name].astype(np.float32) for name in spec.names}


@dataclass
class _Carry:
    """The last raw rows of one ticker and how many rows it has had."""

    raw: dict[str, F64]
    last_date: np.datetime64
    seen: int


@dataclass
class FeatureEncoder:
    """Turns a stream of blocks into feature rows, carrying history per ticker."""

    spec: FeatureSpec
    _carry: dict[str, _Carry] = field(default_factory=dict)

    def push(self, block: Block) -> dict[str, NDArray[np.generic]]:
        """The rows of ``block`` that have full history: date, adj_close and the features."""
        prev = self._carry.get(block.ticker)
        dates = block.columns["date"]
        if len(dates) and (
            np.any(dates[1:] <= dates[:-1]) or (prev is not None and dates[0] <= prev.last_date)
        ):
            raise DataError(f"{block.ticker}: dates are not strictly increasing")
        raw = {c: block.columns[c].astype(np.float64) for c in _RAW}
        bad = ~((raw["adj_close"] > 0) & (raw["high"] > 0) & (raw["low"] > 0))
        if bad.any():
            raise DataError(f"{block.ticker}: non-positive prices on {dates[bad][0]}")
        keep = 0
        if prev is not None:
            keep = len(prev.raw["adj_close"])
            raw = {c: np.concatenate((prev.raw[c], raw[c])) for c in _RAW}
        features = compute(raw, self.spec)
        seen = (prev.seen if prev is not None else 0) + len(dates)
        first_index = seen - len(dates)  # index of the block's first day within its ticker
        valid = np.arange(first_index, seen) >= self.spec.warmup
        tail = {c: v[-self.spec.warmup :] for c, v in raw.items()} if self.spec.warmup else {}
        last = dates[-1] if len(dates) else (prev.last_date if prev else np.datetime64("NaT"))
        self._carry[block.ticker] = _Carry(tail, last, seen)
        cols: dict[str, NDArray[np.generic]] = {
            "date": dates[valid],
            "adj_close": raw["adj_close"][keep:][valid],
        }
        cols.update({name: values[keep:][valid] for name, values in features.items()})
        return cols
