"""`StageDef`: one node of a plan: what it consumes, produces, needs and runs."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from blut.jobs.artifact import Kind
from blut.jobs.errors import JobsError

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")


def payload_argv(program: str) -> tuple[str, ...]:
    """The argv that runs payload stage ``program`` with this interpreter."""
    return (sys.executable, "-m", "blut.payload", program)


@dataclass(frozen=True)
class Resources:
    """What a stage occupies while it runs (slots of each machine capacity).

    ``cpu_fallback`` lets a GPU stage run on the CPU when the machine has no GPU.
    """

    cpu: int = 1
    gpu: int = 0
    network: int = 0
    disk: int = 0
    cpu_fallback: bool = False

    def __post_init__(self) -> None:
        if min(self.cpu, self.gpu, self.network, self.disk) < 0:
            raise JobsError(f"resource amounts must be >= 0: {self}")


@dataclass(frozen=True)
class StageDef:
    """A stage as placed in a plan: ``name`` is unique in the plan and names its unit.

    ``args`` are this stage's frozen arguments (part of its cache key);
    ``args_schema`` is the JSON schema they satisfy. ``schema_version`` is bumped
    whenever the program's output for the same args and inputs changes, which
    invalidates cached outputs.
    """

    name: str
    output: Kind
    argv: tuple[str, ...]
    inputs: tuple[Kind, ...] = ()
    schema_version: int = 1
    resources: Resources = field(default_factory=Resources)
    memory_max: int | None = None
    timeout: float | None = None
    args: Mapping[str, Any] = field(default_factory=dict)
    args_schema: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise JobsError(
                f"invalid stage name {self.name!r}: use lowercase letters, digits, '-' or '_' "
                "(at most 48 characters)"
            )
        if not self.argv or not self.argv[0]:
            raise JobsError(f"stage {self.name}: argv must name a program")

    @property
    def program(self) -> tuple[str, ...]:
        """The argv without its interpreter: what the stage runs, independent of the venv path."""
        return self.argv[1:]
