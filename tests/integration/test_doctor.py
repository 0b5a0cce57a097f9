"""`blut doctor`'s checks on this very machine, with a real user manager."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from blut.containment.doctor import run_checks
from blut.containment.usermanager import ensure_user_manager

pytestmark = pytest.mark.systemd


def test_run_checks_finds_the_manager_and_enforced_memory_limits(tmp_path: Path) -> None:
    env = ensure_user_manager()
    checks = {c.name: c for c in run_checks(tmp_path / "blut-home")}

    manager = checks["user-manager"]
    assert manager.status == "ok", manager
    assert manager.detail["runtime_dir"] == env["XDG_RUNTIME_DIR"]
    memory = checks["memory-limits"]
    assert memory.status == "ok", memory
    assert memory.detail["probe_limit"] == 64 * 2**20
    assert checks["blut-home"].status == "ok"
    assert checks["oom-detection"].status == "ok"
    assert checks["versions"].status == "ok"
    json.dumps([c.to_dict() for c in checks.values()])


def test_doctor_never_imports_torch(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from blut.containment.doctor import run_checks; "
        f"run_checks(Path({str(tmp_path)!r})); print('torch' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"
