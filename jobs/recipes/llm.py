"""The LLM recipes: tiny-model (or a local model) → data stage(s) → a TRL method, on CPU or GPU.

``llm-sft``, ``llm-reward``, ``llm-dpo`` / ``llm-ipo`` / ``llm-kto`` (one
``dpo`` stage, its ``loss`` differs), ``llm-grpo``, ``llm-distill`` and
``llm-generate``. Every stage runs ``python -m blut.payload <program>``; its
args section is the payload's JSON schema (``payload/schemas/<program>.json``,
package data, never imported as code) with recipe defaults on top, plus
``memory_max`` (the unit's ceiling, not part of the cache key). Edges are
explicit here; kinds come from each schema's ``x-blut`` block and the plan
checks they agree. ``model.path`` swaps the tiny model for a local model dir.
The payload needs the ``llm`` extra (``pip install 'blut[llm]'``); without it
a stage fails at once with that hint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from blut.jobs.artifact import Kind
from blut.jobs.recipes.payloadplan import GPU_OR_CPU, Node, payload_recipe
from blut.jobs.recipes.recipedef import RecipeDef


def _method(name: str, program: str, after: tuple[str, ...], memory_max: str) -> Node:
    """A trainer stage: takes a GPU when there is one, else the CPU."""
    return Node(name, program, after, memory_max=memory_max, resources=GPU_OR_CPU)


def _recipe(
    name: str,
    description: str,
    nodes: Sequence[Node],
    output: Kind,
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
) -> RecipeDef:
    return payload_recipe(
        name,
        description,
        category="llm",
        backend="trl",
        nodes=nodes,
        output=output,
        defaults=defaults,
    )


# Ceilings: the tiny model peaks near 0.7 GB (torch + TRL imports).
MODEL = Node("model", "tiny-model", memory_max="2G")
TOKENIZE = Node("tokenize", "tokenize", ("model",), memory_max="2G")
PREFS = Node("prefs", "prefs")
PROMPTS = Node("prompts", "prompts")

SFT = _recipe(
    "llm-sft",
    """Supervised fine-tuning: tiny model (or model.path) → tokenize → sft (TRL).

The toy tasks (add, reverse, shout) as chat conversations by default, or
tokenize.source=FILE.jsonl with messages / prompt+completion / text rows.
Loss on the assistant's answer only; checkpoints every sft.save_every steps.
""",
    (MODEL, TOKENIZE, _method("sft", "sft", ("model", "tokenize"), "4G")),
    Kind.LM,
)

REWARD = _recipe(
    "llm-reward",
    """Reward model: tiny model (or model.path) → prefs → reward (TRL, Bradley-Terry).

Preference pairs (prompt, chosen, rejected) from the toy tasks or prefs.source=FILE;
the output is a sequence classifier with one score per text.
""",
    (MODEL, PREFS, _method("reward", "reward", ("model", "prefs"), "4G")),
    Kind.REWARD_MODEL,
)


def _preference(name: str, loss: str, title: str) -> RecipeDef:
    return _recipe(
        name,
        f"""{title}: tiny model (or model.path) → prefs → dpo with dpo.loss={loss} (TRL).

A drop-in replacement for the other preference recipes (llm-dpo, llm-ipo,
llm-kto): same stages and kinds, only the loss differs.
""",
        (MODEL, PREFS, _method("dpo", "dpo", ("model", "prefs"), "6G")),
        Kind.LM,
        {"dpo": {"loss": loss}},
    )


DPO = _preference("llm-dpo", "dpo", "Direct preference optimisation")
IPO = _preference("llm-ipo", "ipo", "Identity preference optimisation")
KTO = _preference("llm-kto", "kto", "Kahneman-Tversky optimisation (pairs split into good/bad)")

GRPO = _recipe(
    "llm-grpo",
    """GRPO: tiny model (or model.path) → prompts → grpo (TRL) with reward functions.

grpo.rewards lists built-ins (exact-match, contains-answer, brevity, length)
or module:function entry points; prompts carry reference answers for exact-match.
""",
    (MODEL, PROMPTS, _method("grpo", "grpo", ("model", "prompts"), "6G")),
    Kind.LM,
)

DISTILL = _recipe(
    "llm-distill",
    """Distillation: teach the base model the teacher's next-token distributions (KL).

tiny model → tokenize → teacher (sft of the base model) → distill the teacher
into the base model on the same tokens: KL(teacher ‖ student), mixed with the
plain next-token loss by distill.alpha.
""",
    (
        MODEL,
        TOKENIZE,
        _method("teacher", "sft", ("model", "tokenize"), "4G"),
        _method("distill", "distill", ("model", "teacher", "tokenize"), "6G"),
    ),
    Kind.LM,
)

GENERATE = _recipe(
    "llm-generate",
    """Batch generation: tiny model (or model.path) → prompts → generate (resumable).

vLLM on a GPU box when installed (blut[vllm]), transformers generate on the
CPU; a killed run resumes without duplicates and keeps the input order.
""",
    (
        MODEL,
        PROMPTS,
        Node(
            "generate",
            "generate",
            ("model", "prompts"),
            memory_max="4G",
            resources=GPU_OR_CPU,
            hidden=("dry_run",),  # for running the program by hand; its output would be cached
        ),
    ),
    Kind.COMPLETIONS,
)

RECIPES = (SFT, REWARD, DPO, IPO, KTO, GRPO, DISTILL, GENERATE)
