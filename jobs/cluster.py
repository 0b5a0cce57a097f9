"""Where a job's stages run: on this machine, or on a Ray cluster (``--launcher ray``).

The choice comes from ``--launcher``/``--ray-address``/``--ray-resource`` and from the
``[cluster]`` table of the config files (``launcher = "ray"``, ``ray_address = "http://…"``,
``[cluster.resources] STAGE = {NAME = AMOUNT}``; options win, the project's ``blut.toml``
over the user config) and is recorded in job.json (`JobSpec.ray_address`,
`JobSpec.ray_resources`), so a resumed job runs where it ran.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blut.jobs.configfiles import config_paths, table
from blut.jobs.errors import UsageError, clip

LAUNCHERS = ("local", "ray")
KEYS = ("launcher", "ray_address", "resources")


@dataclass(frozen=True)
class Cluster:
    """A Ray cluster's dashboard address, and stage → custom resources it needs there."""

    address: str
    resources: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The job.json fields of this choice."""
        return {
            "ray_address": self.address,
            "ray_resources": {s: dict(r) for s, r in self.resources.items()},
        }


def _amount(text: Any, where: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{where}: the amount must be a number > 0 (got {clip(str(text))})")
    return value


def parse_resource(item: str) -> tuple[str, str, float]:
    """``STAGE=NAME[:AMOUNT]`` (amount 1 by default) as (stage, resource, amount)."""
    stage, sep, rest = item.partition("=")
    name, _, amount = rest.partition(":")
    if not sep or not stage.strip() or not name.strip():
        raise UsageError(f"--ray-resource {clip(item)}: expected STAGE=RESOURCE[:AMOUNT]")
    return stage.strip(), name.strip(), _amount(amount or 1, f"--ray-resource {clip(item)}")


def _config(cwd: Path | None) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in config_paths(cwd):
        section = table(path, "cluster")
        unknown = sorted(set(section) - set(KEYS))
        if unknown:
            raise UsageError(
                f"{path}: [cluster] has no key {unknown[0]!r} (keys: {', '.join(KEYS)})"
            )
        for key in ("launcher", "ray_address"):
            if key in section and not isinstance(section[key], str):
                raise UsageError(f"{path}: [cluster] {key} must be a string")
        pins = section.pop("resources", {})
        if not isinstance(pins, dict) or not all(isinstance(v, dict) for v in pins.values()):
            raise UsageError(f"{path}: [cluster.resources] maps a stage to {{NAME = AMOUNT}}")
        resources = merged.setdefault("resources", {})
        for stage, wants in pins.items():
            where = f"{path}: [cluster.resources] {stage}"
            resources[stage] = {str(n): _amount(a, where) for n, a in wants.items()}
        merged.update(section)
    return merged


def choose_cluster(
    launcher: str | None = None,
    address: str | None = None,
    resources: Iterable[str] = (),
    *,
    cwd: Path | None = None,
) -> Cluster | None:
    """The cluster the options and config files choose (None: run on this machine)."""
    found = _config(cwd)
    kind = launcher or found.get("launcher") or ("ray" if address else "local")
    if kind not in LAUNCHERS:
        raise UsageError(f"--launcher {clip(kind)}: expected one of {', '.join(LAUNCHERS)}")
    given = [parse_resource(item) for item in resources]
    if kind == "local":
        if address or given:
            raise UsageError("--ray-address and --ray-resource need --launcher ray")
        return None
    pins: dict[str, dict[str, float]] = {s: dict(r) for s, r in found.get("resources", {}).items()}
    for stage, name, amount in given:
        pins.setdefault(stage, {})[name] = amount
    where = address or found.get("ray_address")
    if not where:
        raise UsageError(
            "--launcher ray needs the cluster's address: --ray-address http://HOST:8265 "
            "(or ray_address in [cluster] of blut.toml)"
        )
    return Cluster(str(configured_address(where)), pins)


def configured_address(address: str | None = None, cwd: Path | None = None) -> str | None:
    """``address``, else the config files' when they choose Ray (what `blut doctor` checks)."""
    if address:
        return address if "://" in address else f"http://{address}"
    found = _config(cwd)
    if found.get("launcher") != "ray" or not found.get("ray_address"):
        return None
    where = str(found["ray_address"])
    return where if "://" in where else f"http://{where}"


def check_stages(cluster: Cluster | None, stages: Iterable[str]) -> None:
    """Refuse resources for a stage the plan does not have (a typo would pin nothing)."""
    if cluster is None:
        return
    names = set(stages)
    for stage in cluster.resources:
        if stage not in names:
            raise UsageError(
                f"--ray-resource {clip(stage)}: the plan has no such stage "
                f"(stages: {', '.join(sorted(names))})"
            )
