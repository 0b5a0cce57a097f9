"""Read a unit's memory cgroup (v2 unified, or v1 on hybrid hosts)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

CGROUP_ROOT = Path("/sys/fs/cgroup")
UNLIMITED_V1 = 1 << 62  # v1 reports "no limit" as a huge page-aligned number

CgroupLayout = Literal["v2", "hybrid", "v1", "none"]


def layout(root: Path = CGROUP_ROOT) -> CgroupLayout:
    """Which cgroup hierarchy this host mounts."""
    if (root / "cgroup.controllers").exists():
        return "v2"
    if (root / "unified").is_dir():
        return "hybrid"
    if (root / "memory").is_dir():
        return "v1"
    return "none"


def memory_controller_dir(control_group: str, root: Path = CGROUP_ROOT) -> Path | None:
    """The directory holding ``control_group``'s memory files, v2 first."""
    rel = control_group.lstrip("/")
    v2 = root / rel
    if (v2 / "memory.max").exists():
        return v2
    v1 = root / "memory" / rel
    if (v1 / "memory.limit_in_bytes").exists():
        return v1
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def memory_limit(control_group: str, root: Path = CGROUP_ROOT) -> int | None:
    """The enforced memory ceiling in bytes, or None when there is none (or no cgroup)."""
    d = memory_controller_dir(control_group, root)
    if d is None:
        return None
    value = (
        _read_int(d / "memory.max")
        if d.joinpath("memory.max").exists()
        else _read_int(d / "memory.limit_in_bytes")
    )
    if value is None or value >= UNLIMITED_V1:
        return None
    return value


def memory_current(control_group: str, root: Path = CGROUP_ROOT) -> int | None:
    """Bytes the cgroup uses now."""
    d = memory_controller_dir(control_group, root)
    if d is None:
        return None
    if (d / "memory.current").exists():
        return _read_int(d / "memory.current")
    return _read_int(d / "memory.usage_in_bytes")


def cpu_seconds(control_group: str, root: Path = CGROUP_ROOT) -> float | None:
    """CPU time the cgroup has used so far, in seconds (v2 ``cpu.stat``, also under a hybrid
    host's ``unified``; else v1 ``cpuacct.usage``), or None when it cannot be read."""
    rel = control_group.lstrip("/")
    for stat in (root / rel / "cpu.stat", root / "unified" / rel / "cpu.stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec" and value.strip().isdigit():
                return int(value) / 1e6
    nanos = _read_int(root / "cpuacct" / rel / "cpuacct.usage")
    return None if nanos is None else nanos / 1e9


def limit_matches(requested: int, enforced: int | None) -> bool:
    """True when the kernel enforces ``requested`` (rounded down to a page, as it does)."""
    return enforced is not None and abs(enforced - requested) < 4096 * 16


def unapplied_limit(
    unit: str, requested: int | None, enforced: int | Literal["gone"] | None
) -> str | None:
    """A loud warning when a unit's ``requested`` MemoryMax is not what the kernel enforces.

    ``enforced`` is what the launcher read back (``"gone"``: the unit already
    ended, nothing to check). None when the ceiling landed or none was asked for.
    """
    if requested is None or enforced == "gone" or limit_matches(requested, enforced):
        return None
    return (
        f"MemoryMax={requested} was NOT applied to {unit} (the kernel enforces "
        f"{enforced or 'no limit'}): the stage runs uncontained. Run `blut doctor`."
    )
