"""An llm-sft snapshot for real: tiny-model, tokenize and sft in systemd units, the sft stage
killed after step 4, snapshotted, moved to a fresh home and continued there to step 6 with
weights byte-equal to an uninterrupted run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="needs the llm extra: pip install 'blut[llm]'")

from blut.jobs.api import submit_recipe
from blut.jobs.cache import Cache
from blut.jobs.recipes import find
from blut.jobs.store import Job, JobStore
from blut.payload.llm.common import KILL_ENV
from blut.status.metrics import read_metrics
from tests.conftest import wait_for_job
from tests.integration.test_snapshot_restore import cli

pytestmark = pytest.mark.systemd

SMALL = (
    "model.threads=1", "tokenize.examples=32", "sft.max_steps=6", "sft.save_every=2",
    "sft.batch_size=4", "sft.threads=1",
)  # fmt: skip


def llm_sft(home: Path) -> Job:
    recipe = find("llm-sft")
    (args,) = recipe.resolve(sets=SMALL)
    job, _warning = submit_recipe(JobStore(home), recipe, args)
    return job


def weights(home: Path, job: Job) -> str:
    model = Cache(home).object_path(job.view().stages["sft"].artifact or "")
    return hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest()


def test_an_llm_snapshot_continues_bit_identically_on_a_fresh_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    homes = {name: tmp_path / name for name in ("whole", "first", "fresh")}
    monkeypatch.setenv(KILL_ENV, "4")  # the job's environment: SIGKILL after step 4's save
    first = llm_sft(homes["first"])
    monkeypatch.delenv(KILL_ENV)
    whole = llm_sft(homes["whole"])
    for job in (first, whole):
        wait_for_job(job, timeout=400)
    assert whole.view().state == "succeeded", whole.view()
    assert first.view().stages["sft"].state == "failed"

    snap = cli(homes["first"], "snapshot", "create", first.id).strip()
    assert cli(homes["first"], "snapshot", "create", first.id, "sft", "--step", "4").strip() == (
        snap
    )
    assert f"{snap[:12]}  llm-sft/sft step 4" in cli(homes["first"], "snapshot", "list")
    bundle = tmp_path / "snap.tar"
    cli(homes["first"], "snapshot", "export", snap, str(bundle))
    assert cli(homes["fresh"], "snapshot", "import", str(bundle)).strip() == snap

    out = cli(homes["fresh"], "recipe", "run", "llm-sft", "--from-snapshot", snap, "-d")
    continued = JobStore(homes["fresh"]).get(out.strip())
    view = wait_for_job(continued, timeout=400)
    log = continued.log_path("sft").read_text()
    assert view.state == "succeeded", (view, log[-3000:])
    assert f"sft: continuing snapshot {snap[:12]} from checkpoint-4" in log
    assert weights(homes["fresh"], continued) == weights(homes["whole"], whole)  # byte-equal
    record = json.loads(continued.paths.spec.read_text())["snapshot"]
    assert (record["stage"], record["step"], record["branch"]) == ("sft", 4, False)
    steps = read_metrics(continued.paths.stage("sft").metrics).column("step").to_pylist()
    assert sorted(steps) == [1, 2, 3, 4, 5, 6]
