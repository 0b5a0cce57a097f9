"""ensure_user_manager against the real machine: it finds or starts a manager that runs units.

The manager is shared with everything else on this host, so these tests only
ever reuse it and leave it running.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from blut.containment.usermanager import ensure_user_manager, export_lines, find_reachable

pytestmark = pytest.mark.systemd


def test_ensure_returns_env_that_runs_a_limited_unit() -> None:
    env = ensure_user_manager()
    assert set(env) == {"XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS"}
    assert env["DBUS_SESSION_BUS_ADDRESS"] == f"unix:path={env['XDG_RUNTIME_DIR']}/bus"
    done = subprocess.run(
        ["systemd-run", "--user", "--wait", "--quiet", "-p", "MemoryMax=50M", "/bin/true"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_ensure_is_idempotent_and_fast() -> None:
    first = ensure_user_manager()
    started = time.monotonic()
    second = ensure_user_manager()
    assert time.monotonic() - started < 1.0
    assert second == first
    assert find_reachable() == first


def test_export_lines_round_trip_through_a_shell() -> None:
    env = ensure_user_manager()
    script = export_lines(env) + 'printf "%s\\n%s" "$XDG_RUNTIME_DIR" "$DBUS_SESSION_BUS_ADDRESS"'
    out = subprocess.run(
        ["/bin/sh", "-c", script], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    assert out.splitlines() == [env["XDG_RUNTIME_DIR"], env["DBUS_SESSION_BUS_ADDRESS"]]
