"""`blut data`: the packaged and generated sets, and a user's own file."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import blut


def test_list_names_both_sets() -> None:
    result = blut("data", "list", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert {d["name"] for d in json.loads(result.stdout)} == {"stocks", "synthetic"}


def test_show_packaged_stocks() -> None:
    result = blut("data", "show", "stocks", "--format", "json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["rows"] == 12154
    assert info["tickers"] == ["AAPL", "FB", "GOOG", "IBM", "MSFT"]
    assert "public domain" in info["licence"].lower()


def test_show_synthetic_sizes() -> None:
    info = json.loads(
        blut(
            "data", "show", "synthetic", "--tickers", "3", "--days", "100", "--format", "json"
        ).stdout
    )
    assert (len(info["tickers"]), info["rows"]) == (3, 300)


def test_user_file_missing_columns_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "prices.csv"
    bad.write_text("date,close\n2020-01-01,1.0\n")
    result = blut("data", "show", str(bad))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("blut: error: ")
    assert blut("data", "show", "no-such-set").returncode == 2
