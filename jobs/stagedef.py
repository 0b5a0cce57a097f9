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


TORCHRUN = "torch.distributed.run"
"""torchrun's module: the launcher of multi-process stages (run as ``python -m``, never imported)."""


def payload_argv(program: str) -> tuple[str, ...]:
    """The argv that runs payload stage ``program`` with this interpreter."""
    return (sys.executable, "-m", "blut.payload", program)


def process_count(stage: StageDef, gpus: int) -> int:
    """How many processes ``stage`` runs as with ``gpus`` GPUs allocated.

    One per allocated GPU when it has any (the GPU count decides), else the
    stage's declared ``processes`` (CPU data parallelism over gloo).
    """
    return gpus if gpus > 0 else stage.processes


def launch_argv(stage: StageDef, processes: int) -> tuple[str, ...]:
    """``stage.argv``, wrapped in torchrun when it runs as more than one process.

    Only ``python -m MODULE ...`` argvs can be wrapped (torchrun runs a module
    with ``-m``); the interpreter stays the stage's own.
    """
    if processes <= 1:
        return stage.argv
    if len(stage.argv) < 3 or stage.argv[1] != "-m":
        raise JobsError(
            f"stage {stage.name}: only a `python -m MODULE` stage can run as {processes} processes"
        )
    python, _, *rest = stage.argv
    return (
        python,
        "-m",
        TORCHRUN,
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        *rest,
    )


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
    invalidates cached outputs. ``processes`` > 1 runs the stage data-parallel
    under torchrun on the CPU (one process per GPU instead when GPUs are
    allocated; see `process_count`); like the device, it is not part of the
    cache key, so the program must give the same result up to rounding for any
    process count.
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
    processes: int = 1

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise JobsError(
                f"invalid stage name {self.name!r}: use lowercase letters, digits, '-' or '_' "
                "(at most 48 characters)"
            )
        if not self.argv or not self.argv[0]:
            raise JobsError(f"stage {self.name}: argv must name a program")
        if isinstance(self.processes, bool) or not isinstance(self.processes, int):
            raise JobsError(f"stage {self.name}: processes must be an integer")
        if self.processes < 1:
            raise JobsError(f"stage {self.name}: processes must be >= 1, got {self.processes}")
        if self.processes > 1:
            launch_argv(self, self.processes)  # only `python -m MODULE` stages can be wrapped

    @property
    def cacheable(self) -> bool:
        """Whether its output is committed to the cache (and looked up there first)."""
        return self.output is not Kind.NONE

    @property
    def is_payload(self) -> bool:
        """Whether it runs one of blut's own stage programs (`payload_argv`)."""
        return tuple(self.argv[1:3]) == ("-m", "blut.payload")

    @property
    def program(self) -> tuple[str, ...]:
        """The argv without its interpreter: what the stage runs, independent of the venv path."""
        return self.argv[1:]
