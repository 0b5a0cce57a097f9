"""`python -m blut.payload`: dispatch, help, unknown stages, no heavy imports."""

from __future__ import annotations

import subprocess
import sys

from blut.payload.stages import STAGES


def payload(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blut.payload", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_unknown_stage_is_one_line_exit_2() -> None:
    proc = payload("nope", "--epochs", "1")
    assert proc.returncode == 2
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert "unknown stage 'nope'" in line
    assert all(name in line for name in STAGES)


def test_help_lists_stages() -> None:
    proc = payload("--help")
    assert proc.returncode == 0
    assert "demo" in proc.stdout
    assert "logistic-regression" in proc.stdout


def test_no_stage_is_a_usage_error() -> None:
    proc = payload()
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_listing_stages_imports_no_heavy_library() -> None:
    code = (
        "import sys, blut.payload.__main__ as m; "
        "print(sorted({'numpy', 'torch', 'pyarrow', 'pandas'} & set(sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
