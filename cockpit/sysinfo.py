"""Samples of this machine: CPU, memory, disk under BLUT_HOME (and what its jobs and cache
take), NVIDIA GPUs (pynvml), and the CPU use of the running stages' units (their cgroups'
CPU time counters).

Called from a worker thread; never raises for a missing GPU, driver or unit.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from blut.containment.cgroup import cpu_seconds
from blut.containment.errors import ContainmentError
from blut.containment.nvml import GpuSample, Nvml
from blut.containment.ray import ClusterNode
from blut.containment.systemd import SystemdLauncher
from blut.status.usage import HomeUsage


@dataclass(frozen=True)
class ClusterSample:
    """The nodes of the Ray cluster jobs run their stages on (``note``: why none)."""

    address: str
    nodes: list[ClusterNode] = field(default_factory=list)
    note: str | None = None


def cluster_sample(address: str) -> ClusterSample:
    """Ask the cluster at ``address`` for its nodes (never raises)."""
    from blut.containment.ray import cluster_nodes

    try:
        return ClusterSample(address, cluster_nodes(address, timeout=5))
    except ContainmentError as exc:
        return ClusterSample(address, note=str(exc).splitlines()[0][:200])


@dataclass(frozen=True)
class SystemSample:
    """The machine at one moment."""

    ts: float
    cpu_percent: float
    cpu_count: int
    load: tuple[float, float, float]
    memory_used: int
    memory_total: int
    swap_used: int
    disk_path: str
    disk_used: int
    disk_total: int
    gpus: list[GpuSample] = field(default_factory=list)
    gpu_note: str | None = None
    unit_cpu: dict[str, float] = field(default_factory=dict)
    """CPU % (100 = one core) of each unit asked about, since the previous sample."""
    space: HomeUsage | None = None
    """Bytes of BLUT_HOME's job folders against its cache (measured now and then)."""
    cluster: ClusterSample | None = None
    """The Ray cluster's nodes (asked now and then, while the System screen shows)."""


class UnitCpu:
    """CPU % of systemd units: each unit's cgroup is looked up once (a D-Bus call to the
    user manager blut's jobs run under), then each sample reads one counter file per unit."""

    def __init__(self) -> None:
        self._systemd: SystemdLauncher | None = None
        self._groups: dict[str, str] = {}
        self._last: dict[str, tuple[float, float]] = {}

    def _lookup(self, unit: str) -> str | None:
        if self._systemd is None:
            from blut.containment.select import launcher_for

            launcher = launcher_for("systemd")  # finds the manager once, as submitting does
            assert isinstance(launcher, SystemdLauncher)
            self._systemd = launcher
        return self._systemd.control_group(unit)

    def close(self) -> None:
        """Close the D-Bus connection, if one was opened."""
        if self._systemd is not None:
            self._systemd.close()

    def sample(self, units: Iterable[str], now: float) -> dict[str, float]:
        """CPU % of ``units`` since the previous call (monotonic ``now``); a unit seen for
        the first time, or whose cgroup cannot be read, is left out."""
        out: dict[str, float] = {}
        last: dict[str, tuple[float, float]] = {}
        for unit in units:
            group = self._groups.get(unit)
            if group is None:
                try:
                    group = self._lookup(unit)
                except ContainmentError:  # no manager answers: no figure for this unit
                    group = None
                if group is None:
                    continue
                self._groups[unit] = group
            used = cpu_seconds(group)
            if used is None:
                continue
            last[unit] = (now, used)
            before = self._last.get(unit)
            if before is not None and now > before[0]:
                out[unit] = max(0.0, (used - before[1]) / (now - before[0]) * 100)
        self._groups = {u: g for u, g in self._groups.items() if u in last}
        self._last = last
        return out


def sample(
    home: Path,
    nvml: Nvml,
    ts: float,
    unit_cpu: dict[str, float] | None = None,
    space: HomeUsage | None = None,
    cluster: ClusterSample | None = None,
) -> SystemSample:
    """CPU (since the previous call), memory, disk under ``home``, GPUs; ``unit_cpu``
    from :class:`UnitCpu`; ``space`` and ``cluster`` as given."""
    vm = psutil.virtual_memory()
    try:
        disk = shutil.disk_usage(home)
        disk_used, disk_total = disk.used, disk.total
    except OSError:
        disk_used = disk_total = 0
    load = psutil.getloadavg()
    return SystemSample(
        ts=ts,
        cpu_percent=psutil.cpu_percent(interval=None),
        cpu_count=psutil.cpu_count() or 1,
        load=(load[0], load[1], load[2]),
        memory_used=vm.total - vm.available,
        memory_total=vm.total,
        swap_used=psutil.swap_memory().used,
        disk_path=str(home),
        disk_used=disk_used,
        disk_total=disk_total,
        gpus=nvml.sample(),
        gpu_note=nvml.note,
        unit_cpu=unit_cpu or {},
        space=space,
        cluster=cluster,
    )
