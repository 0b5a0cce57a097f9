"""The quant recipes: plans, schemas taken from the payload, memory ceilings, cache keys."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from blut.jobs.artifact import Kind
from blut.jobs.config import ConfigError
from blut.jobs.errors import UsageError
from blut.jobs.keys import KeyParts
from blut.jobs.plan import Plan
from blut.jobs.recipes import by_category, find, swap_candidates
from blut.jobs.recipes.payloadplan import payload_schema
from blut.jobs.recipes.quant import MEMORY_MAX, STAGES

QUANT = ["quant-train", "quant-baseline"]
NOWHERE = Path("/nonexistent-blut-test")
ISOLATED: dict[str, Any] = {"environ": {"XDG_CONFIG_HOME": str(NOWHERE)}, "cwd": NOWHERE}
"""No user or project config file may leak into these tests."""


def default_plan(name: str, *sets: str) -> Plan:
    recipe = find(name)
    (args,) = recipe.resolve(sets=sets, **ISOLATED)
    return recipe.build(args)


def keys(plan: Plan) -> dict[str, str]:
    """Each stage's cache key, with fixed fake artifact hashes standing in for its inputs."""
    return {
        name: KeyParts(
            stage=name,
            program=stage.program,
            schema_version=stage.schema_version,
            inputs={d: f"hash-of-{d}" for d in plan.deps[name]},
            args=dict(stage.args),
        ).key
        for name, stage in plan.stages.items()
    }


@pytest.mark.parametrize("name", QUANT)
def test_plan_builds_with_the_fan_in_edges(name: str) -> None:
    plan = default_plan(name)
    assert plan.order() == list(STAGES)
    assert dict(plan.deps) == {
        "encode": (),
        "label": ("encode",),
        "split": ("label",),
        "train": ("label", "split"),
        "evaluate": ("train", "label", "split"),
    }
    assert plan.outputs == ["evaluate"]
    assert plan.stages["train"].inputs == (Kind.LABELED, Kind.SPLITS)
    assert plan.stages["evaluate"].output == Kind.EVALUATION
    train = plan.stages["train"].resources
    assert train.gpu == 1 and train.cpu_fallback
    assert all(plan.stages[s].resources.gpu == 0 for s in STAGES if s != "train")
    assert all(s.argv[1:] == ("-m", "blut.payload", s.name) for s in plan.stages.values())
    # plan.json round trip keeps every stage
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))).to_dict() == plan.to_dict()


@pytest.mark.parametrize("name", QUANT)
def test_stage_kinds_come_from_the_payload_schemas(name: str) -> None:
    plan = default_plan(name)
    for stage in plan.stages.values():
        meta = payload_schema(stage.name)["x-blut"]
        assert str(stage.output) == meta["output"]
        assert [str(k) for k in stage.inputs] == [
            i["kind"] for i in meta["inputs"] if not i.get("optional")
        ]
        assert stage.schema_version == meta["schema_version"]


def test_schema_is_read_from_the_payload_package_data() -> None:
    text = (resources.files("blut.payload") / "schemas" / "train.json").read_text()
    assert payload_schema("train") == json.loads(text)
    section = find("quant-train").args_schema["properties"]["train"]
    assert "x-blut" not in section and "$schema" not in section
    recipe_only = {"memory_max", "processes"}  # the unit's ceiling and process count
    assert set(section["properties"]) == set(json.loads(text)["properties"]) | recipe_only


@pytest.mark.parametrize("name", QUANT)
def test_defaults_validate_against_the_payload_schemas(name: str) -> None:
    recipe = find(name)
    defaults = recipe.defaults()
    assert set(defaults) == set(STAGES)
    plan = recipe.build(defaults)
    for stage in STAGES:
        schema = payload_schema(stage)
        schema.pop("x-blut")
        jsonschema.Draft202012Validator(schema).validate(dict(plan.stages[stage].args))
        # the payload gets every option explicitly, and never the unit's memory ceiling
        assert set(plan.stages[stage].args) == set(schema["properties"])


def test_recipe_defaults_are_quick_and_baseline_is_linear() -> None:
    train = find("quant-train").defaults()["train"]
    assert train["model"] == "mlp" and train["epochs"] <= 5 and train["hidden"] <= 32
    assert find("quant-baseline").defaults()["train"]["model"] == "linear"
    assert payload_schema("train")["properties"]["epochs"]["default"] == 10  # payload untouched


def test_missing_keys_compile_like_the_defaults() -> None:
    recipe = find("quant-train")
    assert recipe.build({}).to_dict() == recipe.build(recipe.defaults()).to_dict()


def test_baseline_is_a_swap_candidate_of_quant_train() -> None:
    assert "quant-baseline" in [r.name for r in swap_candidates("quant-train")]
    assert "quant-train" in [r.name for r in swap_candidates("quant-baseline")]
    assert "smoke" not in [r.name for r in swap_candidates("quant-train")]
    assert [r.name for r in by_category()["quant"]] == ["quant-baseline", "quant-train"]


def test_memory_ceilings_default_per_stage_and_are_overridable() -> None:
    plan = default_plan("quant-train")
    got = {name: s.memory_max for name, s in plan.stages.items()}
    assert got["train"] == 2 << 30 and got["split"] == 512 << 20
    assert all(v is not None and v <= got["train"] for v in got.values())
    assert set(got) == set(MEMORY_MAX)
    small = default_plan("quant-train", "train.memory_max=60M", "encode.memory_max=123456789")
    assert small.stages["train"].memory_max == 60 << 20
    assert small.stages["encode"].memory_max == 123456789
    # the ceiling is not a cache-relevant arg
    assert keys(small) == keys(plan)


@pytest.mark.parametrize(
    "bad", ["train.memory_max=lots", "train.memory_max=0", "label.memory_max=-1"]
)
def test_bad_memory_ceiling_is_a_config_error(bad: str) -> None:
    with pytest.raises((ConfigError, UsageError), match="memory_max"):
        default_plan("quant-train", bad)


def test_lr_change_changes_only_train_and_evaluate_keys() -> None:
    base = default_plan("quant-train")
    other = default_plan("quant-train", "train.lr=0.01")
    changed_args = [s for s in STAGES if base.stages[s].args != other.stages[s].args]
    assert changed_args == ["train"]
    assert other.stages["train"].args["lr"] == 0.01
    # with the upstream artifacts equal, only train's key moves; evaluate then moves
    # because its model input (train's artifact) differs, never because of its args.
    base_keys, other_keys = keys(base), keys(other)
    assert [s for s in STAGES if base_keys[s] != other_keys[s]] == ["train"]


def test_sweep_points_share_the_data_stages() -> None:
    recipe = find("quant-train")
    points = recipe.resolve(sweeps=["train.lr=0.001,0.01"], **ISOLATED)
    plans = [recipe.build(p) for p in points]
    upstream = [
        {s: st.args for s, st in p.stages.items() if s in ("encode", "label", "split")}
        for p in plans
    ]
    assert upstream[0] == upstream[1]
    assert [p.stages["train"].args["lr"] for p in plans] == [0.001, 0.01]


def test_unknown_stage_option_is_caught_before_compiling() -> None:
    with pytest.raises(UsageError, match="did you mean 'epochs'"):
        find("quant-train").resolve(sets=["train.epoch=2"], **ISOLATED)
    args: dict[str, Any] = {"train": {"epoch": 2}}
    with pytest.raises(ConfigError, match="epoch"):
        find("quant-train").build(args)


def test_bad_memory_ceiling_says_what_is_expected() -> None:
    from blut.jobs.config import ConfigError
    from blut.jobs.recipes import find

    with pytest.raises(ConfigError) as info:
        find("quant-train").resolve(sets=["train.memory_max=lots"])
    [problem] = info.value.problems
    assert problem.startswith("train.memory_max: expected memory ceiling")
    assert 'given "lots" (string)' in problem
