"""A stage on Ray through blut against a bare Ray job of the same argv, in the same run.

    make bench            (or: python tests/bench/bench_ray.py [N])

Starts the tests' two-node cluster on 127.0.0.1 (tests/raycluster.py) and prints medians
and ratios, the variants interleaved:
- the containment path: `RayLauncher.launch` + `wait` of `/bin/true` (spec file, Ray job,
  noderun, a systemd unit with MemoryMax on the node, its result record) against the Jobs
  API's own `submit_job` of `/bin/true` polled to its end. Goal: ≤ 1.2×.
- the whole command: `blut run --launcher ray -- /bin/true` (the CLI, the executor unit,
  the stage as above, following it to its end) against `ray job submit -- /bin/true`
  (Ray's CLI, which also waits for the end).
- a fan-out plan of M stages of `/bin/true` (no edges; default 100, the second argument):
  its job's wall time on the cluster against the same plan on the local launcher.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.raycluster

from clirun import blut, cli_env, machine, median_ms, user_manager_env, verdict

from blut.containment.ray import RayLauncher
from blut.containment.select import launcher_for
from blut.containment.spec import Placement, UnitSpec
from tests.raycluster import RayCluster, start

GOAL = 1.2
MEMORY_MAX = 200 << 20


def bare_job(cluster: RayCluster) -> float:
    """The Jobs API alone: submit `/bin/true`, poll until it ended."""
    client = cluster.client()
    begin = time.perf_counter()
    job = client.submit_job(entrypoint="/bin/true", entrypoint_num_cpus=1)  # type: ignore[attr-defined]
    while not client.get_job_status(job).is_terminal():  # type: ignore[attr-defined]
        time.sleep(0.05)
    return time.perf_counter() - begin


def blut_stage(launcher: RayLauncher, scratch: Path, i: int) -> float:
    """The same through RayLauncher: a contained unit on a node, its record read back."""
    spec = UnitSpec(
        name=f"blut-bench-ray-{os.getpid()}-{i}",
        argv=["/bin/true"],
        log_path=scratch / f"log-{i}",
        result_path=scratch / f"result-{i}",
        env={"PATH": "/usr/bin:/bin"},
        memory_max=MEMORY_MAX,
        placement=Placement(cpus=1),
    )
    begin = time.perf_counter()
    outcome = launcher.wait(launcher.launch(spec))
    took = time.perf_counter() - begin
    assert outcome is not None and outcome.ok, outcome
    return took


def timed(argv: list[str], env: dict[str, str]) -> float:
    begin = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode()[-500:]
    return time.perf_counter() - begin


def fan_out(home: Path, stages: int, address: str | None) -> float:
    """Submit a plan of ``stages`` independent `/bin/true` stages (on ``address``'s cluster,
    or locally) and wait for its job to end; its wall time."""
    from blut.containment.envfile import write_env_file
    from blut.containment.select import choose_launcher
    from blut.jobs.artifact import Kind
    from blut.jobs.cluster import Cluster
    from blut.jobs.environment import job_env
    from blut.jobs.lifecycle import start_executor
    from blut.jobs.plan import Plan
    from blut.jobs.stagedef import StageDef
    from blut.jobs.store import JobStore

    defs = {
        f"s{i:03d}": StageDef(name=f"s{i:03d}", output=Kind.NONE, argv=("/bin/true",))
        for i in range(stages)
    }
    plan = Plan("fan-out", defs, {name: () for name in defs})
    launcher, _ = choose_launcher(contained=True)
    where = Cluster(address).record() if address else {}
    begin = time.perf_counter()
    with JobStore(home).creating(
        name="fan-out",
        argv=["fan-out"],
        cwd=str(home),
        launcher=launcher.kind,
        stages=plan.order(),
        **where,
    ) as job:
        plan.save(job.plan_path)
        write_env_file(job.paths.env, job_env(os.environ))
        start_executor(job, launcher)
    launcher.close()
    while not job.view().terminal:
        time.sleep(0.1)
    took = time.perf_counter() - begin
    assert job.view().state == "succeeded", job.view()
    return took


def measure(runs: int, cluster: RayCluster, scratch: Path) -> None:
    env = cli_env(scratch / "home", **cluster.env)
    ray_cli = str(Path(sys.executable).with_name("ray"))
    launcher = RayLauncher(cluster.address, launcher_for("systemd"))
    path: dict[str, list[float]] = {"ray": [], "blut": []}
    whole: dict[str, list[float]] = {"ray": [], "blut": []}
    try:
        for i in range(runs):
            path["ray"].append(bare_job(cluster))
            path["blut"].append(blut_stage(launcher, scratch, i))
            submit = [ray_cli, "job", "submit", "--address", cluster.address, "--", "/bin/true"]
            whole["ray"].append(timed(submit, env))
            run = ["run", "--launcher", "ray", "--ray-address", cluster.address, "--", "/bin/true"]
            whole["blut"].append(timed(blut(*run), env))
    finally:
        launcher.close()
    print(machine())
    for title, found in (("containment path", path), ("whole command", whole)):
        ray, ours = median_ms(found["ray"]), median_ms(found["blut"])
        ratio = ours / ray
        print(f"{title}: bare Ray job {ray:.0f} ms, through blut {ours:.0f} ms, {ratio:.2f}×")
        if title == "containment path":
            print(f"  goal ≤ {GOAL}×: {verdict(ratio, GOAL)}")


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    stages = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    os.environ.update(user_manager_env())
    cluster = start()
    try:
        with tempfile.TemporaryDirectory(prefix="blut-bench-ray-") as tmp:
            measure(runs, cluster, Path(tmp))
            local = fan_out(Path(tmp) / "local", stages, None)
            ray = fan_out(Path(tmp) / "ray", stages, cluster.address)
            print(
                f"fan-out of {stages} stages: local {local:.1f} s, on Ray {ray:.1f} s, "
                f"{ray / local:.2f}×"
            )
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
