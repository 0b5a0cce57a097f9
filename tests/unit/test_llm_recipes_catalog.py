"""The LLM recipes compile without the llm extra; the extras doctor check imports nothing."""

from __future__ import annotations

import sys

from blut.containment.extras import check_extras
from blut.jobs.artifact import Kind
from blut.jobs.recipes import find, swap_candidates

LLM = (
    "llm-sft",
    "llm-reward",
    "llm-dpo",
    "llm-ipo",
    "llm-kto",
    "llm-grpo",
    "llm-distill",
    "llm-generate",
)


def test_every_llm_recipe_compiles_with_ceilings() -> None:
    for name in LLM:
        recipe = find(name)
        plan = recipe.build(recipe.defaults())
        assert plan.order()[0] == "model"
        assert all(s.memory_max and s.memory_max >= 1 << 30 for s in plan.stages.values())
    distill = find("llm-distill").build(find("llm-distill").defaults())
    assert distill.deps["distill"] == ("model", "teacher", "tokenize")


def test_preference_methods_swap_and_differ_only_in_loss() -> None:
    swaps = {r.name for r in swap_candidates("llm-dpo")}
    assert {"llm-ipo", "llm-kto"} <= swaps and "llm-reward" not in swaps
    kto = find("llm-kto").build(find("llm-kto").defaults())
    assert kto.stages["dpo"].args["loss"] == "kto"
    assert find("llm-reward").output == Kind.REWARD_MODEL


def test_model_path_and_memory_override() -> None:
    recipe = find("llm-sft")
    (args,) = recipe.resolve(sets=["model.path=/models/x", "sft.memory_max=8G"], environ={})
    plan = recipe.build(args)
    assert plan.stages["model"].args["path"] == "/models/x"
    assert plan.stages["sft"].memory_max == 8 << 30
    assert "memory_max" not in plan.stages["sft"].args


def test_extras_check_reports_without_importing() -> None:
    before = set(sys.modules)
    check = check_extras()
    assert check.name == "extras" and check.status in ("ok", "warn")
    assert not {"torch", "transformers", "trl"} & (set(sys.modules) - before)
    missing = check_extras(present=lambda m: m != "trl")
    assert missing.status == "warn" and missing.fix == "pip install 'blut[llm]'"
    assert "vllm" not in (missing.fix or "")
