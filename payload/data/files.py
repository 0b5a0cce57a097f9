"""A user's own OHLCV: a CSV or Parquet file, or a folder of them (one ticker per file is fine)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from blut.payload.data.ohlcv import normalize
from blut.payload.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


def data_files(path: Path) -> list[Path]:
    """``path`` itself, or the CSV/Parquet files in the folder ``path`` (sorted)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.lower().endswith(SUFFIXES))
        if not files:
            raise DataError(f"{path}: no CSV or Parquet files ({', '.join(SUFFIXES)})")
        return files
    if not path.is_file():
        raise DataError(f"{path}: no such file or folder")
    if not path.name.lower().endswith(SUFFIXES):
        raise DataError(f"{path}: not a CSV or Parquet file ({', '.join(SUFFIXES)})")
    return [path]


def load_file(path: Path, tickers: list[str] | None = None) -> pd.DataFrame:
    """The OHLCV in ``path`` (file or folder), canonical and sorted by (ticker, date).

    A file without a ticker column takes its name (``AAPL.csv`` → ``AAPL``).
    Raises :class:`DataError` naming missing columns or unknown tickers.
    """
    import pandas as pd

    frames = []
    for file in data_files(path):
        name = file.name.lower()
        try:
            raw = pd.read_parquet(file) if name.endswith((".parquet", ".pq")) else pd.read_csv(file)
        except (OSError, ValueError) as exc:
            raise DataError(f"{file}: cannot read: {exc}") from exc
        frames.append(normalize(raw, str(file), ticker=file.name.split(".")[0]))
    frame = normalize(pd.concat(frames, ignore_index=True), str(path))
    if tickers:
        unknown = sorted(set(tickers) - set(frame["ticker"]))
        if unknown:
            raise DataError(f"{path}: unknown ticker(s) {', '.join(unknown)}")
        frame = frame[frame["ticker"].isin(tickers)].reset_index(drop=True)
    return frame
