"""Samples of this machine: CPU, memory, disk under BLUT_HOME, NVIDIA GPUs (pynvml).

Called from a worker thread; never raises for a missing GPU or driver.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil


@dataclass(frozen=True)
class GpuSample:
    """One GPU at one moment."""

    index: int
    name: str
    utilisation: float | None
    memory_used: int | None
    memory_total: int | None
    temperature: float | None


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


class Nvml:
    """pynvml, initialised once; ``note`` says why there are no GPUs."""

    def __init__(self) -> None:
        self.note: str | None = None
        self._nvml: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            if pynvml.nvmlDeviceGetCount() == 0:
                self.note = "no NVIDIA GPU"
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ImportError, ...
            self.note = f"no NVIDIA GPU ({exc.__class__.__name__.removeprefix('NVMLError_')})"

    def sample(self) -> list[GpuSample]:
        """Every GPU now (empty when there are none)."""
        nv = self._nvml
        if nv is None:
            return []
        out = []
        try:
            for i in range(nv.nvmlDeviceGetCount()):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                name = nv.nvmlDeviceGetName(h)
                util = nv.nvmlDeviceGetUtilizationRates(h)
                mem = nv.nvmlDeviceGetMemoryInfo(h)
                temp = nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)
                out.append(
                    GpuSample(
                        i,
                        name.decode() if isinstance(name, bytes) else str(name),
                        float(util.gpu),
                        int(mem.used),
                        int(mem.total),
                        float(temp),
                    )
                )
        except Exception as exc:
            self.note = f"NVML error: {exc}"
        return out

    def close(self) -> None:
        """Shut NVML down."""
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
            self._nvml = None


def sample(home: Path, nvml: Nvml, ts: float) -> SystemSample:
    """CPU (since the previous call), memory, disk under ``home``, GPUs."""
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
    )
