"""`blut run -- /bin/true` end to end, and blut's containment path, against baselines of the same run.

    make bench            (or: python tests/bench/bench_launch.py [N])

Prints medians and ratios:
- the whole command as its user sees it: `blut run -- /bin/true` in a subprocess
  on an 80×24 pseudo-terminal, which follows the job until it ends and then
  exits (driver unit + stage unit + the CLI's start-up), against raw
  `systemd-run --user --wait --quiet /bin/true` and against `blut --help` (the
  command line's own start-up). Goal: ≤ 250 ms. `python -c "import blut.cli"`
  shows the start-up share (the driver unit pays it once more).
- containment path: SystemdLauncher.launch + wait on a kept-open bus, /bin/true
  with MemoryMax, against `systemd-run --user --wait --collect -p MemoryMax=…`.
  Goal: ≤ 1.15×.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from clirun import (
    blut,
    cli_env,
    compile_bytecode,
    machine,
    median_ms,
    run_timed,
    screen_text,
    user_manager_env,
    verdict,
)

from blut.containment.spec import UnitSpec
from blut.containment.systemd import SystemdLauncher

MEMORY_MAX = 200 << 20
GOAL_RUN = 0.250


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    print(compile_bytecode(), flush=True)
    os.environ.update(user_manager_env())
    with tempfile.TemporaryDirectory(prefix="blut-bench-") as tmp:
        measure(runs, Path(tmp))


def measure(runs: int, scratch: Path) -> None:
    """Every variant, interleaved; medians and ratios."""
    env = cli_env(scratch / "home")
    launcher = SystemdLauncher()
    commands = {
        "raw": ["systemd-run", "--user", "--wait", "--quiet", "/bin/true"],
        "raw_max": [
            "systemd-run",
            "--user",
            "--wait",
            "--collect",
            "--quiet",
            "-p",
            f"MemoryMax={MEMORY_MAX}",
            "/bin/true",
        ],
        "cli": blut("run", "--", "/bin/true"),
        "help": blut("--help"),
        "python": [sys.executable, "-c", "import blut.cli"],
    }
    samples: dict[str, list[float]] = {name: [] for name in [*commands, "launcher"]}

    def command(name: str) -> float:
        done = run_timed(commands[name], env)
        if done.code != 0:
            raise RuntimeError(f"{commands[name]} failed: {screen_text(done.output)}")
        return done.wall

    def via_launcher(i: int) -> None:
        spec = UnitSpec(
            name=f"blut-bench-{os.getpid()}-{i}",
            argv=["/bin/true"],
            log_path=scratch / "bench.log",
            result_path=scratch / f"r{i}",
            env={"PATH": "/usr/bin:/bin"},
            memory_max=MEMORY_MAX,
        )
        outcome = launcher.wait(launcher.launch(spec), timeout=30)
        assert outcome is not None and outcome.ok, outcome

    via_launcher(-1)  # open the bus, warm caches
    command("cli")
    for i in range(runs):  # interleaved, so drift hits every variant alike
        samples["raw_max"].append(command("raw_max"))
        samples["launcher"].append(timed(lambda i=i: via_launcher(i)))
        if i < max(5, runs // 3):
            for name in ("raw", "cli", "help", "python"):
                samples[name].append(command(name))
    launcher.close()

    med = {k: median_ms(v) for k, v in samples.items()}
    cli, raw, helped = med["cli"], med["raw"], med["help"]
    print(machine())
    print(f"runs: {runs} (whole commands: {len(samples['cli'])}); 80×24 pty; medians")
    print(f"raw systemd-run --user --wait --quiet /bin/true  {raw:7.1f} ms   (baseline)")
    print(f"blut --help                                      {helped:7.1f} ms   (baseline)")
    print(
        f"blut run -- /bin/true, end to end                {cli:7.1f} ms   "
        f"{cli / raw:.1f}× raw, {cli / helped:.1f}× blut --help; {verdict(cli / 1000, GOAL_RUN)}"
    )
    print(
        f"  of which Python start-up + imports             {med['python']:7.1f} ms   "
        f"({med['python'] / cli:.0%} of it; the driver unit pays it once more)"
    )
    print(f"raw systemd-run --wait --collect -p MemoryMax    {med['raw_max']:7.1f} ms   (baseline)")
    print(
        f"SystemdLauncher launch+wait, MemoryMax           {med['launcher']:7.1f} ms   "
        f"ratio {med['launcher'] / med['raw_max']:.2f}x   (goal <= 1.15x)"
    )


if __name__ == "__main__":
    main()
