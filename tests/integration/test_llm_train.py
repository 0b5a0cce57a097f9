"""`blut train` in real units, and an LLM stage over its memory ceiling ending failed/oom.

One BLUT_HOME for the module: the CLI run builds the tiny model and tokens,
the OOM run takes them from the cache.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="needs the llm extra: pip install 'blut[llm]'")

from blut.jobs.api import submit_recipe
from blut.jobs.cache import Cache
from blut.jobs.keys import KeyParts
from blut.jobs.recipes import find
from blut.jobs.store import JobStore
from blut.status.metrics import read_metrics
from tests.conftest import blut, wait_for_job

pytestmark = pytest.mark.systemd

DATA = ("model.threads=1", "tokenize.examples=32")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("llm-train") / "blut-home"


def test_train_sft_runs_the_recipe_in_units(home: Path) -> None:
    sets = [a for s in (*DATA, "sft.threads=1", "sft.save_every=2") for a in ("--set", s)]
    result = blut(
        "train", "--method", "sft", "--max-steps", "4", "--lr", "0.002", "--detach", *sets,
        env={"BLUT_HOME": str(home)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    job = JobStore(home).get(result.stdout.strip())
    view = wait_for_job(job, timeout=150)
    log = job.log_path("sft")
    assert view.state == "succeeded", (view, log.read_text()[-3000:] if log.exists() else "")
    assert json.loads(job.plan_path.read_text())["name"] == "llm-sft"
    assert all(s.contained for s in view.stages.values())
    losses = read_metrics(job.dir / "stages" / "sft" / "metrics").column("loss").to_pylist()
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    model = Cache(home).object_path(view.stages["sft"].artifact or "")
    summary = json.loads((model / "train.json").read_text())
    assert (summary["steps"], summary["args"]["lr"]) == (4, 0.002)


def test_sft_over_its_ceiling_fails_oom_and_caches_nothing(home: Path) -> None:
    recipe = find("llm-sft")
    sets = [*DATA, "sft.max_steps=5", "sft.threads=1", "sft.memory_max=150M"]
    (args,) = recipe.resolve(sets=sets)
    job, warning = submit_recipe(JobStore(home), recipe, args)
    assert warning is None
    view = wait_for_job(job, timeout=150)
    sft = view.stages["sft"]
    assert view.state == "failed" and view.reason == "oom", view
    assert (sft.state, sft.reason, sft.memory_max) == ("failed", "oom", 150 << 20), sft
    assert {view.stages[s].state for s in ("model", "tokenize")} == {"cached"}
    parts = KeyParts.from_dict(json.loads((job.dir / "stages" / "sft" / "key.json").read_text()))
    cache = Cache(home)
    assert cache.get(parts.key, touch=False) is None
    assert sft.artifact is None
    assert not (job.dir / "stages" / "sft" / "staging").exists()
