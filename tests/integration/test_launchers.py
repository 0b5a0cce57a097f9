"""Both launchers against real processes: outcomes, limits, logs, stopping whole trees."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from blut.containment.bare import BareLauncher
from blut.containment.envfile import write_env_file
from blut.containment.launcher import Launcher
from blut.containment.spec import UnitSpec
from blut.containment.systemd import SystemdLauncher

PY = sys.executable
ALLOCATE = "b = []\nwhile True:\n    b.append(bytearray(10 * 2**20))\n"


@pytest.fixture(params=["systemd", "bare"])
def launcher(request: pytest.FixtureRequest) -> Iterator[Launcher]:
    chosen: Launcher = SystemdLauncher() if request.param == "systemd" else BareLauncher()
    yield chosen
    chosen.close()


def spec(tmp_path: Path, argv: list[str], **kw: object) -> UnitSpec:
    name = f"blut-test-{time.monotonic_ns()}"
    return UnitSpec(
        name=name,
        argv=argv,
        log_path=tmp_path / f"{name}.log",
        result_path=tmp_path / f"{name}.result",
        env={"PATH": "/usr/bin:/bin", "GREETING": "hello"},
        **kw,  # type: ignore[arg-type]
    )


def test_success_env_cwd_and_log(launcher: Launcher, tmp_path: Path) -> None:
    s = spec(tmp_path, ["sh", "-c", 'echo "$GREETING from $(pwd)"; echo oops >&2'], cwd=tmp_path)
    outcome = launcher.wait(launcher.launch(s), timeout=30)
    assert outcome is not None and outcome.ok and outcome.exit_code == 0
    assert s.log_path.read_text() == f"hello from {tmp_path}\noops\n"


def test_env_file_and_umask(launcher: Launcher, tmp_path: Path) -> None:
    tricky = 'a "b" $HOME `c` \\ d\nsecond line  '
    write_env_file(tmp_path / "env", {"PATH": "/usr/bin:/bin", "TRICKY": tricky})
    script = 'printf "<%s>\\n" "$TRICKY"; umask'
    s = spec(tmp_path, ["sh", "-c", script], env_file=tmp_path / "env", umask=0o027)
    outcome = launcher.wait(launcher.launch(s), timeout=30)
    assert outcome is not None and outcome.ok, s.log_path.read_text()
    assert s.log_path.read_text() == f"<{tricky}>\n0027\n"
    assert s.log_path.stat().st_mode & 0o777 == 0o600


def test_argv_reaches_the_program_verbatim(launcher: Launcher, tmp_path: Path) -> None:
    args = ["$HOME", "${GREETING}", "100%", "a b", "'q'"]
    s = spec(tmp_path, ["printf", "%s\\n", *args])
    outcome = launcher.wait(launcher.launch(s), timeout=30)
    assert outcome is not None and outcome.ok
    assert s.log_path.read_text().splitlines() == args


def test_exit_code(launcher: Launcher, tmp_path: Path) -> None:
    outcome = launcher.wait(launcher.launch(spec(tmp_path, ["sh", "-c", "exit 3"])), timeout=30)
    assert outcome is not None and (outcome.kind, outcome.exit_code) == ("exit", 3)


def test_oom_is_told_from_sigkill(launcher: Launcher, tmp_path: Path) -> None:
    oom = launcher.wait(
        launcher.launch(spec(tmp_path, [PY, "-c", ALLOCATE], memory_max=100 << 20)), 60
    )
    assert oom is not None and oom.kind == "oom"
    assert oom.peak_memory is not None and oom.peak_memory >= 90 << 20
    killed = launcher.wait(launcher.launch(spec(tmp_path, ["sh", "-c", "kill -KILL $$"])), 30)
    assert killed is not None and (killed.kind, killed.signal) == ("signal", "KILL")


def test_timeout(launcher: Launcher, tmp_path: Path) -> None:
    outcome = launcher.wait(launcher.launch(spec(tmp_path, ["sleep", "60"], timeout=1.0)), 30)
    assert outcome is not None and outcome.kind == "timeout"


def test_stop_kills_the_whole_tree(launcher: Launcher, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 300 & echo $! >> {pids}; setsid sleep 300 & echo $! >> {pids}; wait"
    handle = launcher.launch(spec(tmp_path, ["bash", "-c", script]))
    deadline = time.monotonic() + 10
    while (
        not (pids.exists() and len(pids.read_text().split()) == 2) and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    children = [int(p) for p in pids.read_text().split()]
    assert launcher.state(handle).phase == "running"
    launcher.stop(handle)
    outcome = launcher.wait(handle, timeout=30)
    assert outcome is not None and not outcome.ok
    alive = [p for p in children if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert alive == []
    assert launcher.state(handle).phase == "finished"


def test_find_reattaches(launcher: Launcher, tmp_path: Path) -> None:
    s = spec(tmp_path, ["sleep", "0.5"])
    handle = launcher.launch(s)
    found = launcher.find(s.name, s.result_path)
    assert found is not None and found.name == s.name
    assert launcher.wait(handle, timeout=30) is not None
    assert launcher.find("blut-never-started", tmp_path / "nothing") is None


def test_systemd_limit_lands_in_the_cgroup(tmp_path: Path) -> None:
    launcher = SystemdLauncher()
    handle = launcher.launch(spec(tmp_path, ["sleep", "5"], memory_max=64 << 20))
    try:
        assert launcher.memory_limit(handle) == 64 << 20
        assert launcher.state(handle).memory_current is not None
    finally:
        launcher.stop(handle)
        launcher.close()
