"""Shared fixtures: a private BLUT_HOME per test and a way to run the real `blut` CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from blut.jobs.store import Job
from blut.status.jobstate import JobView

# A test run started in the background of a shell without job control (`make test &`, a CI
# step run with `&`) inherits SIGINT ignored, and so would every CLI the tests start: their
# Ctrl-C tests would then test nothing. The CLIs start as from a terminal: SIGINT default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def blut_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty BLUT_HOME for this test."""
    home = tmp_path / "blut-home"
    monkeypatch.setenv("BLUT_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def manager_env() -> Iterator[dict[str, str]]:
    """The address of a real systemd user manager (started privately if none answers)."""
    from blut.containment.usermanager import ensure_user_manager

    env = ensure_user_manager()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def blut(
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m blut ARGS` to completion and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "blut", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        input=input,
        check=False,
    )


def wait_for_job(
    job: Job, until: Callable[[JobView], bool] | None = None, timeout: float = 60
) -> JobView:
    """Poll ``job``'s fold until ``until(view)`` (default: the job ended); fail with its driver log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = job.view()
        if view.terminal if until is None else until(view):
            return view
        time.sleep(0.05)
    view = job.view()
    log = job.driver_log.read_text() if job.driver_log.exists() else "(no driver log)"
    tails = "".join(
        f"\n--- last lines of stage {name}'s log ---\n{_tail(job.log_path(name))}"
        for name, stage in view.stages.items()
        if stage.state == "running"
    )
    raise AssertionError(f"job {job.id} stuck: {view}\n{log}{tails}")


def _tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of ``path`` (for failure messages)."""
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def unreachable_manager_env(tmp_path: Path) -> dict[str, str]:
    """Variables under which no systemd user manager answers (an empty runtime dir)."""
    nowhere = tmp_path / "no-runtime"
    nowhere.mkdir(mode=0o700)
    return {
        "BLUT_RUNTIME_DIR": str(nowhere),
        "XDG_RUNTIME_DIR": str(nowhere),
        "DBUS_SESSION_BUS_ADDRESS": f"unix:path={nowhere}/bus",
    }
