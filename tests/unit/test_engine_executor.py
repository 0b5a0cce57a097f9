"""Executor scheduling logic against a fake Launcher (the real thing: tests/integration)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest

from blut.containment.result import outcome_from_record, read_record, write_record
from blut.containment.spec import Handle, Outcome, UnitSpec, UnitState
from blut.jobs.artifact import Kind
from blut.jobs.cache import Cache
from blut.jobs.executor import Executor
from blut.jobs.plan import Plan, PlanBuilder
from blut.jobs.recipes import find
from blut.jobs.slots import Gpu, GpuPool, Slots
from blut.jobs.stagedef import Resources, StageDef, payload_argv
from blut.jobs.store import Job, JobStore

Behaviour = Callable[[UnitSpec], int]


class FakeLauncher:
    """Runs a stage at launch time by calling ``behaviour`` (writes staging, returns exit code)."""

    kind = "fake"

    def __init__(self, behaviour: Behaviour, hold: set[str] | None = None) -> None:
        self.behaviour = behaviour
        self.launched: list[UnitSpec] = []
        self.stopped: list[str] = []
        self.hold = hold or set()
        self.running: set[str] = set()

    def launch(self, spec: UnitSpec) -> Handle:
        self.launched.append(spec)
        spec.result_path.unlink(missing_ok=True)
        if spec.name in self.hold:
            self.running.add(spec.name)
        else:
            self._finish(spec)
        return Handle(spec.name, self.kind, spec.result_path)

    def _finish(self, spec: UnitSpec) -> None:
        code = self.behaviour(spec)
        write_record(
            spec.result_path,
            {
                "service_result": "success" if code == 0 else "exit-code",
                "exit_code": "exited",
                "exit_status": str(code),
            },
        )

    def state(self, handle: Handle) -> UnitState:
        record = read_record(handle.result_path)
        if record is not None:
            return UnitState("finished", outcome_from_record(record))
        if handle.name in self.running:
            return UnitState("running", memory_current=1 << 20)
        return UnitState("unknown")

    def wait(self, handle: Handle, timeout: float | None = None) -> Outcome | None:
        raise NotImplementedError

    def stop(self, handle: Handle) -> None:
        self.stopped.append(handle.name)
        if handle.name in self.running:
            self.running.discard(handle.name)
            write_record(
                handle.result_path,
                {"service_result": "signal", "exit_code": "killed", "exit_status": "TERM"},
            )

    def find(self, name: str, result_path: Path) -> Handle | None:
        if name in self.running or result_path.exists():
            return Handle(name, self.kind, result_path)
        return None

    def memory_limit(self, handle: Handle) -> Literal["gone"]:
        return "gone"

    def close(self) -> None:
        pass


def write_output(spec: UnitSpec) -> int:
    staging = Path(spec.env["BLUT_JOB_DIR"]) / "stages" / spec.env["BLUT_STAGE_NAME"] / "staging"
    inputs = json.loads((staging.parent / "inputs.json").read_text())
    args = json.loads((staging.parent / "args.json").read_text())
    (staging / "out.json").write_text(
        json.dumps({"args": args, "inputs": [i["hash"] for i in inputs]})
    )
    return 3 if args.get("fail") else 0


def make_job(home: Path, plan: Plan) -> Job:
    job = JobStore(home).create(
        name=plan.name, argv=["x"], cwd=str(home), launcher="fake", stages=plan.order()
    )
    plan.save(job.plan_path)
    return job


def execute(
    home: Path, plan: Plan, launcher: FakeLauncher, job: Job | None = None, **kw: object
) -> tuple[Job, int]:
    job = job or make_job(home, plan)
    cache = Cache(home)
    gpus = kw.pop("gpus", GpuPool(cache.locks, list))
    ex = Executor(job, plan, lambda: launcher, cache, gpus=gpus, **kw)  # type: ignore[arg-type]
    return job, ex.run()


def smoke(**sets: object) -> Plan:
    recipe = find("smoke")
    (args,) = recipe.resolve(
        sets=[f"{k.replace('__', '.')}={v}" for k, v in sets.items()], environ={}
    )
    return recipe.build(args)


def test_runs_in_order_and_passes_cache_objects_as_inputs(tmp_path: Path) -> None:
    launcher = FakeLauncher(write_output)
    job, rc = execute(tmp_path, smoke(), launcher)
    assert rc == 0 and job.view().state == "succeeded"
    assert [s.name.rsplit("-", 1)[1] for s in launcher.launched] == [
        "make",
        "square",
        "cube",
        "total",
    ]
    inputs = json.loads((job.dir / "stages" / "total" / "inputs.json").read_text())
    assert [i["stage"] for i in inputs] == ["square", "cube"]
    assert all(Path(i["path"]).is_dir() and i["kind"] == "numbers" for i in inputs)
    spec = launcher.launched[0]
    assert spec.env["CUDA_VISIBLE_DEVICES"] == "" and spec.memory_max == 256 << 20
    key = json.loads((job.dir / "stages" / "make" / "key.json").read_text())
    assert key["stage"] == "make" and key["args"]["count"] == 8


def test_second_run_is_all_cache_hits(tmp_path: Path) -> None:
    execute(tmp_path, smoke(), FakeLauncher(write_output))
    launcher = FakeLauncher(write_output)
    job, rc = execute(tmp_path, smoke(), launcher)
    assert rc == 0 and launcher.launched == []
    assert {s.state for s in job.view().stages.values()} == {"cached"}


def test_changing_one_arg_reruns_only_what_depends_on_it(tmp_path: Path) -> None:
    execute(tmp_path, smoke(), FakeLauncher(write_output))
    launcher = FakeLauncher(write_output)
    execute(tmp_path, smoke(cube__sleep=0.01), launcher)
    assert [s.name.rsplit("-", 1)[1] for s in launcher.launched] == ["cube", "total"]


def test_failure_skips_dependents_and_ends_with_first_cause(tmp_path: Path) -> None:
    launcher = FakeLauncher(write_output)
    job, rc = execute(tmp_path, smoke(square__fail="true"), launcher)
    view = job.view()
    assert rc == 1 and view.state == "failed" and view.detail == "stage square: exited with code 3"
    assert view.stages["cube"].state == "succeeded"
    assert view.stages["total"].reason == "skipped"
    assert view.stages["total"].detail == "upstream stage square failed"
    assert not (job.dir / "stages" / "square" / "staging").exists()


def gpu_plan(gpu: int = 1, cpu_fallback: bool = False) -> Plan:
    stage = StageDef(
        name="train",
        output=Kind.MODEL,
        argv=payload_argv("train"),
        resources=Resources(gpu=gpu, cpu_fallback=cpu_fallback),
    )
    return PlanBuilder("g").start(stage).finish()


def test_gpu_stage_without_gpu_fails_fast(tmp_path: Path) -> None:
    launcher = FakeLauncher(write_output)
    job, rc = execute(tmp_path, gpu_plan(), launcher)
    assert rc == 1 and launcher.launched == []
    assert (
        "needs 1 GPU(s) but this machine has 0 (no NVIDIA driver/NVML found)" in job.view().detail
    )


def test_gpu_stage_may_fall_back_to_cpu(tmp_path: Path) -> None:
    launcher = FakeLauncher(write_output)
    _job, rc = execute(tmp_path, gpu_plan(cpu_fallback=True), launcher)
    assert rc == 0 and launcher.launched[0].env["CUDA_VISIBLE_DEVICES"] == ""


def test_gpus_are_allocated_machine_wide(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    pool = GpuPool(locks, lambda: [Gpu(1, 80), Gpu(0, 40)])
    other_job = GpuPool(locks, lambda: [Gpu(1, 80), Gpu(0, 40)])
    assert other_job.allocate(1) == [1]
    launcher = FakeLauncher(write_output)
    _job, rc = execute(tmp_path, gpu_plan(), launcher, gpus=pool)
    assert rc == 0 and launcher.launched[0].env["CUDA_VISIBLE_DEVICES"] == "0"
    assert pool.allocate(2) is None
    other_job.release([1])
    assert pool.allocate(2) == [1, 0]


def test_stage_larger_than_capacity_fails_fast(tmp_path: Path) -> None:
    stage = StageDef(
        name="big", output=Kind.REPORT, argv=payload_argv("x"), resources=Resources(cpu=64)
    )
    job, rc = execute(
        tmp_path,
        PlanBuilder("b").start(stage).finish(),
        FakeLauncher(write_output),
        slots=Slots(cpu=2),
    )
    assert rc == 1 and "needs 64 cpu slots but the job has only 2" in job.view().detail


def test_resume_commits_a_unit_that_finished_unwatched(tmp_path: Path) -> None:
    plan = smoke()
    first = FakeLauncher(write_output)
    job, _ = execute(tmp_path, plan, first)
    # Simulate: executor died after `total` finished but before it committed.
    cache = Cache(tmp_path)
    entry = next(e for e in cache.entries() if e.stage == "total")
    cache._db.execute("DELETE FROM entries WHERE key=?", (entry.key,))
    staging = job.dir / "stages" / "total" / "staging"
    staging.mkdir()
    (staging / "out.json").write_text("recovered")
    again = FakeLauncher(write_output)
    _job, rc = execute(tmp_path, plan, again, job=job)
    assert rc == 0 and again.launched == []
    assert (
        cache.object_path(Cache(tmp_path).get(entry.key).hash) / "out.json"
    ).read_text() == "recovered"  # type: ignore[union-attr]


def test_cancel_stops_running_units(tmp_path: Path) -> None:
    plan = smoke()
    job = make_job(tmp_path, plan)
    launcher = FakeLauncher(write_output, hold={f"blut-{job.id}-make"})
    cache = Cache(tmp_path)
    ex = Executor(job, plan, lambda: launcher, cache, gpus=GpuPool(cache.locks, list))
    original = ex._poll

    def poll_then_cancel() -> None:
        original()
        if launcher.running:
            ex.cancel = True

    ex._poll = poll_then_cancel  # type: ignore[method-assign]
    assert ex.run() == 1
    view = job.view()
    assert view.state == "cancelled" and view.stages["make"].reason == "cancelled"
    assert launcher.stopped == [f"blut-{job.id}-make"]
    assert cache.entries() == []


def test_one_executor_per_job(tmp_path: Path) -> None:
    plan = smoke()
    job = make_job(tmp_path, plan)
    cache = Cache(tmp_path)
    with cache.hold(job.id):
        _job, rc = execute(tmp_path, plan, FakeLauncher(write_output), job=job)
    assert rc == 2


@pytest.mark.parametrize("name", ["smoke"])
def test_catalog(name: str) -> None:
    from blut.jobs.errors import UsageError
    from blut.jobs.recipes import all_recipes, by_category, swap_candidates

    recipe = find(name)
    assert recipe in all_recipes() and recipe in by_category()[recipe.category]
    assert swap_candidates(name) == [
        r
        for r in all_recipes()
        if r.name != name
        and r.output == recipe.output
        and sorted(r.inputs) == sorted(recipe.inputs)
    ]
    with pytest.raises(UsageError, match="did you mean 'smoke'"):
        find("smok")
    assert recipe.defaults()["make"]["count"] == 8
    plan = recipe.build(recipe.defaults())
    assert plan.deps["total"] == ("square", "cube")
    assert plan.stages["cube"].args["exponent"] == 3


def test_plan_rows_and_explain(tmp_path: Path) -> None:
    from blut.jobs.planview import explain, stage_rows

    first, _ = execute(tmp_path, smoke(), FakeLauncher(write_output))
    job, _ = execute(tmp_path, smoke(make__count=9, total__fail="true"), FakeLauncher(write_output))
    rows = {r.name: r for r in stage_rows(job)}
    assert rows["make"].state == "succeeded" and rows["make"].key and rows["make"].artifact
    assert rows["total"].state == "failed" and rows["total"].after == ("square", "cube")
    assert rows["make"].to_dict()["seconds"] is not None
    cache = Cache(tmp_path)
    ran = explain(cache, job, "make")  # why it ran: against the closest other entry
    assert ran[0].startswith("stage make: computed by this job") and ran[1:] == [
        "  arg count: 9 now, 8 cached"
    ]
    cache._db.execute("DELETE FROM entries WHERE stage='make' AND job=?", (first.id,))
    lines = explain(cache, first, "make")
    assert lines[1] == "  arg count: 8 now, 9 cached"


def test_cpu_only_plans_never_probe_gpus_or_need_a_launcher_when_cached(tmp_path: Path) -> None:
    def no_probe() -> list[Gpu]:
        raise AssertionError("GPU discovery must not run for CPU-only stages")

    cache = Cache(tmp_path)
    execute(tmp_path, smoke(), FakeLauncher(write_output), gpus=GpuPool(cache.locks, no_probe))
    plan = smoke()
    job = make_job(tmp_path, plan)

    def no_launcher() -> FakeLauncher:
        raise AssertionError("a fully cached run must not create a launcher")

    ex = Executor(job, plan, no_launcher, cache, gpus=GpuPool(cache.locks, no_probe))
    assert ex.run() == 0
    ex.close()


def test_discover_gpus_without_a_driver_is_empty() -> None:
    from blut.jobs.slots import discover_gpus

    assert isinstance(discover_gpus(), list)
