"""Samples of this machine: CPU, memory, disk under BLUT_HOME (and what its jobs and cache
take), NVIDIA GPUs (pynvml).

Called from a worker thread; never raises for a missing GPU or driver.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from blut.containment.nvml import GpuSample, Nvml
from blut.status.usage import HomeUsage


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
    space: HomeUsage | None = None
    """Bytes of BLUT_HOME's job folders against its cache (measured now and then)."""


def sample(home: Path, nvml: Nvml, ts: float, space: HomeUsage | None = None) -> SystemSample:
    """CPU (since the previous call), memory, disk under ``home``, GPUs; ``space`` as given."""
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
        space=space,
    )
