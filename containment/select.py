"""Pick the launcher: systemd when a user manager answers, else the loud bare fallback."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from blut.containment.usermanager import find_reachable

if TYPE_CHECKING:
    from blut.containment.launcher import Launcher

UNCONTAINED_WARNING = (
    "no systemd user manager answers: running UNCONTAINED (plain subprocess, memory "
    "ceiling enforced only by a polling watchdog). Run `blut doctor` for the fix."
)
_found: dict[tuple[str | None, ...], dict[str, str]] = {}
"""Managers found by this process, by where it looked (a probe spawns systemctl and busctl;
a manager found stays found, one not found is looked for again next time)."""


def containment_requested() -> bool:
    """Containment is the default; ``BLUT_CONTAINED=0`` opts out."""
    return os.environ.get("BLUT_CONTAINED", "1").strip().lower() not in ("0", "false", "no")


def _reachable() -> dict[str, str] | None:
    where = tuple(os.environ.get(v) for v in ("BLUT_RUNTIME_DIR", "XDG_RUNTIME_DIR", "TMPDIR"))
    if where not in _found:
        env = find_reachable()
        if env is None:
            return None
        _found[where] = env
    return _found[where]


def _systemd() -> Launcher:
    from blut.containment.systemd import SystemdLauncher

    return SystemdLauncher()


def _bare() -> Launcher:
    from blut.containment.bare import BareLauncher  # psutil loads only for this fallback

    return BareLauncher()


def choose_launcher(contained: bool) -> tuple[Launcher, str | None]:
    """The launcher to use and, when containment was asked for but is missing, a warning.

    When a user manager is found its address is exported into ``os.environ`` so
    that pystemd and every child reach the same manager.
    """
    if not contained:
        return _bare(), None
    env = _reachable()
    if env is None:
        return _bare(), UNCONTAINED_WARNING
    os.environ.update(env)
    return _systemd(), None


def launcher_for(kind: str, *, probe: bool = True) -> Launcher:
    """The launcher of a job recorded with ``kind`` ("systemd" or "bare").

    ``probe=False`` trusts the manager address already in the environment: a job's
    executor runs inside a unit of the very manager its submitter found.
    """
    if kind == "systemd":
        env = _reachable() if probe else None
        if env is not None:
            os.environ.update(env)
        return _systemd()
    return _bare()


def cluster_launcher(local: Launcher, ray_address: str | None) -> Launcher:
    """``local``, or with ``ray_address`` a `RayLauncher` sending stages to that cluster
    (and running everything else, the job's executor, through ``local``)."""
    if ray_address is None:
        return local
    from blut.containment.ray import RayLauncher

    return RayLauncher(ray_address, local)
