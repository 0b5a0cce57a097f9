"""Errors of the jobs room. `UsageError` means the user asked for something invalid (exit 2)."""


class JobsError(Exception):
    """Base for every error raised by blut.jobs."""


class UsageError(JobsError):
    """Bad input from the user: an unknown job, a malformed size, an empty command."""
