"""The environment of a job's processes, fixed when the job is submitted.

A job gets the submitter's environment minus its terminal session (so `blut run
CMD` behaves like running CMD), or, with ``clear``, only PATH; then the
variables its policy passes (``NAME`` as the submitter has it, ``NAME=VALUE``
as given). The policy comes from ``--env-clear``/``--env`` and from the
``[env]`` table of the config files (``clear = true``, ``pass = ["NAME",
"NAME=VALUE"]``; the project's ``blut.toml`` adds to the user config).

The values go to the job folder's ``env`` file (0600), which every unit of the
job reads through ``EnvironmentFile=``; a unit's ``Environment=``, which systemd
writes readable into the transient unit file, holds only blut's own few variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from blut.jobs.configfiles import config_paths, table
from blut.jobs.errors import UsageError, clip
from blut.status.relay import EVENTS_VAR, RELAYED

SESSION_VARS = ("SSH_AUTH_SOCK", "SSH_CLIENT", "SSH_CONNECTION", "SSH_TTY", "TERM", "DISPLAY")
"""Variables of the submitter's terminal session that a detached job must not inherit."""
UNIT_VARS = ("INVOCATION_ID", "JOURNAL_STREAM", "MANAGERPID", "SYSTEMD_EXEC_PID", "NOTIFY_SOCKET")
"""Variables systemd sets for the unit a submitter may run in; each unit gets its own."""
BLUT_VARS = (
    "BLUT_HOME",
    "BLUT_CONTAINED",
    "BLUT_JOB_DIR",
    "BLUT_JOB_ID",
    "BLUT_STAGE_NAME",
    "CUDA_VISIBLE_DEVICES",
    "PYTHONUNBUFFERED",
)
"""Set by blut for each unit (its ``Environment=``), so never taken into the env file,
whose variables would win over them."""
RUNTIME_VARS = ("PYTHONPATH", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS")
"""What blut's own executor needs to run the same blut under the same user manager,
kept even when the job's environment is cleared (recipe stages keep PYTHONPATH)."""
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class EnvPolicy:
    """Which environment a job gets: ``clear`` keeps only PATH; ``passed`` adds
    ``NAME`` (from the submitter) or ``NAME=VALUE`` items, later ones winning."""

    clear: bool = False
    passed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for item in self.passed:
            name = item.partition("=")[0]
            if not _NAME.fullmatch(name):
                raise UsageError(
                    f"--env {clip(item)}: {clip(name)!r} is not a variable name "
                    "(letters, digits and '_', not starting with a digit)"
                )
            if name in BLUT_VARS:
                raise UsageError(f"--env {clip(item)}: blut sets {name} itself")


def env_policy(
    *,
    clear: bool = False,
    passed: Iterable[str] = (),
    cwd: Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> EnvPolicy:
    """The ``[env]`` tables of the user and project config files, then these options.

    A ``NAME`` given here must be set in ``environ``; one from a config file that is
    not set is left out (a config serves many shells).
    """
    for item in passed:
        name = item.partition("=")[0]
        if "=" not in item and _NAME.fullmatch(name) and name not in environ:
            raise UsageError(
                f"--env {clip(name)}: not set here (give a value: --env {clip(name)}=VALUE)"
            )
    items: list[str] = []
    for path in config_paths(cwd, environ):
        section = table(path, "env")
        unknown = sorted(set(section) - {"clear", "pass"})
        if unknown:
            raise UsageError(f"{path}: [env] has no key {unknown[0]!r} (keys: clear, pass)")
        found_clear = section.get("clear", False)
        found_pass = section.get("pass", [])
        if not isinstance(found_clear, bool):
            raise UsageError(f"{path}: [env] clear must be true or false")
        if not isinstance(found_pass, list) or not all(isinstance(i, str) for i in found_pass):
            raise UsageError(f'{path}: [env] pass must be a list of "NAME" or "NAME=VALUE"')
        clear = clear or found_clear
        items += found_pass
    return EnvPolicy(clear, (*items, *passed))


def job_env(environ: Mapping[str, str], policy: EnvPolicy = EnvPolicy()) -> dict[str, str]:
    """The variables of a job submitted from ``environ`` under ``policy`` (its env file);
    a ``NAME`` to pass that ``environ`` lacks is left out."""
    if policy.clear:
        env = {"PATH": environ.get("PATH", DEFAULT_PATH)}
    else:
        skip = (*SESSION_VARS, *UNIT_VARS, *BLUT_VARS)
        env = {k: v for k, v in environ.items() if k not in skip}
    for item in policy.passed:
        name, given, value = item.partition("=")
        if given:
            env[name] = value
        elif name in environ:
            env[name] = environ[name]
    return env


def executor_env(environ: Mapping[str, str], *, home: Path, contained: bool) -> dict[str, str]:
    """The ``Environment=`` of a job's executor unit: blut's variables only."""
    env = {k: environ[k] for k in RUNTIME_VARS if k in environ}
    env.update(BLUT_HOME=str(home), BLUT_CONTAINED="1" if contained else "0")
    return env


def stage_env(
    environ: Mapping[str, str],
    *,
    home: Path,
    job_dir: Path,
    job_id: str,
    stage: str,
    contained: bool,
    gpus: Iterable[int],
    own: bool,
    relayed: bool = False,
) -> dict[str, str]:
    """The ``Environment=`` of a stage's unit: where it reports and its GPUs; for blut's
    ``own`` stage programs also the executor's PYTHONPATH (so they run the same blut);
    ``relayed`` (on a cluster node) sends its events to its own file (`blut.status.relay`)."""
    env = {"PYTHONPATH": environ["PYTHONPATH"]} if own and "PYTHONPATH" in environ else {}
    env.update(
        BLUT_HOME=str(home),
        BLUT_JOB_DIR=str(job_dir),
        BLUT_JOB_ID=job_id,
        BLUT_STAGE_NAME=stage,
        BLUT_CONTAINED="1" if contained else "0",
        PYTHONUNBUFFERED="1",
        CUDA_VISIBLE_DEVICES=",".join(str(g) for g in gpus),
    )
    if relayed:
        env[EVENTS_VAR] = RELAYED
    return env
