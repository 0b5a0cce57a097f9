"""`TrainSpec` → recipe overrides, its one-line errors, and `blut train --dry-run`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from blut.jobs.config import parse_overrides
from blut.jobs.errors import UsageError
from blut.jobs.trainspec import METHODS, TrainSpec, quote
from tests.conftest import blut


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    path = tmp_path / "my model"
    path.mkdir()
    (path / "config.json").write_text("{}")
    (path / "tokenizer.json").write_text("{}")
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("{}\n")
    return path


def test_every_method_maps_to_its_recipe_and_data_stage(data: Path) -> None:
    sources = {}
    for name, method in METHODS.items():
        args = TrainSpec(name, dataset=data, lr=0.01).resolve(environ={}, cwd=data.parent)
        assert TrainSpec(name).recipe().name == method.recipe
        assert args[method.stage]["lr"] == 0.01
        sources[name] = next(s for s, a in args.items() if a.get("source") == str(data))
    assert sources == {
        "sft": "tokenize",
        "reward": "prefs",
        "dpo": "prefs",
        "ipo": "prefs",
        "kto": "prefs",
        "grpo": "prompts",
        "distill": "tokenize",
    }
    assert TrainSpec("kto").resolve(environ={})["dpo"]["loss"] == "kto"


def test_spec_sets_only_what_it_gives(model_dir: Path, data: Path) -> None:
    spec = TrainSpec(
        "sft",
        model=model_dir,
        tokenizer=model_dir,
        dataset=data,
        optimizer="sgd",
        schedule="cosine",
        warmup_steps=2,
        lora=True,
        lora_r=4,
        lora_alpha=8,
        precision="bf16",
        epochs=1.5,
        seed=7,
        eval_every=5,
        sets=("sft.lr=0.5", "sft.threads=1"),
    )
    args = spec.resolve(environ={}, cwd=data.parent)
    assert args["model"]["path"] == args["model"]["tokenizer"] == str(model_dir)
    sft = args["sft"]
    assert (sft["optimizer"], sft["schedule"], sft["warmup_steps"]) == ("sgd", "cosine", 2)
    assert (sft["lora"], sft["lora_r"], sft["lora_alpha"]) == (True, 4, 8)
    assert (sft["precision"], sft["epochs"], sft["seed"], sft["eval_every"]) == ("bf16", 1.5, 7, 5)
    assert (sft["lr"], sft["threads"]) == (0.5, 1)  # --set wins over the spec
    plain = TrainSpec("sft").resolve(environ={})
    assert plain == TrainSpec("sft").recipe().resolve(environ={})[0]
    assert spec.to_dict()["model"] == str(model_dir)


@pytest.mark.parametrize("value", ["a b,c=d", "it's", "back\\slash\\", "q\\'x", '"x"'])
def test_paths_survive_the_override_grammar(value: str) -> None:
    (edit,) = parse_overrides([f"k={quote(value)}"])
    assert edit.value == value


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        (TrainSpec("sfft"), "unknown method 'sfft' (did you mean 'sft'?)"),
        (TrainSpec("xyz"), "methods: sft, reward"),
        (TrainSpec("sft", model=Path("/no/such/dir")), "model /no/such/dir: no such directory"),
        (TrainSpec("sft", dataset=Path("/no/such.jsonl")), "no such file"),
        (TrainSpec("sft", tokenizer=Path("/tmp")), "tokenizer needs model"),
        (TrainSpec("distill", lora=True), "method distill has no LoRA option"),
        (TrainSpec("grpo", eval_every=2), "method grpo has no eval_every option"),
        (TrainSpec("sft", lora_r=4), "need lora on"),
        (TrainSpec("sft", max_steps=3, epochs=1), "not both"),
        (TrainSpec("sft", lr=-1.0), "sft.lr: expected >= 0"),
        (TrainSpec("dpo", optimizer="lion"), "dpo.optimizer"),
        (TrainSpec("sft", sets=("sft.lrr=1",)), "did you mean 'lr'"),
    ],
)
def test_bad_spec_is_one_usage_error(spec: TrainSpec, needle: str) -> None:
    with pytest.raises(UsageError) as info:
        spec.resolve(environ={})
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_model_dir_must_be_a_model(tmp_path: Path, data: Path) -> None:
    with pytest.raises(UsageError, match="not a model dir"):
        TrainSpec("sft", model=tmp_path).check()
    with pytest.raises(UsageError, match=r"expected \.jsonl"):
        TrainSpec("sft", dataset=data.rename(tmp_path / "rows.csv")).check()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return blut("train", *args, timeout=60)


def test_dry_run_prints_the_resolved_plan(blut_home: Path, model_dir: Path, data: Path) -> None:
    data.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')  # dry runs check data
    result = run_cli(
        "--method", "dpo", "--model", str(model_dir), "--dataset", str(data),
        "--lora", "--lr", "0.002", "--set", "dpo.beta=0.2", "--dry-run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "blut recipe run llm-dpo --set model.path=" in result.stderr
    tree, _, rest = result.stdout.partition("{")
    assert "llm-dpo" in tree and "dpo → lm" in tree and "prefs → preferences" in tree
    args = json.loads("{" + rest)
    assert args["model"]["path"] == str(model_dir)
    assert args["prefs"]["source"] == str(data)
    assert (args["dpo"]["lr"], args["dpo"]["lora"], args["dpo"]["beta"]) == (0.002, True, 0.2)
    assert not (blut_home / "jobs").exists() or not any((blut_home / "jobs").iterdir())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--method", "sfft"], "did you mean 'sft'"),
        (["--method", "sft", "--model", "/no/such/model"], "no such directory"),
        (["--method", "distill", "--lora"], "no LoRA option"),
        (["--method", "sft", "--set", "sft.bogus=1"], "unknown key sft.bogus"),
        (["--model", "/tmp"], "Missing option '--method'"),
    ],
)
def test_bad_input_is_exit_2(blut_home: Path, args: list[str], needle: str) -> None:
    result = run_cli(*args, "--dry-run")
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("blut: error: "), result.stderr
    assert needle in lines[0]
