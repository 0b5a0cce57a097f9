"""The pure parts of job-output references: recognising, canonical form, launch paths."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from blut.jobs.config import ConfigError
from blut.jobs.datacheck import DataProblem, preflight
from blut.jobs.errors import JobsError
from blut.jobs.external import input_kinds, launch_args, reference_hash, resolve_inputs
from blut.jobs.recipes import find
from blut.jobs.stagedef import StageDef

DIGEST = "ab" * 32


def test_only_a_full_canonical_hash_is_a_reference() -> None:
    assert reference_hash(f"artifact:{DIGEST}") == DIGEST
    for value in ("artifact:ab12", f"job:{DIGEST}", DIGEST, f"artifact:{DIGEST.upper()}", 3):
        assert reference_hash(value) is None


def _stage(recipe: str, name: str, **args: object) -> StageDef:
    (resolved,) = find(recipe).resolve()
    stage = find(recipe).build(resolved).stages[name]
    return dataclasses.replace(stage, args={**stage.args, **args})


def test_launch_args_hand_the_stage_the_object_path(tmp_path: Path) -> None:
    stage = _stage("llm-sft", "model", path=f"artifact:{DIGEST}")
    assert launch_args(stage, tmp_path) == {**stage.args, "path": str(tmp_path / DIGEST)}


def test_a_data_arg_gets_the_one_table_of_the_output(tmp_path: Path) -> None:
    stage = _stage("llm-sft", "tokenize", source=f"artifact:{DIGEST}")
    folder = tmp_path / DIGEST
    folder.mkdir()
    (folder / "generate.json").write_text("{}")
    with pytest.raises(JobsError, match="expected one Parquet table, found 0"):
        launch_args(stage, tmp_path)
    (folder / "completions.parquet").write_bytes(b"")
    table = str(folder / "completions.parquet")
    assert launch_args(stage, tmp_path) == {**stage.args, "source": table}
    (folder / "more.parquet").write_bytes(b"")
    with pytest.raises(JobsError, match="found 2"):
        launch_args(stage, tmp_path)


def test_model_args_take_lm_outputs_and_data_args_take_tables() -> None:
    schema = find("llm-sft").args_schema["properties"]
    assert input_kinds(schema["model"]) == {"path": ("lm",), "tokenizer": ("lm",)}
    assert input_kinds(schema["tokenize"]) == {"source": ("completions",)}
    prompts = find("llm-grpo").args_schema["properties"]["prompts"]
    assert input_kinds(prompts) == {"source": ("completions", "prompts")}
    assert input_kinds(find("llm-dpo").args_schema["properties"]["prefs"]) == {
        "source": ("preferences",)
    }


def test_a_reference_needs_a_home(tmp_path: Path) -> None:
    recipe = find("llm-sft")
    (args,) = recipe.resolve(sets=["model.path=job:x"])
    with pytest.raises(ConfigError, match=r"model\.path: job:x: no blut home"):
        resolve_inputs(recipe.args_schema, args, tmp_path)


def test_preflight_reads_the_table_a_data_arg_names(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    recipe = find("llm-sft")
    (args,) = recipe.resolve(sets=[f"tokenize.source=artifact:{DIGEST}"])
    plan = recipe.build(args)
    folder = tmp_path / DIGEST
    folder.mkdir()
    with pytest.raises(DataProblem, match="expected one Parquet table, found 0"):
        preflight(plan, tmp_path)
    rows = [{"prompt": "2+2?", "completion": "4"}, {"prompt": "hi", "completion": ""}]
    pq.write_table(pa.Table.from_pylist(rows), folder / "completions.parquet")
    with pytest.raises(DataProblem, match=r"completions\.parquet.*row 2.*completion"):
        preflight(plan, tmp_path)
    pq.write_table(pa.Table.from_pylist(rows[:1]), folder / "completions.parquet")
    preflight(plan, tmp_path)
