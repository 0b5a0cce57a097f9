"""What to launch (`UnitSpec`), how to refer to it (`Handle`) and how it ended (`Outcome`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeAlias

OutcomeKind: TypeAlias = Literal[
    "success", "exit", "signal", "oom", "timeout", "cancelled", "error"
]
UnitPhase: TypeAlias = Literal["running", "finished", "unknown"]


@dataclass(frozen=True)
class Placement:
    """Where a unit may run on a cluster: what it reserves there (a local launcher ignores it).

    ``resources`` are the cluster's custom resources the unit needs (a node that has them
    is where it runs: how a stage is pinned to a node). ``gpus_optional``: it runs on the
    CPU when the cluster has no GPUs (a stage's ``cpu_fallback``).
    """

    cpus: float = 1
    gpus: float = 0
    resources: Mapping[str, float] = field(default_factory=dict)
    gpus_optional: bool = False


@dataclass(frozen=True)
class UnitSpec:
    """A process to run contained. ``argv`` is a list, never a shell string.

    Its environment is ``env_file``'s variables (a file of `blut.containment.envfile`,
    which stays out of the unit's own definition) over ``env`` (blut's few variables);
    ``umask`` None keeps the launcher's default. ``tty``: run in the foreground, with this
    terminal (a pseudo-terminal's slave) as stdin, stdout, stderr and controlling terminal
    instead of the log. ``placement``: run it on a cluster node with these resources
    (`blut.containment.ray`); None runs it where the launcher is.
    """

    name: str
    argv: Sequence[str]
    log_path: Path
    result_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    env_file: Path | None = None
    umask: int | None = None
    cwd: Path | None = None
    memory_max: int | None = None
    cpu_quota: float | None = None
    timeout: float | None = None
    description: str = ""
    tty: Path | None = None
    placement: Placement | None = None

    def __post_init__(self) -> None:
        if not self.argv or not self.argv[0]:
            raise ValueError("argv must name a program")
        if not self.name.startswith("blut-"):
            raise ValueError(f"unit names start with 'blut-': {self.name!r}")


@dataclass(frozen=True)
class Handle:
    """A launched unit, found again by name (the launcher kind tells who owns it)."""

    name: str
    launcher: str
    result_path: Path
    pid: int | None = None


@dataclass(frozen=True)
class Outcome:
    """How a unit ended, with the resources it used."""

    kind: OutcomeKind
    exit_code: int | None = None
    signal: str | None = None
    peak_memory: int | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True when the process exited with status 0."""
        return self.kind == "success"


@dataclass(frozen=True)
class UnitState:
    """A point-in-time view of a unit: running, finished (with outcome) or unknown."""

    phase: UnitPhase
    outcome: Outcome | None = None
    memory_current: int | None = None
