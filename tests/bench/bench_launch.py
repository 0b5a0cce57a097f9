"""Per-job launch overhead of blut against raw `systemd-run --user --wait`, same run.

    make bench            (or: python tests/bench/bench_launch.py [N])

Prints medians and ratios:
- containment path: SystemdLauncher.launch + wait on a kept-open bus, /bin/true
  with MemoryMax, against `systemd-run --user --wait --collect -p MemoryMax=…`.
  Goal: ≤ 1.15×.
- whole CLI: `blut run -- /bin/true` (Python start-up + driver unit + stage unit),
  with the Python start-up share measured separately (`python -c "import blut.cli"`).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from blut.containment.spec import UnitSpec
from blut.containment.systemd import SystemdLauncher
from blut.containment.usermanager import ensure_user_manager

MEMORY_MAX = 200 << 20


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    os.environ.update(ensure_user_manager())
    scratch = Path(tempfile.mkdtemp(prefix="blut-bench-"))
    os.environ["BLUT_HOME"] = str(scratch / "home")
    launcher = SystemdLauncher()
    raw_cmd = [
        "systemd-run",
        "--user",
        "--wait",
        "--collect",
        "--quiet",
        "-p",
        f"MemoryMax={MEMORY_MAX}",
        "/bin/true",
    ]
    cli_cmd = [
        sys.executable,
        "-m",
        "blut",
        "run",
        "--memory-max",
        str(MEMORY_MAX),
        "--",
        "/bin/true",
    ]
    import_cmd = [sys.executable, "-c", "import blut.cli"]
    samples: dict[str, list[float]] = {"raw": [], "launcher": [], "cli": [], "python": []}

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
    for i in range(runs):  # interleaved, so drift hits every variant alike
        samples["raw"].append(timed(lambda: subprocess.run(raw_cmd, check=True)))
        samples["launcher"].append(timed(lambda i=i: via_launcher(i)))
        if i < max(5, runs // 3):
            samples["cli"].append(
                timed(lambda: subprocess.run(cli_cmd, check=True, capture_output=True))
            )
            samples["python"].append(timed(lambda: subprocess.run(import_cmd, check=True)))
    launcher.close()

    med = {k: statistics.median(v) * 1000 for k, v in samples.items()}
    print(f"runs: {runs} (CLI: {len(samples['cli'])})")
    print(f"raw systemd-run --user --wait        {med['raw']:7.1f} ms   (baseline)")
    print(
        f"SystemdLauncher launch+wait          {med['launcher']:7.1f} ms   "
        f"ratio {med['launcher'] / med['raw']:.2f}x   (goal <= 1.15x)"
    )
    print(
        f"blut run -- /bin/true (whole CLI)    {med['cli']:7.1f} ms   ratio {med['cli'] / med['raw']:.2f}x"
    )
    print(
        f"  of which Python start-up + imports {med['python']:7.1f} ms   "
        f"({med['python'] / med['cli']:.0%} of the CLI; the driver unit pays it once more)"
    )


if __name__ == "__main__":
    main()
