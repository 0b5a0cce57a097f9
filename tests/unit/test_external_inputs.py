"""External inputs (datasets, model dirs) are keyed by their content, resolved where submitted.

Jobs go through the real submit path (`submit_points`: resolution, validation,
the job folder) and the real executor and cache; only the launcher is a fake
that runs stages in this process: the real payload program for the stages a
test names (``encode`` on a small CSV, ``tiny-model`` referencing a model
dir), a stand-in that writes its args and inputs for the others.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from blut.containment.spec import UnitSpec
from blut.jobs import lifecycle
from blut.jobs.api import submit_points
from blut.jobs.cache import Cache
from blut.jobs.config import ConfigError
from blut.jobs.executor import Executor
from blut.jobs.plan import Plan
from blut.jobs.planview import explain
from blut.jobs.recipes import find
from blut.jobs.slots import GpuPool
from blut.jobs.store import Job, JobStore
from blut.payload.context import StageContext
from blut.payload.data import packaged
from blut.payload.stages import STAGES
from tests.unit.test_engine_executor import FakeLauncher, write_output


class Runs:
    """Every job submitted runs here at once; ``stages`` lists what each run launched."""

    def __init__(self, real: set[str]) -> None:
        self.real = real
        self.stages: list[list[str]] = []

    def behaviour(self, spec: UnitSpec) -> int:
        program = spec.argv[-1]
        if program not in self.real:
            return write_output(spec)
        stage = spec.env["BLUT_STAGE_NAME"]
        with StageContext.from_env(stage, spec.env) as ctx:
            return STAGES[program](ctx, [])

    def finish_or_start(self, job: Job, plan: Plan, launcher: object) -> None:
        fake = FakeLauncher(self.behaviour)
        cache = Cache(job.dir.parent.parent)
        try:
            Executor(job, plan, lambda: fake, cache, gpus=GpuPool(cache.locks, list)).run()  # type: ignore[arg-type]
        finally:
            cache.close()
        self.stages.append([s.name.rsplit("-", 1)[1] for s in fake.launched])


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Runs]]:
    """``runs(*programs)``: jobs submitted from now on run here, those programs for real."""

    def make(*real: str) -> Runs:
        found = Runs(set(real))
        monkeypatch.setattr(lifecycle, "finish_or_start", found.finish_or_start)
        return found

    saved = dict(os.environ)  # the llm payload sets HF_* in its process
    yield make
    os.environ.clear()
    os.environ.update(saved)


def explained(home: Path, job: Job, stage: str) -> list[str]:
    cache = Cache(home)
    try:
        return explain(cache, job, stage)
    finally:
        cache.close()


def submit(home: Path, recipe: str, sets: list[str], cwd: Path) -> Job:
    found = find(recipe)
    (args,) = found.resolve(sets=sets, environ={}, cwd=cwd)
    [job] = submit_points(JobStore(home), found, [args], contained=False, cwd=cwd).jobs
    assert job.view().state == "succeeded", job.view()
    return job


def prices(path: Path, rows: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    packaged.load_stocks(["IBM"]).head(rows).drop(columns=["ticker"]).to_csv(path, index=False)
    return path


def edit_in_place(path: Path, old: bytes, new: bytes) -> None:
    """Rewrite bytes of ``path`` through the same inode, keeping its mtime."""
    before = path.stat()
    data = path.read_bytes()
    assert old in data
    with path.open("r+b") as f:
        f.write(data.replace(old, new, 1))
        f.truncate()
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def last_close(path: Path) -> bytes:
    return path.read_bytes().splitlines()[-1].split(b",")[4]


QUANT = "quant-train"
ALL_QUANT = ["encode", "label", "split", "train", "evaluate"]


def test_editing_a_dataset_csv_in_place_reruns_encode(
    tmp_path: Path, runs: Callable[..., Runs]
) -> None:
    home, data = tmp_path / "home", prices(tmp_path / "data" / "prices.csv")
    ran = runs("encode")
    sets = [f"encode.dataset={data}"]
    submit(home, QUANT, sets, tmp_path)
    submit(home, QUANT, sets, tmp_path)
    close = last_close(data)
    edit_in_place(data, b"," + close + b",", b"," + close + b"1,")
    job = submit(home, QUANT, sets, tmp_path)
    assert ran.stages == [ALL_QUANT, [], ALL_QUANT]
    lines = explained(home, job, "encode")
    assert lines[0].startswith("stage encode: computed by this job")
    assert any(x.startswith(f"  input file encode.dataset ({data}): content ") for x in lines)


def test_a_relative_path_names_the_data_of_the_directory_it_is_given_in(
    tmp_path: Path, runs: Callable[..., Runs]
) -> None:
    home = tmp_path / "home"
    prices(tmp_path / "a" / "prices.csv", rows=90)
    prices(tmp_path / "b" / "prices.csv", rows=100)
    ran = runs("encode")
    first = submit(home, QUANT, ["encode.dataset=prices.csv"], tmp_path / "a")
    second = submit(home, QUANT, ["encode.dataset=prices.csv"], tmp_path / "b")
    assert ran.stages == [ALL_QUANT, ALL_QUANT]
    args = [json.loads(j.paths.args.read_text())["encode"]["dataset"] for j in (first, second)]
    assert args == [str(tmp_path / "a" / "prices.csv"), str(tmp_path / "b" / "prices.csv")]


def test_a_path_that_does_not_exist_is_refused_at_submit(
    tmp_path: Path, runs: Callable[..., Runs]
) -> None:
    ran = runs("encode")
    with pytest.raises(ConfigError) as caught:
        submit(tmp_path / "home", QUANT, ["encode.dataset=nope.csv"], tmp_path)
    assert caught.value.problems == [
        f"encode.dataset: no such file or directory: nope.csv (relative to {tmp_path})"
    ]
    assert ran.stages == [] and JobStore(tmp_path / "home").ids() == []


def model_dir(path: Path) -> Path:
    """A local model dir as tiny-model's ``path`` takes it (config, tokenizer, weights)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (path / "tokenizer.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"\0" * 4096)
    return path


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_editing_a_model_dir_or_a_source_file_reruns_what_reads_it(
    tmp_path: Path, runs: Callable[..., Runs]
) -> None:
    home, model = tmp_path / "home", model_dir(tmp_path / "model")
    source = jsonl(tmp_path / "chats.jsonl", [{"prompt": "hi", "completion": "ho"}])
    ran = runs("tiny-model")
    sets = [f"model.path={model}", f"tokenize.source={source}"]
    submit(home, "llm-sft", sets, tmp_path)
    submit(home, "llm-sft", sets, tmp_path)
    edit_in_place(model / "model.safetensors", b"\0\0", b"\1\1")  # same size, same mtime
    job = submit(home, "llm-sft", sets, tmp_path)
    edit_in_place(source, b"ho", b"hu")
    submit(home, "llm-sft", sets, tmp_path)
    # The model stage's output only names the dir (ref.json: the same bytes each time),
    # yet what reads the model runs again.
    assert ran.stages == [
        ["model", "tokenize", "sft"],
        [],
        ["model", "tokenize", "sft"],
        ["tokenize", "sft"],
    ]
    lines = explained(home, job, "model")
    assert lines[0].startswith("stage model: computed by this job")
    assert f"  input file model.path ({model}): model.safetensors (changed)" in lines
    cache = Cache(home)
    refs = {e.hash for e in cache.entries() if e.stage == "model"}
    cache.close()
    assert len(refs) == 1  # two keys, one ref.json


def test_an_unchanged_input_is_not_hashed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from blut.jobs import filemarks, inputindex

    model = model_dir(tmp_path / "model")
    hashed: list[str] = []
    real = filemarks.hash_entry
    monkeypatch.setattr(filemarks, "hash_entry", lambda p, st: hashed.append(p.name) or real(p, st))
    cache = Cache(tmp_path / "home")
    first = cache.inputs.content(model)
    assert sorted(hashed) == ["config.json", "model.safetensors", "tokenizer.json"]
    hashed.clear()
    assert cache.inputs.content(model) == first and len(hashed) == 3  # just written: racy
    monkeypatch.setattr(inputindex, "RACY_NS", 0)  # as if they were written long ago
    hashed.clear()
    cache.inputs.content(model)
    assert cache.inputs.content(model) == first and len(hashed) == 3  # marked clean, then trusted
    os.utime(model / "config.json", ns=(1, 1))
    hashed.clear()
    assert cache.inputs.content(model) == first and hashed == ["config.json"]
    edit_in_place(model / "model.safetensors", b"\0\0", b"\2\2")  # size and mtime kept
    hashed.clear()
    assert cache.inputs.content(model) != first and hashed == ["model.safetensors"]
    cache.close()


def test_a_relative_path_of_a_job_from_before_is_keyed_in_that_jobs_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from blut.jobs.artifact import hash_file

    data = prices(tmp_path / "a" / "prices.csv")
    prices(tmp_path / "prices.csv", rows=100)  # what the same name means where we stand
    monkeypatch.chdir(tmp_path)
    recipe = find(QUANT)
    (args,) = recipe.resolve(sets=["encode.dataset=prices.csv"], environ={})
    plan = recipe.build(args)  # relative, as jobs were submitted before paths were resolved
    job = JobStore(tmp_path / "home").create(
        name=QUANT, argv=["x"], cwd=str(data.parent), launcher="fake", stages=plan.order()
    )
    plan.save(job.plan_path)
    Runs(set()).finish_or_start(job, plan, None)
    key = json.loads(job.paths.stage("encode").key.read_text())
    assert key["sources"] == {"dataset": hash_file(data)}
