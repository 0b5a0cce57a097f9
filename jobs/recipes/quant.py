"""The quant recipes: ``quant-train`` and ``quant-baseline`` (encode → label → split → train → evaluate).

Every stage runs ``python -m blut.payload <stage>``. Its args section in the
recipe is the payload's own JSON schema (``payload/schemas/<stage>.json``, read
as package data, never imported as code) with recipe defaults on top, plus
``memory_max``: the stage's memory ceiling, which is not passed to the program
and not part of its cache key. The plan's edges and kinds come from each
schema's ``x-blut`` block, so the payload stays the one place that says what a
stage consumes and produces.

Each stage's cache key depends only on its own section and its inputs, so a
``--sweep train.lr=...`` reuses the cached encode, label and split outputs.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from typing import Any

from blut.jobs.artifact import Kind
from blut.jobs.plan import Plan, PlanBuilder
from blut.jobs.quantities import parse_size
from blut.jobs.recipes.recipedef import RecipeDef
from blut.jobs.stagedef import Resources, StageDef, payload_argv

STAGES = ("encode", "label", "split", "train", "evaluate")
"""The stages, in plan order; each is also its payload program's name."""

MEMORY_KEY = "memory_max"
MEMORY_MAX: dict[str, str] = {
    "encode": "1G",
    "label": "1G",
    "split": "512M",
    "train": "2G",
    "evaluate": "1G",
}
"""Default memory ceiling per stage (the packaged data peaks near 450 MB in train)."""

_DEFAULTS: dict[str, dict[str, Any]] = {
    "train": {"epochs": 5, "hidden": 32},
}
"""Recipe defaults that differ from the payload's own: quick on a laptop CPU."""

_RESOURCES = {"train": Resources(cpu=1, gpu=1, cpu_fallback=True)}
"""train takes a GPU when the machine has one (machine-wide slot), else runs on the CPU."""

_SIZE_PATTERN = r"^\s*[0-9]+(\.[0-9]+)?\s*[kKmMgGtTpP]?([iI]?[bB]?)\s*$"
_DEPS = {"train": ("label", "split"), "evaluate": ("train", "label", "split")}
"""Fan-in edges; every other stage follows the one before it."""


@cache
def _payload_schema_text(stage: str) -> str:
    return (resources.files("blut.payload") / "schemas" / f"{stage}.json").read_text("utf-8")


def payload_schema(stage: str) -> dict[str, Any]:
    """The payload's JSON schema of ``stage`` (package data; a fresh copy each call)."""
    data: dict[str, Any] = json.loads(_payload_schema_text(stage))
    return data


def _section(stage: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``stage``'s args section: the payload schema without its meta keys, with our defaults."""
    raw = payload_schema(stage)
    section = {k: v for k, v in raw.items() if k not in ("$schema", "title", "x-blut")}
    props: dict[str, Any] = copy.deepcopy(section["properties"])
    for key, value in defaults.items():
        props[key]["default"] = value
    props[MEMORY_KEY] = {
        "type": ["string", "integer"],
        "minimum": 1,
        "pattern": _SIZE_PATTERN,
        "default": MEMORY_MAX[stage],
        "description": "memory ceiling of the stage's unit (bytes, or e.g. 512M, 2G)",
    }
    section["properties"] = props
    return section


def _schema(defaults: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            s: _section(s, {**_DEFAULTS.get(s, {}), **defaults.get(s, {})}) for s in STAGES
        },
    }


def _stage(name: str, args: Mapping[str, Any], schema: Mapping[str, Any]) -> StageDef:
    """Stage ``name`` with its section of ``args``, schema defaults filled in.

    Filling defaults here keeps the cache key the same whether a caller passes
    resolved args or leaves keys out.
    """
    meta = payload_schema(name)["x-blut"]
    props: Mapping[str, Any] = schema["properties"][name]["properties"]
    section = {k: p["default"] for k, p in props.items() if "default" in p}
    section.update(args.get(name, {}))
    # The ceiling is the unit's business: neither a program option nor part of the cache key.
    memory = section.pop(MEMORY_KEY)
    return StageDef(
        name=name,
        output=Kind(meta["output"]),
        inputs=tuple(Kind(i["kind"]) for i in meta["inputs"] if not i.get("optional")),
        argv=payload_argv(name),
        schema_version=int(meta["schema_version"]),
        resources=_RESOURCES.get(name, Resources(cpu=1)),
        memory_max=memory if isinstance(memory, int) else parse_size(str(memory)),
        args=section,
        args_schema=schema["properties"][name],
        description=str(schema["properties"][name].get("description", "")),
    )


def _compiler(recipe: str, schema: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], Plan]:
    def compile_quant(args: Mapping[str, Any]) -> Plan:
        stages = {name: _stage(name, args, schema) for name in STAGES}
        builder = PlanBuilder(recipe).start(stages["encode"])
        previous = "encode"
        for name in STAGES[1:]:
            builder.after(*_DEPS.get(name, (previous,))).then(stages[name])
            previous = name
        return builder.finish()

    return compile_quant


def _recipe(name: str, description: str, defaults: Mapping[str, Mapping[str, Any]]) -> RecipeDef:
    schema = _schema(defaults)
    return RecipeDef(
        name=name,
        description=description,
        category="quant",
        backend="torch",
        inputs=(),
        output=Kind.EVALUATION,
        args_schema=schema,
        compile=_compiler(name, schema),
    )


TRAIN = _recipe(
    "quant-train",
    """Train a windowed model on the packaged daily stocks (encode → label → split → train → evaluate).

Features without look-ahead, 3-class forward-return labels, a chronological
split with an embargo, a small MLP (or cnn/gru/linear via train.model), then
test metrics and a long/short backtest. Sweep train.* and the data stages stay cached.
""",
    {},
)

BASELINE = _recipe(
    "quant-baseline",
    """The linear baseline of quant-train: the same pipeline with train.model=linear.

A drop-in replacement for quant-train (same inputs and output), to check that a
bigger model beats a linear one on the same cached features, labels and splits.
""",
    {"train": {"model": "linear"}},
)

RECIPES = (TRAIN, BASELINE)
