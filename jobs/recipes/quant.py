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
``train.processes=N`` runs train as N data-parallel processes under torchrun
(CPU, gloo; on a GPU box the allocated GPU count decides); the result is the
same up to rounding, so the process count is not part of the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blut.jobs.artifact import Kind
from blut.jobs.recipes.payloadplan import GPU_OR_CPU, Node, payload_recipe
from blut.jobs.recipes.recipedef import RecipeDef

NODES = (
    Node("encode", "encode", memory_max="1G"),
    Node("label", "label", ("encode",), memory_max="1G"),
    Node("split", "split", ("label",), memory_max="512M"),
    Node(
        "train",
        "train",
        ("label", "split"),
        memory_max="2G",  # the packaged data peaks near 450 MB
        resources=GPU_OR_CPU,
        defaults={"epochs": 5, "hidden": 32},  # quick on a laptop CPU
        parallel=True,  # train.processes=N: N-process DDP (CPU/gloo; one per GPU on a GPU box)
    ),
    Node("evaluate", "evaluate", ("train", "label", "split"), memory_max="1G"),
)
"""The stages in plan order, each named after its payload program."""
STAGES = tuple(n.name for n in NODES)
MEMORY_MAX = {n.name: n.memory_max for n in NODES}


def _recipe(name: str, description: str, defaults: Mapping[str, Mapping[str, Any]]) -> RecipeDef:
    return payload_recipe(
        name,
        description,
        category="quant",
        backend="torch",
        nodes=NODES,
        output=Kind.EVALUATION,
        defaults=defaults,
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
