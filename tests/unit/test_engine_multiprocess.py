"""Multi-process stages: when the executor wraps a stage's argv in torchrun (fake launcher)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from blut.jobs.artifact import Kind
from blut.jobs.cache import Cache
from blut.jobs.errors import JobsError
from blut.jobs.plan import Plan, PlanBuilder
from blut.jobs.recipes import find
from blut.jobs.slots import Gpu, GpuPool
from blut.jobs.stagedef import Resources, StageDef, launch_argv, payload_argv
from tests.unit.test_engine_executor import FakeLauncher, execute, write_output

PLAIN = (sys.executable, "-m", "blut.payload", "train")


def torchrun(n: int) -> tuple[str, ...]:
    return (
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={n}",
        "-m",
        "blut.payload",
        "train",
    )


def plan(processes: int = 1, gpu: int = 0, cpu_fallback: bool = False) -> Plan:
    stage = StageDef(
        name="train",
        output=Kind.MODEL,
        argv=payload_argv("train"),
        resources=Resources(gpu=gpu, cpu_fallback=cpu_fallback),
        processes=processes,
    )
    return PlanBuilder("p").start(stage).finish()


def pool(tmp_path: Path, count: int) -> GpuPool:
    return GpuPool(tmp_path / "locks", lambda: [Gpu(i, 80) for i in range(count)])


@pytest.mark.parametrize(
    ("processes", "gpu", "machine_gpus", "argv", "visible"),
    [
        (1, 0, 0, PLAIN, ""),  # the default: one process, unwrapped
        (2, 0, 0, torchrun(2), ""),  # CPU DDP (gloo)
        (3, 1, 0, torchrun(3), ""),  # a GPU stage fell back to the CPU: processes decide
        (1, 2, 2, torchrun(2), "0,1"),  # two GPUs allocated: one process each
        (4, 2, 2, torchrun(2), "0,1"),  # with GPUs the GPU count decides
        (2, 1, 2, PLAIN, "0"),  # one GPU: one process
    ],
)
def test_argv_is_wrapped_exactly_when_several_processes_run(
    tmp_path: Path,
    processes: int,
    gpu: int,
    machine_gpus: int,
    argv: tuple[str, ...],
    visible: str,
) -> None:
    launcher = FakeLauncher(write_output)
    job, rc = execute(
        tmp_path,
        plan(processes, gpu, cpu_fallback=True),
        launcher,
        gpus=pool(tmp_path, machine_gpus),
    )
    assert rc == 0
    (spec,) = launcher.launched
    assert spec.argv == argv
    assert spec.env["CUDA_VISIBLE_DEVICES"] == visible
    record = json.loads((job.dir / "stages" / "train" / "launch.json").read_text())
    assert record["processes"] == (1 if argv == PLAIN else int(argv[4].split("=")[1]))
    logged = "processes under torchrun" in job.status_path.read_text()
    assert logged == (argv != PLAIN)


def test_process_count_is_not_part_of_the_cache_key(tmp_path: Path) -> None:
    execute(tmp_path, plan(1), FakeLauncher(write_output))
    again = FakeLauncher(write_output)
    job, rc = execute(tmp_path, plan(2), again)
    assert rc == 0 and again.launched == []
    assert job.view().stages["train"].state == "cached"
    assert len(Cache(tmp_path).entries()) == 1


def test_processes_round_trip_through_plan_json_and_are_validated() -> None:
    loaded = Plan.from_dict(json.loads(json.dumps(plan(3).to_dict())))
    assert loaded.stages["train"].processes == 3
    old = plan().to_dict()
    del old["stages"][0]["processes"]  # a plan.json from before the field existed
    assert Plan.from_dict(old).stages["train"].processes == 1
    with pytest.raises(JobsError, match="processes must be >= 1"):
        plan(0)
    with pytest.raises(JobsError, match="processes must be an integer"):
        plan(True)
    with pytest.raises(JobsError, match="only a `python -m MODULE` stage"):
        StageDef(name="x", output=Kind.REPORT, argv=("/bin/true",), processes=2)
    assert launch_argv(plan().stages["train"], 1) == PLAIN


def test_quant_train_offers_processes_outside_the_program_args() -> None:
    recipe = find("quant-train")
    (args,) = recipe.resolve(sets=["train.processes=2", "train.epochs=1"], environ={})
    built = recipe.build(args)
    train = built.stages["train"]
    assert train.processes == 2 and "processes" not in train.args
    assert built.stages["encode"].processes == 1
    assert "processes" not in recipe.args_schema["properties"]["encode"]["properties"]
    (default,) = recipe.resolve(sets=["train.epochs=1"], environ={})
    assert recipe.build(default).stages["train"].args == train.args  # same cache key args
