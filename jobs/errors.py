"""Errors of the jobs room. `UsageError` means the user asked for something invalid (exit 2)."""


class JobsError(Exception):
    """Base for every error raised by blut.jobs."""


class UsageError(JobsError):
    """Bad input from the user: an unknown job, a malformed size, an empty command."""


def clip(text: str, limit: int = 60) -> str:
    """``text`` as an error message may echo it: at most ``limit`` characters."""
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text)} characters)"
