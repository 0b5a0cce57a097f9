"""Errors of the payload room: a user mistake, reported in one line (exit 2)."""


class PayloadError(Exception):
    """Base for every error a stage reports without a traceback."""


class ArgsError(PayloadError):
    """A stage argument is unknown, of the wrong type or out of range."""


class InputError(PayloadError):
    """An upstream artifact is missing or not what the stage expects."""


class DataError(PayloadError):
    """Market data is missing, malformed or lacks required columns."""
