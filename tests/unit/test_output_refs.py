"""The pure parts of job-output references: recognising, canonical form, launch paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from blut.jobs.config import ConfigError
from blut.jobs.external import input_kinds, launch_args, reference_hash, resolve_inputs
from blut.jobs.recipes import find

DIGEST = "ab" * 32


def test_only_a_full_canonical_hash_is_a_reference() -> None:
    assert reference_hash(f"artifact:{DIGEST}") == DIGEST
    for value in ("artifact:ab12", f"job:{DIGEST}", DIGEST, f"artifact:{DIGEST.upper()}", 3):
        assert reference_hash(value) is None


def test_launch_args_hand_the_stage_the_object_path(tmp_path: Path) -> None:
    args = {"path": f"artifact:{DIGEST}", "tokenizer": "", "seed": 0}
    assert launch_args(args, tmp_path) == {**args, "path": str(tmp_path / DIGEST)}


def test_model_args_take_lm_outputs_and_data_args_take_paths() -> None:
    schema = find("llm-sft").args_schema["properties"]
    assert input_kinds(schema["model"]) == {"path": ("lm",), "tokenizer": ("lm",)}
    assert input_kinds(schema["tokenize"]) == {}


def test_a_reference_needs_a_home(tmp_path: Path) -> None:
    recipe = find("llm-sft")
    (args,) = recipe.resolve(sets=["model.path=job:x"])
    with pytest.raises(ConfigError, match=r"model\.path: job:x: no blut home"):
        resolve_inputs(recipe.args_schema, args, tmp_path)
