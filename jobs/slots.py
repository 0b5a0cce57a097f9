"""What a job may run at once: per-job capacities and machine-wide GPU slots.

CPU, network and disk are counted per job (`Slots`). GPUs are shared by every
job on the machine: a GPU is taken by holding ``$BLUT_HOME/locks/gpu-<i>.lock``
(`GpuPool`), so two jobs never get the same device and a crashed job frees its
GPUs at once. Discovery uses NVML (pynvml) when a driver is present.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from blut.jobs.stagedef import Resources
from blut.status.flock import Flock


@dataclass(frozen=True)
class Gpu:
    """One device as NVML reports it."""

    index: int
    free_memory: int | None = None


def discover_gpus() -> list[Gpu]:
    """The machine's GPUs, most free memory first; none when NVML is missing or fails."""
    from blut.containment.nvml import Nvml

    with Nvml() as nvml:
        gpus = [Gpu(s.index, s.memory_free) for s in nvml.sample()]
    return sorted(gpus, key=lambda g: -(g.free_memory or 0))


class GpuPool:
    """Machine-wide GPU slots, one lock file per device; discovered on first use."""

    def __init__(self, locks: Path, discover: Callable[[], list[Gpu]] = discover_gpus) -> None:
        self.locks = locks
        self._discover = discover
        self._held: dict[int, Flock] = {}

    @cached_property
    def gpus(self) -> list[Gpu]:
        """The machine's GPUs, most free memory first."""
        return self._discover()

    @property
    def count(self) -> int:
        """How many GPUs the machine has."""
        return len(self.gpus)

    def _lock(self, index: int) -> Flock:
        return Flock(self.locks / f"gpu-{index}.lock")

    def allocate(self, n: int) -> list[int] | None:
        """Take ``n`` free GPUs (most free memory first), or None while too few are free."""
        taken: list[int] = []
        for gpu in self.gpus:
            if len(taken) == n:
                break
            lock = self._lock(gpu.index)
            if gpu.index not in self._held and lock.acquire(blocking=False):
                self._held[gpu.index] = lock
                taken.append(gpu.index)
        if len(taken) < n:
            self.release(taken)
            return None
        return taken

    def reacquire(self, indices: list[int]) -> bool:
        """Take exactly ``indices`` again (a resumed stage keeps its devices)."""
        for index in indices:
            lock = self._lock(index)
            if not lock.acquire(blocking=False):
                self.release([i for i in indices if i in self._held])
                return False
            self._held[index] = lock
        return True

    def release(self, indices: list[int]) -> None:
        """Give GPUs back."""
        for index in indices:
            lock = self._held.pop(index, None)
            if lock is not None:
                lock.release()


@dataclass
class Slots:
    """Per-job capacities of CPU slots, network and disk, and what is in use.

    ``stages`` caps how many stages run at once (None: no cap; the policy's
    ``limits.stages``).
    """

    cpu: int = field(default_factory=lambda: os.cpu_count() or 1)
    network: int = 2
    disk: int = 2
    stages: int | None = None
    _used: dict[str, int] = field(default_factory=lambda: {"cpu": 0, "network": 0, "disk": 0})
    _running: int = 0

    def _wants(self, res: Resources) -> dict[str, int]:
        return {"cpu": res.cpu, "network": res.network, "disk": res.disk}

    def never_fits(self, res: Resources) -> str | None:
        """Why ``res`` can never be granted, or None."""
        for name, amount in self._wants(res).items():
            limit: int = getattr(self, name)
            if amount > limit:
                return f"needs {amount} {name} slots but the job has only {limit}"
        return None

    def fits(self, res: Resources) -> bool:
        """True when ``res`` is free now."""
        if self.stages is not None and self._running >= self.stages:
            return False
        return all(self._used[k] + v <= getattr(self, k) for k, v in self._wants(res).items())

    def take(self, res: Resources) -> None:
        """Mark ``res`` in use."""
        self._running += 1
        for key, amount in self._wants(res).items():
            self._used[key] += amount

    def give(self, res: Resources) -> None:
        """Mark ``res`` free again."""
        self._running -= 1
        for key, amount in self._wants(res).items():
            self._used[key] -= amount
