"""`blut stage list` and the mistakes `blut stage run` refuses before submitting anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blut.jobs.plan import PlanError
from blut.jobs.recipes import all_recipes, find
from tests.conftest import blut


def test_upstream_cuts_the_plan_to_a_stage_and_what_it_needs() -> None:
    smoke = find("smoke")
    plan = smoke.build(smoke.defaults())
    cube = plan.upstream("cube")
    assert cube.order() == ["make", "cube"] and dict(cube.deps) == {"make": (), "cube": ("make",)}
    assert plan.upstream("total").order() == plan.order()
    assert plan.upstream("make").order() == ["make"]
    with pytest.raises(PlanError, match="no stage 'nope'"):
        plan.upstream("nope")


def test_stage_list_of_one_recipe(blut_home: Path) -> None:
    result = blut("stage", "list", "smoke", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["RECIPE", "STAGE", "PROGRAM", "IN", "OUT", "CEILING", "SCHEMA"]
    rows = {line.split()[1]: line for line in lines[1:]}
    assert list(rows) == ["make", "square", "cube", "total"]
    assert rows["make"].split()[2:4] == ["smoke-make", "-"]
    assert "smoke-power" in rows["cube"] and "numbers" in rows["cube"]
    assert "numbers, numbers  report" in rows["total"] and "256.0 MiB" in rows["total"]
    assert "v1: count, seed, sleep, fail" in rows["make"]
    assert not blut_home.exists() or not any((blut_home / "jobs").glob("*"))


def test_stage_list_json_covers_every_recipe(blut_home: Path) -> None:
    result = blut("stage", "list", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    for recipe in all_recipes():
        plan = recipe.build(recipe.defaults())
        mine = [row for row in rows if row["recipe"] == recipe.name]
        assert [row["stage"] for row in mine] == plan.order()
        for row in mine:
            stage = plan.stages[row["stage"]]
            assert row["output"] == str(stage.output) and row["memory_max"] == stage.memory_max
            assert row["inputs"] == [str(k) for k in stage.inputs]
            assert row["after"] == list(plan.deps[stage.name])
            assert row["args_schema"] == stage.args_schema
            assert row["schema_version"] == stage.schema_version
    cube = next(r for r in rows if (r["recipe"], r["stage"]) == ("smoke", "cube"))
    assert cube["program"] == "smoke-power" and cube["args"]["exponent"] == 3


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["stage", "list", "smok"], "no such recipe: 'smok' (did you mean 'smoke'?)"),
        (["stage", "run", "smok", "cube"], "no such recipe: 'smok'"),
        (["stage", "run", "smoke", "cub"], "recipe smoke has no stage 'cub' (stages: make, "),
        (["stage", "run", "smoke", "cube", "--set", "make.cnt=3"], "unknown key make.cnt"),
        (["stage", "run", "smoke", "cube", "--set", "make.count=-1"], "make.count"),
        (["stage", "run", "smoke", "cube", "--foreground"], "--foreground needs a terminal"),
        (["stage", "run", "smoke", "cube", "--foreground", "-d"], "exclude each other"),
        (["stage", "run", "smoke"], "Missing argument 'STAGE'"),
        (["stage", "list", "smoke", "--format", "yaml"], "unknown format 'yaml'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(blut_home: Path, args: list[str], says: str) -> None:
    result = blut(*args, input="")
    assert result.returncode == 2, result
    [line] = result.stderr.splitlines()
    assert line.startswith("blut: error: ") and says in line, line
    assert not any((blut_home / "jobs").glob("*"))
