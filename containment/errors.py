"""Errors of the containment room."""


class ContainmentError(Exception):
    """Base for every error raised by blut.containment."""


class LaunchError(ContainmentError):
    """A unit could not be started."""


class ManagerUnavailable(ContainmentError):
    """No systemd user manager answers for this user."""
