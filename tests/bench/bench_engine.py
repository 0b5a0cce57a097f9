"""Engine overheads, each against a baseline measured in the same run.

    python tests/bench/bench_engine.py [RUNS] [HASH_MIB]

- fully cached re-run of a 5-stage plan, against ``python -c "import blut"``
  (goal ≤ 2×), three ways: as blut does it now, in the submitting process
  (`finish_if_cached`: no unit starts); as a fresh executor process
  (``python -m blut.jobs.executor JOB_DIR``, what `blut plan resume` starts when
  something must run); and the floor any fresh process importing ``typing`` and
  ``dataclasses`` pays. Sources are byte-compiled first: this machine sets
  PYTHONDONTWRITEBYTECODE=1, an installed blut has its bytecode.
- `blut recipe run smoke` fully cached, end to end, against `blut --help` (the
  command line's own start-up).
- cache hashing of HASH_MIB (default 1024) MiB in 8 files: `hash_dir` against raw
  multithreaded blake3 (``update_mmap``) over the same files. Goal: ≥ 0.85× its speed.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from blake3 import blake3
from clirun import compile_bytecode

from blut.containment.systemd import SystemdLauncher
from blut.containment.usermanager import ensure_user_manager
from blut.jobs.api import submit_recipe
from blut.jobs.artifact import Kind, hash_dir
from blut.jobs.cache import Cache
from blut.jobs.executor import Executor, finish_if_cached
from blut.jobs.plan import Plan, PlanBuilder
from blut.jobs.recipes import find
from blut.jobs.slots import GpuPool
from blut.jobs.stagedef import StageDef, payload_argv
from blut.jobs.store import Job, JobStore


def five_stages() -> Plan:
    def power(name: str, exponent: int) -> StageDef:
        return StageDef(
            name=name,
            output=Kind.NUMBERS,
            inputs=(Kind.NUMBERS,),
            argv=payload_argv("smoke-power"),
            args={"exponent": exponent},
        )

    make = StageDef(
        name="make", output=Kind.NUMBERS, argv=payload_argv("smoke-make"), args={"count": 8}
    )
    total = StageDef(
        name="total",
        output=Kind.REPORT,
        inputs=(Kind.NUMBERS,) * 3,
        argv=payload_argv("smoke-total"),
    )
    return (
        PlanBuilder("bench")
        .start(make)
        .fan_out(power("square", 2), power("cube", 3), power("quad", 4))
        .then(total)
        .finish()
    )


def new_job(store: JobStore, plan: Plan) -> Job:
    job = store.create(
        name="bench", argv=["bench"], cwd=str(store.home), launcher="systemd", stages=plan.order()
    )
    plan.save(job.plan_path)
    return job


def timed_run(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def bench_cached_rerun(runs: int, scratch: Path) -> None:
    compile_bytecode()
    home = scratch / "home"
    env = {**os.environ, "BLUT_HOME": str(home)}
    store, plan = JobStore(home), five_stages()
    cache = Cache(home)
    first = Executor(
        new_job(store, plan), plan, SystemdLauncher, cache, gpus=GpuPool(cache.locks, list)
    )
    assert first.run() == 0, "the filling run failed"
    python = [sys.executable, "-c"]
    floor = "import blut, json, sqlite3, blake3, typing, dataclasses"
    times: dict[str, list[float]] = {"base": [], "here": [], "process": [], "floor": []}
    for _ in range(runs):
        times["base"].append(timed_run([*python, "import blut"], env))
        job = new_job(store, plan)
        start = time.perf_counter()
        assert finish_if_cached(job, plan, cache)
        times["here"].append(time.perf_counter() - start)
        job = new_job(store, plan)
        argv = [sys.executable, "-m", "blut.jobs.executor", str(job.dir)]
        times["process"].append(timed_run(argv, env))
        assert job.view().state == "succeeded"
        times["floor"].append(timed_run([*python, floor], env))
    base = ms(times["base"])
    print(f"cached 5-stage re-run, against import blut {base:.0f} ms (goal ≤ 2):")
    for name, label in (
        ("here", "in the submitting process (blut's way)"),
        ("process", "a fresh executor process"),
        ("floor", "floor: a process importing typing, dataclasses, json, sqlite3, blake3"),
    ):
        value = ms(times[name])
        print(f"  {label:<70} {value:6.1f} ms → ratio {value / base:.2f}")


def bench_cli_rerun(runs: int, scratch: Path) -> None:
    home = scratch / "cli-home"
    env = {**os.environ, "BLUT_HOME": str(home)}
    recipe = find("smoke")
    (args,) = recipe.resolve()
    job, _ = submit_recipe(JobStore(home), recipe, args)
    while not job.view().terminal:
        time.sleep(0.05)
    assert job.view().state == "succeeded", "the filling run failed"
    blut = [sys.executable, "-m", "blut"]
    rerun, helped = [], []
    for _ in range(max(runs // 2, 3)):
        rerun.append(timed_run([*blut, "recipe", "run", "smoke"], env))
        helped.append(timed_run([*blut, "--help"], env))
    r, h = ms(rerun), ms(helped)
    print(
        f"blut recipe run smoke, fully cached: {r:.0f} ms vs blut --help {h:.0f} ms "
        f"→ ratio {r / h:.2f} (the command line's start-up dominates)"
    )


def bench_hashing(mib: int, scratch: Path) -> None:
    root = scratch / "data"
    root.mkdir()
    chunk = os.urandom(1 << 20)
    for i in range(8):
        with open(root / f"part-{i}.bin", "wb") as f:
            for _ in range(mib // 8):
                f.write(chunk)
    files = sorted(root.iterdir())

    def raw() -> None:
        for path in files:
            blake3(max_threads=blake3.AUTO).update_mmap(path)

    def ours() -> None:
        hash_dir(root)

    times: dict[str, list[float]] = {"raw": [], "ours": []}
    for _ in range(3):
        for name, fn in (("raw", raw), ("ours", ours)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    r, o = min(times["raw"]), min(times["ours"])
    print(
        f"hash {mib} MiB: hash_dir {o:.3f} s vs raw blake3 {r:.3f} s → speed ratio {r / o:.2f} (goal ≥ 0.85)"
    )


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    mib = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    os.environ.update(ensure_user_manager())
    with tempfile.TemporaryDirectory(prefix="blut-bench-") as tmp:
        bench_cached_rerun(runs, Path(tmp))
        bench_cli_rerun(runs, Path(tmp))
        bench_hashing(mib, Path(tmp))


if __name__ == "__main__":
    main()
