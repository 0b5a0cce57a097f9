"""The one NVML probe: NVIDIA GPUs as the driver reports them (pynvml).

Used by GPU allocation (free memory), `blut doctor` (driver, names, sizes) and
the cockpit's System screen (utilisation, memory, temperature). It never raises
for a missing library, driver or device: it reports no GPUs and says why.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class GpuSample:
    """One GPU at one moment (a field NVML cannot read on this device is None)."""

    index: int
    name: str
    memory_total: int | None = None
    memory_used: int | None = None
    memory_free: int | None = None
    utilisation: float | None = None
    temperature: float | None = None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Nvml:
    """pynvml, initialised once until :meth:`close`; ``note`` says why there are no GPUs."""

    def __init__(self) -> None:
        self.note: str | None = None
        self.error: str | None = None
        """The NVML error text when it could not start (for machine-readable reports)."""
        self._nv: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nv = pynvml
            if pynvml.nvmlDeviceGetCount() == 0:
                self.note = "no NVIDIA GPU"
        except Exception as exc:  # ImportError, NVMLError_LibraryNotFound, DriverNotLoaded…
            self.error = str(exc) or exc.__class__.__name__
            self.note = f"no NVIDIA GPU ({exc.__class__.__name__.removeprefix('NVMLError_')})"

    @property
    def available(self) -> bool:
        """True when NVML started (a driver is loaded)."""
        return self._nv is not None

    def driver_version(self) -> str | None:
        """The NVIDIA driver's version, when there is a driver."""
        if self._nv is None:
            return None
        return self._try(lambda: _text(self._nv.nvmlSystemGetDriverVersion()))

    def sample(self) -> list[GpuSample]:
        """Every GPU now (empty when there are none)."""
        if self._nv is None:
            return []
        try:
            return [self._device(i) for i in range(self._nv.nvmlDeviceGetCount())]
        except Exception as exc:  # the device list itself failed
            self.note = f"NVML error: {exc}"
            return []

    def _device(self, index: int) -> GpuSample:
        nv = self._nv
        h = nv.nvmlDeviceGetHandleByIndex(index)
        mem = self._try(lambda: nv.nvmlDeviceGetMemoryInfo(h))
        util = self._try(lambda: nv.nvmlDeviceGetUtilizationRates(h))
        temp = self._try(lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))
        return GpuSample(
            index=index,
            name=self._try(lambda: _text(nv.nvmlDeviceGetName(h))) or "?",
            memory_total=int(mem.total) if mem is not None else None,
            memory_used=int(mem.used) if mem is not None else None,
            memory_free=int(mem.free) if mem is not None else None,
            utilisation=float(util.gpu) if util is not None else None,
            temperature=float(temp) if temp is not None else None,
        )

    @staticmethod
    def _try(read: Callable[[], T]) -> T | None:
        try:
            return read()
        except Exception:  # NVMLError_NotSupported and friends: that field is unknown
            return None

    def close(self) -> None:
        """Shut NVML down (idempotent)."""
        if self._nv is not None:
            with contextlib.suppress(Exception):
                self._nv.nvmlShutdown()
            self._nv = None

    def __enter__(self) -> Nvml:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
