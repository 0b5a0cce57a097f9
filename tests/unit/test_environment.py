"""A job's environment: the policy, the env file units read, and what a unit's definition holds."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

from blut.containment.bare import BareLauncher
from blut.containment.envfile import format_env, parse_env, read_env_file, write_env_file
from blut.containment.spec import UnitSpec
from blut.containment.systemd import unit_properties
from blut.jobs.environment import EnvPolicy, env_policy, executor_env, job_env, stage_env
from blut.jobs.errors import UsageError

TRICKY = {
    "NEWLINES": "first\nsecond\n",
    "QUOTES": 'it\'s "quoted"',
    "SHELLISH": "$HOME ${X} `id` \\ \\n \\",
    "SPACES": "  padded  ",
    "TAB": "a\tb # not a comment",
    "EMPTY": "",
    "UNICODE": "größe ✓",
}


def test_env_file_round_trips_every_value(tmp_path: Path) -> None:
    path = tmp_path / "env"
    write_env_file(path, TRICKY)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_env_file(path) == TRICKY


def test_env_file_leaves_out_what_systemd_refuses() -> None:
    env = {"OK": "1", "1BAD": "x", "BASH_FUNC_f%%": "() { :; }", "BYTES": "\udcff", "A-B": "y"}
    assert parse_env(format_env(env)) == {"OK": "1"}


def test_parse_env_refuses_a_file_it_did_not_write() -> None:
    with pytest.raises(ValueError, match="not an environment file"):
        parse_env("A=1\n")


SUBMITTER = {
    "PATH": "/opt/bin:/usr/bin",
    "HOME": "/home/u",
    "SECRET": "s3",
    "TERM": "xterm",
    "SSH_AUTH_SOCK": "/tmp/agent",
    "INVOCATION_ID": "abc",
    "BLUT_JOB_DIR": "/somewhere/else",
    "CUDA_VISIBLE_DEVICES": "3",
}


def test_job_env_is_the_submitters_minus_session_unit_and_blut_variables() -> None:
    assert job_env(SUBMITTER) == {"PATH": "/opt/bin:/usr/bin", "HOME": "/home/u", "SECRET": "s3"}


def test_clear_keeps_path_and_what_is_passed() -> None:
    policy = EnvPolicy(clear=True, passed=("SECRET", "NEW=a=b", "UNSET"))
    assert job_env(SUBMITTER, policy) == {"PATH": "/opt/bin:/usr/bin", "SECRET": "s3", "NEW": "a=b"}
    assert job_env({}, EnvPolicy(clear=True)) == {"PATH": "/usr/local/bin:/usr/bin:/bin"}


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        ("1X", "is not a variable name"),
        ("=x", "is not a variable name"),
        ("A B=1", "is not a variable name"),
        ("BLUT_JOB_DIR=/x", "blut sets BLUT_JOB_DIR itself"),
        ("CUDA_VISIBLE_DEVICES", "blut sets CUDA_VISIBLE_DEVICES itself"),
    ],
)
def test_bad_env_items(item: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        EnvPolicy(passed=(item,))


def test_an_unset_name_on_the_command_line_is_refused(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    with pytest.raises(UsageError, match="--env NOPE: not set here"):
        env_policy(passed=["NOPE"], cwd=tmp_path, environ=env)


def test_config_files_env_tables(tmp_path: Path) -> None:
    user = tmp_path / "xdg" / "blut" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text('[env]\npass = ["HF_TOKEN", "A=user"]\n')
    (tmp_path / "blut.toml").write_text('[env]\nclear = true\npass = ["A=project"]\n')
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "PATH": "/p"}
    policy = env_policy(passed=["B=cli"], cwd=tmp_path, environ=environ)
    assert policy == EnvPolicy(True, ("HF_TOKEN", "A=user", "A=project", "B=cli"))
    # HF_TOKEN is not set: a config file serves many shells, so it is left out
    assert job_env(environ, policy) == {"PATH": "/p", "A": "project", "B": "cli"}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[env]\nclear = 'yes'\n", "clear must be true or false"),
        ("[env]\npass = 'A'\n", "pass must be a list"),
        ("[env]\npass = [1]\n", "pass must be a list"),
        ("[env]\ncler = true\n", "[env] has no key 'cler'"),
        ("env = 3\n", "[env] must be a table"),
    ],
)
def test_bad_env_tables(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "blut.toml").write_text(text)
    with pytest.raises(UsageError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        env_policy(cwd=tmp_path, environ={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})


def test_units_hold_only_blut_variables(tmp_path: Path) -> None:
    environ = {**SUBMITTER, "PYTHONPATH": "/src"}
    stage = stage_env(
        environ,
        home=tmp_path,
        job_dir=tmp_path / "jobs" / "j",
        job_id="j",
        stage="main",
        contained=True,
        gpus=[0, 2],
        own=False,
    )
    assert set(stage) == {
        "BLUT_HOME",
        "BLUT_JOB_DIR",
        "BLUT_JOB_ID",
        "BLUT_STAGE_NAME",
        "BLUT_CONTAINED",
        "PYTHONUNBUFFERED",
        "CUDA_VISIBLE_DEVICES",
    }
    assert stage["CUDA_VISIBLE_DEVICES"] == "0,2"
    own = stage_env(
        environ,
        home=tmp_path,
        job_dir=tmp_path,
        job_id="j",
        stage="s",
        contained=True,
        gpus=[],
        own=True,
    )
    assert own["PYTHONPATH"] == "/src" and own["CUDA_VISIBLE_DEVICES"] == ""
    executor = executor_env(environ, home=tmp_path, contained=True)
    assert executor == {"PYTHONPATH": "/src", "BLUT_HOME": str(tmp_path), "BLUT_CONTAINED": "1"}


def test_unit_properties_take_the_env_file_and_umask(tmp_path: Path) -> None:
    spec = UnitSpec(
        name="blut-x",
        argv=["true"],
        log_path=tmp_path / "log",
        result_path=tmp_path / "result",
        env={"BLUT_JOB_ID": "x"},
        env_file=tmp_path / "env",
        umask=0o077,
    )
    props = unit_properties(spec)
    assert props[b"Environment"] == [b"BLUT_JOB_ID=x"]
    assert props[b"EnvironmentFiles"] == [(str(tmp_path / "env").encode(), False)]
    assert props[b"UMask"] == 0o077
    bare = unit_properties(
        UnitSpec(name="blut-y", argv=["true"], log_path=spec.log_path, result_path=spec.result_path)
    )
    assert b"EnvironmentFiles" not in bare and b"UMask" not in bare


def test_bare_launcher_gives_the_env_file_and_umask(tmp_path: Path) -> None:
    write_env_file(tmp_path / "env", {**TRICKY, "PATH": os.environ["PATH"]})
    script = "import os; print(repr(dict(os.environ))); print(oct(os.umask(0)))"
    spec = UnitSpec(
        name="blut-bare-env",
        argv=[sys.executable, "-c", script],
        log_path=tmp_path / "log",
        result_path=tmp_path / "result",
        env={"BLUT_JOB_ID": "x"},
        env_file=tmp_path / "env",
        umask=0o027,
    )
    launcher = BareLauncher()
    outcome = launcher.wait(launcher.launch(spec), timeout=30)
    assert outcome is not None and outcome.ok, spec.log_path.read_text()
    env_line, umask_line = spec.log_path.read_text().splitlines()
    env = ast.literal_eval(env_line)
    env.pop("LC_CTYPE", None)  # Python may set it for its own locale coercion
    assert env == {**TRICKY, "PATH": os.environ["PATH"], "BLUT_JOB_ID": "x"}
    assert umask_line == "0o27"
    assert spec.log_path.stat().st_mode & 0o777 == 0o600
