"""The ``smoke`` recipe: four fast stages (fan-out, fan-in), no torch.

``make`` writes seeded numbers; ``square`` and ``cube`` (the same program,
different exponents) each transform them; ``total`` sums both branches into a
report. Each stage can sleep or fail on request, for tests and demos.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blut.jobs.artifact import Kind
from blut.jobs.plan import Plan, PlanBuilder
from blut.jobs.recipes.recipedef import RecipeDef
from blut.jobs.stagedef import StageDef, payload_argv

_MEMORY = 256 << 20
_CONTROL: dict[str, Any] = {
    "sleep": {
        "type": "number",
        "minimum": 0,
        "default": 0,
        "description": "seconds to sleep before finishing",
    },
    "fail": {"type": "boolean", "default": False, "description": "exit with code 3"},
}


def _section(description: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "properties": {**extra, **_CONTROL},
    }


SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "make": _section(
            "generate the numbers",
            count={"type": "integer", "minimum": 1, "maximum": 100000, "default": 8},
            seed={"type": "integer", "default": 0, "description": "random seed"},
        ),
        "square": _section("raise each number to the power 2"),
        "cube": _section("raise each number to the power 3"),
        "total": _section("sum both branches into a report"),
    },
}


def compile_smoke(args: Mapping[str, Any]) -> Plan:
    """The smoke plan for validated ``args``."""

    def stage(name: str, program: str, output: Kind, *inputs: Kind, **more: Any) -> StageDef:
        return StageDef(
            name=name,
            output=output,
            inputs=inputs,
            argv=payload_argv(program),
            memory_max=_MEMORY,
            args={**args[name], **more},
            args_schema=SCHEMA["properties"][name],
            description=SCHEMA["properties"][name]["description"],
        )

    return (
        PlanBuilder("smoke")
        .start(stage("make", "smoke-make", Kind.NUMBERS))
        .fan_out(
            stage("square", "smoke-power", Kind.NUMBERS, Kind.NUMBERS, exponent=2),
            stage("cube", "smoke-power", Kind.NUMBERS, Kind.NUMBERS, exponent=3),
        )
        .then(stage("total", "smoke-total", Kind.REPORT, Kind.NUMBERS, Kind.NUMBERS))
        .finish()
    )


RECIPE = RecipeDef(
    name="smoke",
    description=__doc__ or "",
    category="test",
    backend="python",
    inputs=(),
    output=Kind.REPORT,
    args_schema=SCHEMA,
    compile=compile_smoke,
)
