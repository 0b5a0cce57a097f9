"""A simple daily long/short backtest of predictions against buy-and-hold.

Each day t a ticker holds ``position`` (-1, 0 or +1, decided with data up to
t) and earns ``next_return`` (close t → close t+1). The portfolio is the equal
weight mean over the tickers present that day; costs are ``cost_bps`` per unit
of position change. Buy-and-hold holds +1 of every ticker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

TRADING_DAYS = 252


def daily(frame: pd.DataFrame, cost_bps: float = 0.0) -> pd.DataFrame:
    """Per date: strategy and buy-and-hold returns, turnover, and both equity curves.

    ``frame`` has columns ticker, date, position, next_return.
    """
    frame = frame.sort_values(["ticker", "date"])
    previous = frame.groupby("ticker")["position"].shift(1, fill_value=0)
    frame = frame.assign(
        turnover=(frame["position"] - previous).abs(),
        pnl=frame["position"] * frame["next_return"],
    )
    frame["pnl"] -= frame["turnover"] * cost_bps / 1e4
    days = frame.groupby("date").agg(
        strategy=("pnl", "mean"), buy_hold=("next_return", "mean"), turnover=("turnover", "mean")
    )
    days["strategy_equity"] = (1 + days["strategy"]).cumprod()
    days["buy_hold_equity"] = (1 + days["buy_hold"]).cumprod()
    return days.reset_index()


def summary(returns: np.ndarray) -> dict[str, float]:
    """Cumulative return, annualised Sharpe and max drawdown of daily ``returns``."""
    if returns.size == 0:
        return {"cum_return": 0.0, "sharpe": 0.0, "max_drawdown": 0.0}
    equity = np.cumprod(1 + returns)
    peak = np.maximum.accumulate(np.concatenate(([1.0], equity)))[1:]
    std = returns.std()
    return {
        "cum_return": float(equity[-1] - 1),
        "sharpe": float(returns.mean() / std * np.sqrt(TRADING_DAYS)) if std > 0 else 0.0,
        "max_drawdown": float(np.max(1 - equity / peak)),
    }
