"""Bad input: one line on stderr, exit 2, no traceback. `--help` stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import blut


def assert_usage_error(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("blut: error: ")
    assert needle in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--memory-max", "12Q", "--", "true"], "invalid size '12Q'"),
        (["run", "--timeout", "soon", "--", "true"], "invalid duration"),
        (["run", "--"], "no command given"),
        (["run", "--", ""], "no command given"),
        (["log", "no-such-job"], "no such job"),
        (["cancel", "--yes", "no-such-job"], "no such job"),
        (["jobs", "--format", "xml"], "unknown format"),
        (["frobnicate"], "No such command"),
        ([], "the cockpit needs a terminal"),
        (["--replay", "no-such-job"], "no such job"),
        (["run", "--bogus-option", "true"], "No such option"),
        (["run", "--env"], "Option '--env' requires an argument"),
        (["run", "--env", "A B=1", "--", "true"], "'A B' is not a variable name"),
        (["recipe", "run", "smoke", "--env", "9=x"], "'9' is not a variable name"),
    ],
)
def test_bad_input(blut_home: Path, args: list[str], needle: str) -> None:
    assert_usage_error(blut(*args), needle)


def test_command_not_found_is_a_usage_error(blut_home: Path) -> None:
    result = blut("run", "--uncontained", "--", "no-such-program-xyz")
    assert_usage_error(result, "command not found: no-such-program-xyz")


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['blut', '--help']\n"
        "from blut.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'pandas', 'textual', 'pyarrow') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "run" in result.stdout and "doctor" in result.stdout
    assert "HEAVY=\n" in result.stdout


def test_version() -> None:
    result = blut("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("blut ")


def test_a_group_without_its_command_prints_its_help() -> None:
    result = blut("recipe")
    assert result.returncode == 2
    assert result.stderr.startswith("Usage: ") and "Commands:" in result.stderr
    assert "blut: error" not in result.stderr


def test_help_documents_arguments() -> None:
    result = blut("cancel", "--help")
    assert result.returncode == 0
    assert "JOB      Job id, id prefix or name." in result.stdout
    assert "[STAGE]  Cancel only this stage" in result.stdout


def test_run_passes_everything_after_the_command_on(blut_home: Path) -> None:
    result = blut("run", "--uncontained", "echo", "--name", "x", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "--name x --help\n"


@pytest.mark.parametrize("verb", [["run"], ["recipe", "run"]])
def test_env_options_are_documented(verb: list[str]) -> None:
    result = blut(*verb, "--help")
    assert result.returncode == 0
    assert "--env-clear" in result.stdout and "--env NAME[=VALUE]" in result.stdout


def test_run_gets_the_submitters_environment_unless_cleared(
    blut_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLUT_TEST_VALUE", "multi\nline")
    script = 'printf "[%s]" "$BLUT_TEST_VALUE"'
    kept = blut("run", "--uncontained", "--", "sh", "-c", script)
    assert kept.returncode == 0 and kept.stdout == "[multi\nline]\n", kept.stderr
    cleared = blut("run", "--uncontained", "--env-clear", "--", "sh", "-c", script)
    assert cleared.returncode == 0 and cleared.stdout == "[]\n", cleared.stderr
