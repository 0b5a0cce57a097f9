"""The environment a job's processes get: the submitter's, minus its session, plus blut's."""

from __future__ import annotations

from collections.abc import Mapping

SESSION_VARS = ("SSH_AUTH_SOCK", "SSH_CLIENT", "SSH_CONNECTION", "SSH_TTY", "TERM", "DISPLAY")
"""Variables of the submitter's terminal session that a detached job must not inherit."""
UNIT_VARS = ("INVOCATION_ID", "JOURNAL_STREAM", "MANAGERPID", "SYSTEMD_EXEC_PID", "NOTIFY_SOCKET")
"""Variables systemd sets for the executor's own unit; a stage unit gets its own."""


def job_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The submitter's environment minus terminal/SSH-session variables."""
    return {k: v for k, v in environ.items() if k not in SESSION_VARS and "\n" not in v}


def stage_env(
    environ: Mapping[str, str], *, job_dir: str, job_id: str, stage: str, contained: bool
) -> dict[str, str]:
    """The environment of a stage: the executor's, plus where the stage reports."""
    env = {k: v for k, v in environ.items() if k not in UNIT_VARS}
    env.update(
        BLUT_JOB_DIR=job_dir,
        BLUT_JOB_ID=job_id,
        BLUT_STAGE_NAME=stage,
        BLUT_CONTAINED="1" if contained else "0",
        PYTHONUNBUFFERED="1",
    )
    return env
