"""Parse and format the sizes and durations users type (``2G``, ``512MiB``, ``1h30m``)."""

from __future__ import annotations

import re

from blut.jobs.errors import UsageError, clip

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
# systemd takes MemoryMax in bytes and RuntimeMaxUSec in microseconds as uint64:
# anything past these bounds cannot be applied (and nobody means it).
MAX_SIZE = 1 << 60  # 1 EiB
MAX_SECONDS = 100 * 365 * 86400.0  # 100 years


def parse_size(text: str) -> int:
    """Bytes in ``text``: a number with an optional K/M/G/T/P suffix (powers of 1024).

    ``512M``, ``2G``, ``1.5GiB`` and ``1048576`` are accepted; anything else raises
    :class:`UsageError` naming the value.
    """
    match = _SIZE.match(text)
    if match is None:
        raise UsageError(f"invalid size {clip(text)!r}: use a number with K, M, G or T (e.g. 2G)")
    number, unit, _ = match.groups()
    scaled = float(number) * 1024 ** _POWERS[unit.lower()]
    if not scaled <= MAX_SIZE:  # also catches inf from a very long number
        raise UsageError(f"invalid size {clip(text)!r}: must be at most 1024P")
    value = int(scaled)
    if value <= 0:
        raise UsageError(f"invalid size {clip(text)!r}: must be more than 0")
    return value


def format_size(value: int | None) -> str:
    """``1.9 GiB``-style text; ``-`` for None."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def short_size(value: float | None) -> str:
    """``1.2G``, ``512M``, ``-``."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "K", "M", "G", "T"):
        if size < 1024 or unit == "T":
            return f"{size:.0f}{unit}" if size >= 10 or unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    raise AssertionError("unreachable")


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``90``, ``90s``, ``30m``, ``1h30m``, ``2d``."""
    stripped = text.strip().lower()
    if _NUMBER.match(stripped):
        seconds = float(stripped)
    else:
        parts = _DURATION_PART.findall(stripped)
        if not parts or "".join(n + u for n, u in parts) != stripped:
            raise UsageError(f"invalid duration {clip(text)!r}: use e.g. 90s, 30m, 1h30m") from None
        seconds = sum(float(n) * _SECONDS[u] for n, u in parts)
    if seconds < 0.001:
        raise UsageError(f"invalid duration {clip(text)!r}: must be at least 1ms")
    if seconds > MAX_SECONDS:
        raise UsageError(f"invalid duration {clip(text)!r}: must be at most 100 years")
    return seconds


def format_duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``4.2s``; ``-`` for None."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
