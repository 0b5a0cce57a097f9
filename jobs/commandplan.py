"""A `blut run` command as a plan of one stage, and the plan of any job."""

from __future__ import annotations

from collections.abc import Sequence

from blut.jobs.artifact import Kind
from blut.jobs.plan import Plan
from blut.jobs.stagedef import StageDef
from blut.jobs.store import MAIN_STAGE, Job


def command_stage(
    argv: Sequence[str], *, memory_max: int | None = None, timeout: float | None = None
) -> StageDef:
    """The one stage of a `blut run` job: ``argv`` with its ceiling and time limit, never
    cached (a command runs for its effects)."""
    return StageDef(
        name=MAIN_STAGE,
        output=Kind.NONE,
        argv=tuple(argv),
        memory_max=memory_max,
        timeout=timeout,
        description="the command of a `blut run` job",
    )


def command_plan(
    name: str,
    argv: Sequence[str],
    *,
    memory_max: int | None = None,
    timeout: float | None = None,
) -> Plan:
    """A plan running ``argv`` as its only stage."""
    stage = command_stage(argv, memory_max=memory_max, timeout=timeout)
    return Plan(name, {stage.name: stage}, {stage.name: ()})


def plan_of(job: Job) -> Plan:
    """The job's plan.json; for a command job stored before it had one, its command."""
    if job.plan_path.is_file() or job.is_recipe:
        return Plan.load(job.plan_path)
    spec = job.spec
    return command_plan(spec.name, spec.argv, memory_max=spec.memory_max, timeout=spec.timeout)
