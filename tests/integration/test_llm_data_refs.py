"""Dataset args by reference, in real units: a generate job's completions are the next
recipe's SFT data (`tokenize.source=job:ID`) and prompts (`prompts.source=job:ID:generate`),
keyed by the output's hash."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytest.importorskip("trl", reason="needs the llm extra: pip install 'blut[llm]'")

from blut.jobs.cache import Cache
from blut.jobs.store import Job, JobStore
from tests.conftest import blut, wait_for_job

pytestmark = pytest.mark.systemd

MODEL = ("model.threads=1",)
GENERATE = (
    *MODEL, "prompts.examples=6", "generate.max_new_tokens=6", "generate.temperature=1.0",
    "generate.threads=1",
)  # fmt: skip


def run(home: Path, recipe: str, *sets: str) -> Job:
    args = [a for s in sets for a in ("--set", s)]
    result = blut("recipe", "run", recipe, "--detach", *args, env={"BLUT_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    job = JobStore(home).get(result.stdout.strip())
    view = wait_for_job(job, timeout=200)
    stages = {name: s.state for name, s in view.stages.items()}
    assert view.state == "succeeded", (stages, view.detail)
    return job


def test_a_generate_jobs_completions_feed_sft_and_generate(tmp_path: Path) -> None:
    home = tmp_path / "blut-home"
    gen = run(home, "llm-generate", *GENERATE)
    digest = gen.view().stages["generate"].artifact or ""
    table = pq.read_table(Cache(home).object_path(digest) / "completions.parquet").to_pylist()
    assert len(table) == 6 and all(row["completion"] for row in table)

    sft = run(home, "llm-sft", *MODEL, f"tokenize.source=job:{gen.id}", "sft.max_steps=2",
              "sft.batch_size=2", "sft.threads=1")  # fmt: skip
    args = json.loads(sft.paths.args.read_text())
    assert args["tokenize"]["source"] == f"artifact:{digest}"
    key = json.loads((sft.dir / "stages" / "tokenize" / "key.json").read_text())
    assert key["sources"] == {"source": digest} and "/" not in json.dumps(key["args"])
    assert "tokenize: 6 examples" in sft.log_path("tokenize").read_text()

    again = run(home, "llm-generate", *GENERATE, f"prompts.source=job:{gen.id}:generate")
    rows = pq.read_table(
        Cache(home).object_path(again.view().stages["prompts"].artifact or "") / "prompts.parquet"
    ).to_pylist()
    assert [r["prompt"] for r in rows] == [r["prompt"] for r in table]

    bad = blut("recipe", "run", "llm-dpo", "--set", f"prefs.source=job:{gen.id}",
               env={"BLUT_HOME": str(home)})  # fmt: skip
    assert bad.returncode == 2
    assert "prefs.source" in bad.stderr and "no preferences output" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
