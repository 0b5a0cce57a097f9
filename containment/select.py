"""Pick the launcher: systemd when a user manager answers, else the loud bare fallback."""

from __future__ import annotations

import os

from blut.containment.bare import BareLauncher
from blut.containment.launcher import Launcher
from blut.containment.systemd import SystemdLauncher
from blut.containment.usermanager import find_reachable

UNCONTAINED_WARNING = (
    "no systemd user manager answers: running UNCONTAINED (plain subprocess, memory "
    "ceiling enforced only by a polling watchdog). Run `blut doctor` for the fix."
)


def containment_requested() -> bool:
    """Containment is the default; ``BLUT_CONTAINED=0`` opts out."""
    return os.environ.get("BLUT_CONTAINED", "1").strip().lower() not in ("0", "false", "no")


def choose_launcher(contained: bool) -> tuple[Launcher, str | None]:
    """The launcher to use and, when containment was asked for but is missing, a warning.

    When a user manager is found its address is exported into ``os.environ`` so
    that pystemd and every child reach the same manager.
    """
    if not contained:
        return BareLauncher(), None
    env = find_reachable()
    if env is None:
        return BareLauncher(), UNCONTAINED_WARNING
    os.environ.update(env)
    return SystemdLauncher(), None


def launcher_for(kind: str) -> Launcher:
    """The launcher of a job recorded with ``kind`` ("systemd" or "bare")."""
    if kind == "systemd":
        env = find_reachable()
        if env is not None:
            os.environ.update(env)
        return SystemdLauncher()
    return BareLauncher()
