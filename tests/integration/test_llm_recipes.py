"""The LLM recipes end to end in real systemd units on the tiny model (CPU, a few steps each).

One BLUT_HOME for the module, so the tiny model (and the data stages) are
built once and every later recipe takes them from the cache.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="needs the llm extra: pip install 'blut[llm]'")

from blut.jobs.api import submit_recipe
from blut.jobs.cache import Cache
from blut.jobs.recipes import find
from blut.jobs.store import Job, JobStore
from blut.status.metrics import read_metrics
from blut.status.tailer import read_events
from tests.conftest import wait_for_job

pytestmark = pytest.mark.systemd

FAST = ("max_steps=8", "threads=1", "save_every=4")
MODEL = ("model.threads=1",)
CASES = {
    "llm-sft": ("sft", "loss", ("tokenize.examples=64", *(f"sft.{s}" for s in FAST))),
    "llm-dpo": (
        "dpo",
        "loss",
        ("prefs.examples=64", "dpo.batch_size=8", *(f"dpo.{s}" for s in FAST)),
    ),
    "llm-ipo": (
        "dpo",
        "loss",
        ("prefs.examples=64", "dpo.batch_size=8", *(f"dpo.{s}" for s in FAST)),
    ),
    "llm-kto": (  # beta=1: at 0.1 KTO's loss moves less than batch noise (docs/llm.md)
        "dpo",
        "loss",
        ("prefs.examples=64", "dpo.batch_size=8", "dpo.beta=1.0", *(f"dpo.{s}" for s in FAST)),
    ),
    "llm-reward": (
        "reward",
        "loss",
        ("prefs.examples=64", "reward.batch_size=8", *(f"reward.{s}" for s in FAST)),
    ),
    "llm-grpo": (  # the settings of tests/unit/test_llm_stages.py::test_grpo_reward_rises
        "grpo",
        "reward",
        (
            "prompts.examples=16",
            "grpo.rewards=[brevity]",
            "grpo.lr=0.02",
            "grpo.batch_size=8",
            "grpo.num_generations=4",
            "grpo.max_completion_length=8",
            "grpo.max_steps=16",
            "grpo.save_every=8",
            "grpo.threads=1",
        ),
    ),
    "llm-distill": (
        "distill",
        "kl",
        ("tokenize.examples=64", *(f"teacher.{s}" for s in FAST), *(f"distill.{s}" for s in FAST)),
    ),
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("llm-home") / "blut-home"


def submit(home: Path, recipe: str, sets: tuple[str, ...]) -> Job:
    rec = find(recipe)
    (args,) = rec.resolve(sets=[*MODEL, *sets])
    job, warning = submit_recipe(JobStore(home), rec, args)
    assert warning is None
    return job


def log_of(job: Job, stage: str) -> str:
    path = job.log_path(stage)
    return path.read_text()[-3000:] if path.exists() else "(no log)"


def kinds(job: Job, kind: str) -> Counter[str]:
    return Counter(e.stage or "" for e in read_events(job.status_path) if e.event == kind)


@pytest.mark.parametrize("recipe", list(CASES))
def test_method_trains_in_units(home: Path, recipe: str) -> None:
    stage, key, sets = CASES[recipe]
    job = submit(home, recipe, sets)
    view = wait_for_job(job, timeout=150)
    assert view.state == "succeeded", (view, log_of(job, stage))
    ran = [s for s in view.stages.values() if s.state != "cached"]
    assert view.stages[stage] in ran
    assert all(s.contained and s.unit == f"blut-{job.id}-{s.name}" for s in ran)
    table = read_metrics(job.dir / "stages" / stage / "metrics")
    values = [v for v in table.column(key).to_pylist() if v is not None]
    assert values and all(math.isfinite(v) for v in values), values
    k = max(1, len(values) // 4)
    first, last = sum(values[:k]) / k, sum(values[-k:]) / k
    if key == "reward":  # GRPO's loss is ~0 by construction; its reward must rise
        assert last > first + 0.25, values
        losses = [v for v in table.column("loss").to_pylist() if v is not None]
        assert losses and all(math.isfinite(v) for v in losses), losses
    else:
        assert last < first, values
    assert kinds(job, "metric")[stage] >= 3
    assert kinds(job, "checkpoint")[stage] >= 1
    model = Cache(home).object_path(view.stages[stage].artifact or "")
    assert (model / "model.safetensors").is_file()


def test_rerun_is_a_cache_hit(home: Path) -> None:
    _stage, _key, sets = CASES["llm-sft"]
    job = submit(home, "llm-sft", sets)
    view = wait_for_job(job, timeout=150)
    assert view.state == "succeeded", view
    assert kinds(job, "stage_cached") == Counter(model=1, tokenize=1, sft=1)
    assert not kinds(job, "stage_started")


def test_generate_answers_every_prompt_in_order(home: Path) -> None:
    import pyarrow.parquet as pq

    job = submit(
        home,
        "llm-generate",
        ("prompts.examples=12", "generate.max_new_tokens=4", "generate.threads=1"),
    )
    view = wait_for_job(job, timeout=150)
    assert view.state == "succeeded", (view, log_of(job, "generate"))
    cache = Cache(home)
    out = pq.read_table(
        cache.object_path(view.stages["generate"].artifact or "") / "completions.parquet"
    )
    prompts = pq.read_table(
        cache.object_path(view.stages["prompts"].artifact or "") / "prompts.parquet"
    )
    assert out.column("prompt").to_pylist() == prompts.column("prompt").to_pylist()
    assert view.stages["model"].state == "cached"
