"""`blut outputs`, `blut export` and `job:` references end to end, every stage a real unit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from blut.jobs.api import submit_recipe
from blut.jobs.recipes import find
from blut.jobs.store import JobStore
from tests.conftest import blut, wait_for_job

pytestmark = pytest.mark.systemd

LLM_MODEL = ("model.threads=1",)
SFT = ("tokenize.examples=32", "sft.max_steps=2", "sft.batch_size=4", "sft.save_every=2")
DPO = ("prefs.examples=16", "dpo.max_steps=2", "dpo.batch_size=4", "dpo.save_every=2")


def run(*args: str) -> Any:
    result = blut(*args, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def sets(*values: str) -> list[str]:
    return [a for v in values for a in ("--set", v)]


def outputs(job: str, *stage: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(run("outputs", job, *stage, "--format", "json").stdout)
    return data


def last_job(name: str) -> str:
    rows = json.loads(run("jobs", "--all", "--format", "json").stdout)
    ids: list[str] = [r["id"] for r in rows if r["name"] == name]
    return ids[-1]


def refused(*args: str) -> str:
    result = blut(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("blut: error: "), result.stderr
    return lines[0]


def test_outputs_of_a_smoke_job(blut_home: Path) -> None:
    run("recipe", "run", "smoke", "--set", "make.count=5")
    job = last_job("smoke")
    data = outputs(job)
    assert data["job"] == job
    kinds = {o["stage"]: o["kind"] for o in data["outputs"]}
    assert kinds == {"make": "numbers", "square": "numbers", "cube": "numbers", "total": "report"}
    for o in data["outputs"]:
        assert o["present"] and Path(o["path"]) == blut_home / "cache" / "objects" / o["hash"]
        assert Path(o["path"]).is_dir()
    table = run("outputs", job[-4:]).stdout.splitlines()  # an id suffix, as other commands take
    assert table[0].split() == ["STAGE", "KIND", "HASH", "PATH"]
    total = next(o for o in data["outputs"] if o["stage"] == "total")
    assert table[-1].split() == ["total", "report", total["hash"][:12], total["path"]]
    assert [o["stage"] for o in outputs(job, "total")["outputs"]] == ["total"]
    assert "no stage 'nope'" in refused("outputs", job, "nope")
    assert "no such job" in refused("outputs", "nosuchjob")
    # A smoke job has no lm: a reference to it where a model is wanted is refused.
    line = refused("recipe", "run", "llm-sft", "-d", *sets(f"model.path=job:{job}"))
    assert "model.path" in line and "no lm output" in line and "report" in line
    run("cache", "prune", "--max-size", "1")
    gone = outputs(job)["outputs"]
    assert gone and not any(o["present"] for o in gone)
    assert "(pruned)" in run("outputs", job).stdout


def test_outputs_of_a_quant_job(blut_home: Path) -> None:
    run(
        "recipe", "run", "quant-train",
        *sets("train.epochs=1", "train.hidden=8", "train.threads=1"),
    )  # fmt: skip
    data = outputs(last_job("quant-train"))
    kinds = {o["stage"]: o["kind"] for o in data["outputs"]}
    assert kinds["train"] == "model" and kinds["evaluate"] == "evaluation"
    assert all(Path(o["path"]).is_dir() for o in data["outputs"])


def test_chain_sft_into_dpo_by_job_reference(blut_home: Path, tmp_path: Path) -> None:
    pytest.importorskip("trl", reason="needs the llm extra: pip install 'blut[llm]'")
    transformers = pytest.importorskip("transformers")
    run("recipe", "run", "llm-sft", *sets(*LLM_MODEL, *SFT))
    sft_job = last_job("llm-sft")
    [sft] = outputs(sft_job, "sft")["outputs"]
    assert sft["kind"] == "lm"
    digest = sft["hash"]

    dpo_sets = sets(*LLM_MODEL, *DPO)
    first = run("recipe", "run", "llm-dpo", *sets(f"model.path=job:{sft_job[:15]}"), *dpo_sets)
    assert "stage dpo done" in first.stderr
    dpo_job = Path(blut_home / "jobs" / last_job("llm-dpo"))
    # The job records the output by its hash; the key names it by hash, never by a path.
    recorded = json.loads((dpo_job / "args.json").read_text())
    assert recorded["model"]["path"] == f"artifact:{digest}"
    key = json.loads((dpo_job / "stages" / "model" / "key.json").read_text())
    assert key["args"]["path"] == f"artifact:{digest}" and key["sources"] == {"path": digest}
    assert str(blut_home) not in json.dumps(key)
    # The stage itself read the object's path.
    handed = json.loads((dpo_job / "stages" / "model" / "args.json").read_text())
    assert handed["path"] == sft["path"]

    # The same chain again, by job or by a hash prefix, is fully cached.
    for ref in (f"job:{sft_job}:sft", f"artifact:{digest[:10]}", digest):
        again = run("recipe", "run", "llm-dpo", *sets(f"model.path={ref}"), *dpo_sets)
        assert again.stderr.count(" cached (") == 3, again.stderr

    # Bad references: one line each, exit 2, no job.
    before = len(json.loads(run("jobs", "--all", "--format", "json").stdout))
    dpo = ("recipe", "run", "llm-dpo", "-d")
    wrong = refused(*dpo, *sets(f"model.path=job:{sft_job}:tokenize"))
    assert "of kind tokens" in wrong and "takes lm" in wrong
    assert "no such job" in refused(*dpo, *sets("model.path=job:nosuchjob"))
    assert "no cached artifact" in refused(*dpo, *sets("model.path=artifact:ffffff"))
    assert "takes a path" in refused(*dpo, *sets(f"prefs.source=job:{sft_job}"))
    assert len(json.loads(run("jobs", "--all", "--format", "json").stdout)) == before

    # Export: a standard HF model dir that transformers loads without blut.
    dest = tmp_path / "exported"
    run("export", sft_job, "sft", str(dest))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(dest))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(dest))
    logits = model(**tokenizer("12+3=", return_tensors="pt")).logits
    assert logits.shape[-1] == model.config.vocab_size >= len(tokenizer)
    assert not any(p.is_symlink() for p in dest.rglob("*"))
    assert "not an empty folder" in refused("export", sft_job, "sft", str(dest))
    no_adapter = refused("export", sft_job, "sft", str(tmp_path / "adapter"), "--adapter")
    assert "saved no LoRA adapter" in no_adapter and "sft.lora_save=adapter" in no_adapter
    assert not (tmp_path / "adapter").exists()
    # The dpo job's model stage only names the sft output: exporting it copies that model.
    ref_export = tmp_path / "via-ref"
    run("export", dpo_job.name, "model", str(ref_export))
    assert (ref_export / "model.safetensors").read_bytes() == (
        dest / "model.safetensors"
    ).read_bytes()

    # A running job keeps the output it names: a prune meanwhile leaves it in place.
    recipe = find("llm-dpo")  # submitted here, so the wait starts at once
    (args,) = recipe.resolve(sets=[*LLM_MODEL, *DPO, f"model.path=job:{sft_job}", "dpo.seed=1"])
    running, _ = submit_recipe(
        JobStore(blut_home), recipe, {**args, "dpo": {**args["dpo"], "max_steps": 40}}
    )
    wait_for_job(running, lambda v: "dpo" in v.stages and v.stages["dpo"].state == "running", 120)
    run("cache", "prune", "--max-size", "1")
    assert Path(sft["path"]).is_dir()
    assert wait_for_job(running, timeout=120).state == "succeeded"

    # A pruned output is refused by name.
    run("cache", "prune", "--max-size", "1")
    assert "pruned" in refused(*dpo, *sets(f"model.path=job:{sft_job}"))
    assert "pruned" in refused("export", sft_job, "sft", str(tmp_path / "late"))
