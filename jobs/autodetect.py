"""`blut auto`: what recipe fits a data file or folder, and the args that point it there.

Only names are read: a CSV's header, a Parquet file's schema, the keys of a JSONL
file's first records. OHLCV (date, open, high, low, close, volume; a CSV/Parquet
file or a folder of them) → ``quant-train``; chat ``messages``, ``prompt`` +
``completion`` or ``text`` rows → ``llm-sft``; ``chosen``/``rejected`` (with or
without ``prompt``) → ``llm-dpo``; ``prompt``/``completion``/``label`` rows
(KTO's unpaired form) → ``llm-kto``; ``prompt`` alone (``answer`` optional) →
``llm-generate``. Anything else is a `UsageError` saying what was found.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from blut.jobs.errors import UsageError, clip

OHLCV = ("date", "open", "high", "low", "close", "volume")
TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
SAMPLE_ROWS = 20
"""JSONL records read to decide."""


@dataclass(frozen=True)
class Proposal:
    """A recipe and the ``--set`` overrides that run it on the data, and why."""

    recipe: str
    sets: tuple[str, ...]
    why: str


_PLAIN = re.compile(r"^[A-Za-z0-9_/.+~-]+$")


def override_value(path: Path) -> str:
    """``path`` as the value of a ``--set`` override: quoted (Hydra's grammar) unless it is
    plain, so spaces, commas or quotes in it cannot make a sweep or a syntax error."""
    text = str(path)
    if _PLAIN.match(text):
        return text
    # Hydra: backslashes escape only before a quote (and before the closing one)
    quoted = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    return "'" + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, quoted) + "'"


def _column(name: str) -> str:
    """``"Adj Close"`` → ``adj_close`` (the spelling the OHLCV loader maps)."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def _table_columns(path: Path) -> list[str]:
    """The column names of a CSV (header) or Parquet (schema) file."""
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rb") as raw:
            head = io.TextIOWrapper(raw, encoding="utf-8", errors="replace").readline()
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read its columns ({clip(str(exc), 120)})") from exc
    return next(csv.reader([head]), [])


def _jsonl_keys(path: Path) -> set[str]:
    """The keys every one of the first records has; a line that is not an object → error."""
    keys: set[str] | None = None
    seen = 0
    try:
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise UsageError(f"{path}: line {number} is not JSON ({exc})") from exc
                if not isinstance(record, dict):
                    raise UsageError(f"{path}: line {number} is not a JSON object")
                keys = set(record) if keys is None else keys & set(record)
                seen += 1
                if seen == SAMPLE_ROWS:
                    break
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text") from exc
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from exc
    if keys is None:
        raise UsageError(f"{path}: no records")
    return keys


def _records(path: Path, keys: set[str]) -> Proposal:
    """The llm recipe for records with ``keys``."""
    where = override_value(path)
    if {"chosen", "rejected"} <= keys:
        return Proposal("llm-dpo", (f"prefs.source={where}",), "preference pairs")
    if {"prompt", "completion", "label"} <= keys:
        return Proposal("llm-kto", (f"prefs.source={where}",), "unpaired KTO rows")
    if "messages" in keys:
        return Proposal("llm-sft", (f"tokenize.source={where}",), "chat conversations")
    if {"prompt", "completion"} <= keys:
        return Proposal("llm-sft", (f"tokenize.source={where}",), "prompt-completion rows")
    if "text" in keys:
        sets = (f"tokenize.source={where}", "tokenize.format=text")
        return Proposal("llm-sft", sets, "plain text rows")
    if "prompt" in keys:
        return Proposal("llm-generate", (f"prompts.source={where}",), "prompts only")
    found = ", ".join(sorted(keys)) or "none in common"
    raise UsageError(
        f"{path}: no recipe fits records with keys {clip(found, 120)} (expected messages, "
        "prompt+completion, text, chosen+rejected, prompt+completion+label, or prompt)"
    )


def _ohlcv(path: Path, files: list[Path]) -> Proposal:
    for file in files:
        have = {_column(c) for c in _table_columns(file)}
        missing = [c for c in OHLCV if c not in have]
        if missing:
            raise UsageError(
                f"{file}: not OHLCV: missing column(s) {', '.join(missing)} "
                f"(have: {clip(', '.join(sorted(have)) or 'none', 120)})"
            )
    what = f"OHLCV in {len(files)} file(s)" if path.is_dir() else "OHLCV"
    return Proposal("quant-train", (f"encode.dataset={override_value(path)}",), what)


def _is(path: Path, suffixes: tuple[str, ...]) -> bool:
    return path.name.lower().endswith(suffixes)


def propose(data: Path) -> Proposal:
    """The recipe and args that fit ``data`` (made absolute); a `UsageError` when none does."""
    path = data.expanduser().resolve()
    if not path.exists():
        raise UsageError(f"{data}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and _is(p, TABLE_SUFFIXES))
        if not files:
            raise UsageError(
                f"{data}: a folder holds OHLCV as CSV/Parquet files, and it has none "
                "(name a .jsonl file itself for the llm recipes)"
            )
        return _ohlcv(path, files)
    if _is(path, JSONL_SUFFIXES):
        return _records(path, _jsonl_keys(path))
    if _is(path, (".parquet", ".pq")):
        columns = {_column(c) for c in _table_columns(path)}
        if all(c in columns for c in OHLCV):
            return _ohlcv(path, [path])
        return _records(path, set(_table_columns(path)))
    if _is(path, TABLE_SUFFIXES):
        return _ohlcv(path, [path])
    raise UsageError(
        f"{data}: not a data file blut knows (CSV/Parquet OHLCV, or JSONL/Parquet records)"
    )
