"""The `Launcher` protocol every way of running a stage implements."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from blut.containment.spec import Handle, Outcome, UnitSpec, UnitState


class Launcher(Protocol):
    """Start processes inside limits and read back how they ended.

    ``find`` re-attaches by unit name after the caller restarted; a unit's result
    is also written to ``spec.result_path`` so a later process can read it even
    when the launcher that started it is gone.
    """

    kind: str

    def launch(self, spec: UnitSpec) -> Handle:
        """Start ``spec``; returns once the process is started (never waits for it)."""
        ...

    def state(self, handle: Handle) -> UnitState:
        """Running, finished (with its outcome) or unknown."""
        ...

    def wait(self, handle: Handle, timeout: float | None = None) -> Outcome | None:
        """Block until the unit finished (None when ``timeout`` passed first)."""
        ...

    def stop(self, handle: Handle) -> None:
        """Stop the unit and its whole process tree (idempotent)."""
        ...

    def find(self, name: str, result_path: Path) -> Handle | None:
        """A handle for a unit started earlier, if it still runs or left a result."""
        ...

    def memory_limit(self, handle: Handle) -> int | Literal["gone"] | None:
        """The memory ceiling actually enforced (None: none; "gone": already finished)."""
        ...

    def close(self) -> None:
        """Release connections held by the launcher."""
        ...
