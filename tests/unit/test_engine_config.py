"""Config layering, Hydra-style overrides, sweeps and precise validation errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from blut.jobs.config import ConfigError, resolve, sweep_points
from blut.jobs.configfiles import user_config_path
from blut.jobs.errors import UsageError

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "train": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "lr": {"type": "number", "default": 0.01},
                "epochs": {"type": "integer", "minimum": 1, "default": 3},
                "optimizer": {"enum": ["adam", "sgd"], "default": "adam"},
                "tags": {"type": "array", "items": {"type": "string"}, "default": []},
            },
        },
        "seed": {"type": "integer", "default": 0},
        "note": {"type": "string"},
    },
}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}


def run(tmp_path: Path, env: dict[str, str], **kw: Any) -> list[dict[str, Any]]:
    kw.setdefault("cwd", tmp_path)
    return resolve("r", SCHEMA, environ=env, **kw)


def test_defaults_come_from_the_schema(tmp_path: Path, env: dict[str, str]) -> None:
    assert run(tmp_path, env) == [
        {"train": {"lr": 0.01, "epochs": 3, "optimizer": "adam", "tags": []}, "seed": 0}
    ]


def test_layers_in_order(tmp_path: Path, env: dict[str, str]) -> None:
    user = user_config_path(env)
    user.parent.mkdir(parents=True)
    user.write_text(
        "[recipes.r]\nseed = 1\ntrain.epochs = 10\ntrain.lr = 0.5\n[recipes.other]\nx = 1\n"
    )
    (tmp_path / "blut.toml").write_text("[recipes.r.train]\nepochs = 20\noptimizer = 'sgd'\n")
    extra = tmp_path / "run.toml"
    extra.write_text("[train]\noptimizer = 'adam'\nlr = 0.25\n")
    (args,) = run(tmp_path, env, config_file=extra, sets=["train.lr=1e-4"])
    assert args["seed"] == 1
    assert args["train"] == {"lr": 1e-4, "epochs": 20, "optimizer": "adam", "tags": []}


def test_xdg_default(tmp_path: Path) -> None:
    assert user_config_path({}) == Path.home() / ".config" / "blut" / "config.toml"


def test_override_grammar(tmp_path: Path, env: dict[str, str]) -> None:
    (args,) = run(
        tmp_path,
        env,
        sets=["+note='hi there'", "train.tags=[a,b]", "~seed", "++train.epochs=7", "train.lr=3e-4"],
    )
    assert args["note"] == "hi there" and args["train"]["tags"] == ["a", "b"]
    assert "seed" not in args and args["train"]["epochs"] == 7
    assert args["train"]["lr"] == 3e-4


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_rejected(tmp_path: Path, env: dict[str, str], value: str) -> None:
    # args.json must stay strict JSON, and no program wants a NaN learning rate
    with pytest.raises(ConfigError, match=r"train\.lr: expected a finite number"):
        run(tmp_path, env, sets=[f"train.lr={value}"])


def test_interpolation_resolves(tmp_path: Path, env: dict[str, str]) -> None:
    (args,) = run(tmp_path, env, sets=["+note=${train.optimizer}"])
    assert args["note"] == "adam"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["train.lrr=1"], r"unknown key train\.lrr \(did you mean 'lr'\?\)$"),
        (["+train.lr=1"], r"already set; drop the '\+'"),
        (["~train.nope"], "no key train.nope to delete"),
        (["~seed=5"], r"seed is 0, not 5"),
        (["train.lr=1,2"], "this is a sweep; use --sweep train.lr=1,2"),
        (["train.lr=[1"], r"--set train.lr=\[1: "),
    ],
)
def test_override_errors(
    tmp_path: Path, env: dict[str, str], sets: list[str], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        run(tmp_path, env, sets=sets)


def test_validation_names_path_expected_given_and_suggests(
    tmp_path: Path, env: dict[str, str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = 'x'\n[train]\nepochs = 0\noptimizer = 'adamw'\nlrate = 1\n")
    with pytest.raises(ConfigError) as info:
        run(tmp_path, env, config_file=bad)
    assert sorted(info.value.problems) == [
        'seed: expected integer, given "x" (string)',
        "train.epochs: expected >= 1, given 0 (integer)",
        "train.lrate: unknown key (did you mean 'lr'?)",
        'train.optimizer: expected one of ["adam", "sgd"], given "adamw" (string)',
    ]
    assert isinstance(info.value, UsageError)


def test_bad_files_are_usage_errors(tmp_path: Path, env: dict[str, str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = \n")
    with pytest.raises(UsageError, match="invalid TOML"):
        run(tmp_path, env, config_file=bad)
    with pytest.raises(UsageError, match="cannot read"):
        run(tmp_path, env, config_file=tmp_path / "missing.toml")


def test_sweeps_are_cartesian(tmp_path: Path, env: dict[str, str]) -> None:
    points = run(tmp_path, env, sweeps=["train.lr=1e-3,1e-4", "seed=range(0,3)"])
    combos = [(p["train"]["lr"], p["seed"]) for p in points]
    assert combos == [(1e-3, 0), (1e-3, 1), (1e-3, 2), (1e-4, 0), (1e-4, 1), (1e-4, 2)]
    assert len(sweep_points([])) == 1


def test_sweep_errors(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="given by both --set and --sweep"):
        run(tmp_path, env, sets=["seed=1"], sweeps=["seed=1,2"])
    with pytest.raises(UsageError, match="swept twice"):
        sweep_points(["seed=1,2", "seed=3,4"])
    with pytest.raises(UsageError, match="cannot delete"):
        sweep_points(["~seed"])
    with pytest.raises(UsageError, match="limit is 1000"):
        sweep_points(["a=range(0,100)", "b=range(0,100)"])


def test_hydra_loads_only_when_there_are_overrides_to_parse() -> None:
    code = (
        "import sys\n"
        "from blut.jobs.recipes import find\n"
        "find('smoke').resolve()\n"
        "print('plain', 'hydra' in sys.modules)\n"
        "find('smoke').resolve(sets=['make.count=3'])\n"
        "print('with --set', 'hydra' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines() == ["plain False", "with --set True"]


def test_every_problem_is_listed_not_only_the_first(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        run(tmp_path, env, sets=["train.lrr=1", "train.epochs=x", "~nope", "seed=1.5"])
    assert info.value.problems == [
        "train.lrr=1: unknown key train.lrr (did you mean 'lr'?)",
        "~nope: no key nope to delete (did you mean 'note'?)",
        "seed: expected integer, given 1.5 (number)",
        'train.epochs: expected integer, given "x" (string)',
    ]


def test_the_add_hint_only_when_the_schema_takes_the_key(
    tmp_path: Path, env: dict[str, str]
) -> None:
    schema = {**SCHEMA, "properties": {**SCHEMA["properties"], "extra": {"type": "object"}}}
    with pytest.raises(UsageError, match=r"unknown key extra\.x; use \+extra\.x=1 to add it$"):
        resolve("r", schema, sets=["extra.x=1"], cwd=tmp_path, environ=env)
    [args] = resolve("r", schema, sets=["+extra.x=1"], cwd=tmp_path, environ=env)
    assert args["extra"] == {"x": 1}
    # train takes no other keys, so no hint, and adding it is refused the same way
    with pytest.raises(UsageError, match=r"train\.lrr \(did you mean 'lr'\?\)$"):
        run(tmp_path, env, sets=["train.lrr=1"])
    with pytest.raises(UsageError, match=r"train\.lrr: unknown key"):
        run(tmp_path, env, sets=["+train.lrr=1"])


def test_the_add_hint_only_when_adding_would_be_accepted(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """The hint is offered only when ``+KEY=VALUE`` passes the schema: not under a leaf
    (``train.lr`` is a number), nor with a value the object's extra keys refuse."""
    typed = {"type": "object", "additionalProperties": {"type": "integer"}}
    schema = {**SCHEMA, "properties": {**SCHEMA["properties"], "extra": typed}}
    with pytest.raises(UsageError, match=r"unknown key extra\.x; use \+extra\.x=1 to add it$"):
        resolve("r", schema, sets=["extra.x=1"], cwd=tmp_path, environ=env)
    with pytest.raises(UsageError, match=r"unknown key extra\.x$"):
        resolve("r", schema, sets=["extra.x=abc"], cwd=tmp_path, environ=env)
    with pytest.raises(UsageError, match=r"unknown key train\.lr\.x$"):
        run(tmp_path, env, sets=["train.lr.x=1"])
    with pytest.raises(ConfigError):
        run(tmp_path, env, sets=["+train.lr.x=1"])


def test_a_whole_section_cannot_be_deleted(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(
        UsageError, match=r"~train: train is a whole section .* \(e\.g\. ~train\.lr\)"
    ):
        run(tmp_path, env, sets=["~train"])
    (args,) = run(tmp_path, env, sets=["~train.tags"])
    assert "tags" not in args["train"]


@pytest.mark.parametrize(
    ("sets", "sweeps", "needle"),
    [
        ([f"seed={'9' * 5000}"], [], r"--set seed=9{40,}… \(5005 characters\): number too large$"),
        ([], [f"seed=1,{'9' * 5000}"], r"number too large$"),
        (["seed=9223372036854775808"], [], r"seed: expected an integer from -2\*\*63 to 2\*\*63-1"),
        (["seed=-9223372036854775809"], [], r"seed: expected an integer from"),
        ([], ["seed=range(0,1000000)"], r"more than 1000 values"),
    ],
)
def test_huge_numbers_are_one_line_errors(
    tmp_path: Path, env: dict[str, str], sets: list[str], sweeps: list[str], needle: str
) -> None:
    with pytest.raises(UsageError, match=needle) as info:
        run(tmp_path, env, sets=sets, sweeps=sweeps)
    assert len(str(info.value).splitlines()) == 1 and len(str(info.value)) < 200


def test_int64_bounds_are_accepted(tmp_path: Path, env: dict[str, str]) -> None:
    (args,) = run(tmp_path, env, sets=["seed=9223372036854775807"])
    assert args["seed"] == 2**63 - 1
