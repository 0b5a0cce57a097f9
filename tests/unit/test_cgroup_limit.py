"""The loud warning when a unit's MemoryMax did not land in its cgroup."""

from __future__ import annotations

from blut.containment.cgroup import unapplied_limit

MIB = 1 << 20


def test_landed_or_not_asked_or_gone_is_quiet() -> None:
    assert unapplied_limit("blut-x", 100 * MIB, 100 * MIB) is None
    assert unapplied_limit("blut-x", 100 * MIB, 100 * MIB - 4096) is None  # page rounding
    assert unapplied_limit("blut-x", None, None) is None
    assert unapplied_limit("blut-x", 100 * MIB, "gone") is None


def test_missing_or_different_ceiling_warns_with_the_unit() -> None:
    missing = unapplied_limit("blut-x-main", 100 * MIB, None)
    assert missing is not None and "NOT applied to blut-x-main" in missing
    assert "no limit" in missing and "blut doctor" in missing
    other = unapplied_limit("blut-x-main", 100 * MIB, 1 << 40)
    assert other is not None and str(1 << 40) in other
