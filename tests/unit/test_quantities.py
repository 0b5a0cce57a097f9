"""Sizes and durations users type."""

from __future__ import annotations

import pytest

from blut.jobs.errors import UsageError
from blut.jobs.quantities import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2G", 2 << 30),
        ("512M", 512 << 20),
        ("512m", 512 << 20),
        ("1.5GiB", int(1.5 * (1 << 30))),
        ("100MB", 100 << 20),
        ("64k", 64 << 10),
        ("1048576", 1 << 20),
        (" 1T ", 1 << 40),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["12Q", "", "G", "-1G", "0", "2 G B", "1e9"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="invalid size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("500ms", 0.5),
    ],
)
def test_parse_duration(text: str, expected: float) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "1x", "h", "0", "-5", "1h junk"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="invalid duration"):
        parse_duration(text)


def test_formatting() -> None:
    assert format_size(None) == "-"
    assert format_size(512) == "512 B"
    assert format_size(int(1.9 * (1 << 30))) == "1.9 GiB"
    assert format_duration(None) == "-"
    assert format_duration(4.25) == "4.2s"
    assert format_duration(185) == "3m05s"
    assert format_duration(3720) == "1h02m"
