"""Recipes whose stages are payload programs: schemas, ceilings and plans from declared nodes.

A stage's args section in a recipe is the payload program's own JSON schema
(``payload/schemas/<program>.json``, read as package data — the engine never
imports payload code) with recipe defaults on top, plus ``memory_max``: the
unit's ceiling, which is neither passed to the program nor part of the cache
key. A node that is ``parallel`` also offers ``processes``: how many
data-parallel processes the stage runs as on the CPU (torchrun; one per GPU
when GPUs are allocated), likewise neither passed to the program nor part of
the cache key. Kinds and the schema version come from the schema's ``x-blut``
block, so the payload stays the one place that says what a stage consumes and
produces.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from blut.jobs.artifact import Kind
from blut.jobs.errors import UsageError
from blut.jobs.plan import Plan, PlanBuilder
from blut.jobs.quantities import parse_size
from blut.jobs.recipes.recipedef import RecipeDef
from blut.jobs.stagedef import Resources, StageDef, payload_argv

MEMORY_KEY = "memory_max"
PROCESSES_KEY = "processes"
SIZE_PATTERN = r"^\s*[0-9]+(\.[0-9]+)?\s*[kKmMgGtTpP]?([iI]?[bB]?)\s*$"
GPU_OR_CPU = Resources(cpu=1, gpu=1, cpu_fallback=True)
"""A GPU when the machine has one (a machine-wide slot), else the CPU."""


@dataclass(frozen=True)
class Node:
    """One stage of a recipe: its plan name, payload program, upstream stages and limits."""

    name: str
    program: str
    after: tuple[str, ...] = ()
    memory_max: str = "1G"
    resources: Resources = field(default_factory=Resources)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    hidden: tuple[str, ...] = ()
    """Payload options the recipe does not offer."""
    parallel: bool = False
    """The program runs correctly under torchrun: the recipe offers ``processes``."""


@cache
def _schema_text(program: str) -> str:
    return (resources.files("blut.payload") / "schemas" / f"{program}.json").read_text("utf-8")


def payload_schema(program: str) -> dict[str, Any]:
    """The payload's JSON schema of ``program`` (package data; a fresh copy each call)."""
    data: dict[str, Any] = json.loads(_schema_text(program))
    return data


def section(node: Node, defaults: Mapping[str, Any] = {}) -> dict[str, Any]:
    """``node``'s args section: the payload schema without its meta keys, with our defaults."""
    raw = payload_schema(node.program)
    result = {k: v for k, v in raw.items() if k not in ("$schema", "title", "x-blut")}
    props: dict[str, Any] = copy.deepcopy(result["properties"])
    for key in node.hidden:
        props.pop(key, None)
    if node.parallel:
        props[PROCESSES_KEY] = {
            "type": "integer",
            "minimum": 1,
            "default": 1,
            "description": "data-parallel processes (torchrun on the CPU, gloo; with GPUs "
            "allocated, one per GPU instead); not part of the cache key",
        }
    for key, value in {**node.defaults, **defaults}.items():
        props[key]["default"] = value
    props[MEMORY_KEY] = {
        "type": ["string", "integer"],
        "minimum": 1,
        "pattern": SIZE_PATTERN,
        "default": node.memory_max,
        "description": "memory ceiling of the stage's unit (bytes, or e.g. 512M, 2G)",
    }
    result["properties"] = props
    return result


def stage_def(node: Node, args: Mapping[str, Any], schema: Mapping[str, Any]) -> StageDef:
    """``node`` with its section of ``args``, schema defaults filled in.

    Filling defaults here keeps the cache key the same whether a caller passes
    resolved args or leaves keys out.
    """
    meta = payload_schema(node.program)["x-blut"]
    section_schema: Mapping[str, Any] = schema["properties"][node.name]
    props: Mapping[str, Any] = section_schema["properties"]
    values = {k: p["default"] for k, p in props.items() if "default" in p}
    values.update(args.get(node.name, {}))
    memory = values.pop(MEMORY_KEY)
    processes = int(values.pop(PROCESSES_KEY, 1))
    return StageDef(
        name=node.name,
        output=Kind(meta["output"]),
        inputs=tuple(Kind(i["kind"]) for i in meta["inputs"] if not i.get("optional")),
        argv=payload_argv(node.program),
        schema_version=int(meta["schema_version"]),
        resources=node.resources,
        memory_max=_ceiling(node.name, memory),
        args=values,
        args_schema=section_schema,
        description=str(section_schema.get("description", "")),
        processes=processes,
    )


def _ceiling(stage: str, memory: Any) -> int:
    """A stage's ``memory_max`` in bytes; out of range (e.g. past what systemd takes) → exit 2."""
    try:
        return parse_size(str(memory))
    except UsageError as exc:
        raise UsageError(f"{stage}.{MEMORY_KEY}: {exc}") from exc


def _compiler(
    recipe: str, nodes: Sequence[Node], schema: Mapping[str, Any]
) -> Callable[[Mapping[str, Any]], Plan]:
    def compile_payload_plan(args: Mapping[str, Any]) -> Plan:
        stages = {n.name: stage_def(n, args, schema) for n in nodes}
        builder = PlanBuilder(recipe).start(*(stages[n.name] for n in nodes if not n.after))
        for node in nodes:
            if node.after:
                builder.after(*node.after).then(stages[node.name])
        return builder.finish()

    return compile_payload_plan


def payload_recipe(
    name: str,
    description: str,
    *,
    category: str,
    backend: str,
    nodes: Sequence[Node],
    output: Kind,
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
) -> RecipeDef:
    """A recipe of ``nodes`` (roots first); ``defaults`` per stage override the payload's."""
    defaults = defaults or {}
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {n.name: section(n, defaults.get(n.name, {})) for n in nodes},
    }
    return RecipeDef(
        name=name,
        description=description,
        category=category,
        backend=backend,
        inputs=(),
        output=output,
        args_schema=schema,
        compile=_compiler(name, nodes, schema),
    )
