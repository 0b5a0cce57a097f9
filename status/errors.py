"""Errors of the status room."""


class StatusError(Exception):
    """Base for every error raised by blut.status."""


class SchemaError(StatusError):
    """A line is not a valid v1 event (bad JSON, not an object, missing keys)."""
