"""The scheduling policy: ``$BLUT_HOME/policy.toml``, one documented file of rules applied
at submit (`blut policy show|set|reset|suggest`).

Keys (every one optional; a missing key has its default)::

    [ceiling]
    source = "recipe"   # "recipe": the recipe's memory_max; "learned": from history
    margin = 1.5        # learned ceiling = max observed peak × margin (> 1)
    min_runs = 3        # successful runs of the same program and input size class needed
    floor = "64M"       # a learned ceiling is never below this

    [slots]
    cpu = 0             # CPU slots a job's stages share (0: one per core)
    gpu = 1             # GPUs a GPU stage asks for

    [limits]
    stages = 0          # stages of one job running at once (0: no limit)
    retries = 0         # times a stage that exited with an error or a signal runs again

A learned ceiling replaces the recipe's only where the args leave ``memory_max``
at the recipe default (a ceiling given with ``--set`` or a config file wins).
What the policy decided for each stage is kept in the job's spec and shown by
`blut plan inspect`. A bad key or value is one line naming the file (exit 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from blut.jobs.configfiles import read_file
from blut.jobs.errors import UsageError, clip
from blut.jobs.quantities import format_size, parse_size
from blut.status.atomic import atomic_write

POLICY_FILE = "policy.toml"
"""The policy's file name under ``$BLUT_HOME``."""
MIB = 1 << 20


@dataclass(frozen=True)
class Policy:
    """The rules, with their defaults (see the module docstring for each)."""

    ceiling_source: str = "recipe"
    ceiling_margin: float = 1.5
    ceiling_min_runs: int = 3
    ceiling_floor: int = 64 * MIB
    slots_cpu: int = 0
    slots_gpu: int = 1
    limits_stages: int = 0
    limits_retries: int = 0


def _source(value: Any) -> str:
    if value not in ("recipe", "learned"):
        raise ValueError('expected "recipe" or "learned"')
    return str(value)


def _margin(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("expected a number")
    if value <= 1:
        raise ValueError("expected a number above 1 (e.g. 1.5)")
    return float(value)


def _count(low: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 1 << 20:
            raise ValueError(f"expected a whole number from {low} to {1 << 20}")
        return value

    return check


def _size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("expected a size (bytes, or e.g. 64M, 1G)")
    try:
        return parse_size(str(value))
    except UsageError as exc:
        raise ValueError(str(exc)) from exc


@dataclass(frozen=True)
class Key:
    """One policy key: its field, how its value is checked, what it means."""

    name: str
    check: Callable[[Any], Any]
    doc: str

    @property
    def field(self) -> str:
        """The `Policy` field it sets."""
        return self.name.replace(".", "_")


KEYS = {
    k.name: k
    for k in (
        Key("ceiling.source", _source, '"recipe" (the recipe\'s memory_max) or "learned"'),
        Key("ceiling.margin", _margin, "learned ceiling = max observed peak × margin"),
        Key("ceiling.min_runs", _count(1), "successful runs needed before a ceiling is learned"),
        Key("ceiling.floor", _size, "a learned ceiling is never below this"),
        Key("slots.cpu", _count(0), "CPU slots a job's stages share (0: one per core)"),
        Key("slots.gpu", _count(1), "GPUs a GPU stage asks for"),
        Key("limits.stages", _count(0), "stages of one job running at once (0: no limit)"),
        Key("limits.retries", _count(0), "times a stage that failed (exit, signal) runs again"),
    )
}


def policy_path(home: Path) -> Path:
    """``$BLUT_HOME/policy.toml``."""
    return home / POLICY_FILE


def _flat(path: Path, data: Mapping[str, Any]) -> dict[str, Any]:
    """The file's tables as dotted keys; anything but known tables of scalars → `UsageError`."""
    out: dict[str, Any] = {}
    for section, values in data.items():
        if not isinstance(values, dict):
            raise UsageError(f"{path}: {clip(section)} must be a table ([{clip(section)}])")
        for key, value in values.items():
            out[f"{section}.{key}"] = value
    return out


def _checked(where: str, key: str, value: Any) -> Any:
    found = KEYS.get(key)
    if found is None:
        import difflib

        close = difflib.get_close_matches(key, list(KEYS), n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (keys: {', '.join(KEYS)})"
        raise UsageError(f"{where}: unknown policy key {clip(key)!r}{hint}")
    try:
        return found.check(value)
    except ValueError as exc:
        raise UsageError(f"{where}: {key}: {exc}, given {clip(repr(value))}") from exc


def stored(home: Path) -> dict[str, Any]:
    """The keys the policy file sets, as written (checked); empty when there is no file."""
    path = policy_path(home)
    if not path.is_file():
        return {}
    values = _flat(path, read_file(path))
    for key, value in values.items():
        _checked(str(path), key, value)
    return values


def load_policy(home: Path) -> Policy:
    """The policy of ``home``: defaults, with what its file sets."""
    values = stored(home)
    return replace(Policy(), **{KEYS[k].field: KEYS[k].check(v) for k, v in values.items()})


def parse_value(key: str, text: str) -> Any:
    """``text`` as typed on the command line, as the TOML value of ``key`` (checked)."""
    value: Any = text
    for convert in (int, float):
        try:
            value = convert(text)
            break
        except ValueError:
            continue
    _checked(f"policy set {clip(key)}", key, value)
    return value


def _toml(values: Mapping[str, Any]) -> str:
    import json

    lines = ["# blut's scheduling policy: see `blut policy show` (keys) and the README."]
    sections: dict[str, list[str]] = {}
    for key in KEYS:  # documented order
        if key in values:
            section, _, name = key.partition(".")
            sections.setdefault(section, []).append(f"{name} = {json.dumps(values[key])}")
    for section, rows in sections.items():
        lines += ["", f"[{section}]", *rows]
    return "\n".join(lines) + "\n"


def set_key(home: Path, key: str, text: str) -> Any:
    """Set ``key`` to ``text`` in the policy file (0600, atomically); returns the value."""
    value = parse_value(key, text)
    values = stored(home)
    values[key] = value
    atomic_write(policy_path(home), _toml(values))
    return value


def reset(home: Path) -> bool:
    """Remove the policy file (every key back to its default); whether there was one."""
    try:
        policy_path(home).unlink()
    except FileNotFoundError:
        return False
    return True


def shown(policy: Policy, key: str) -> str:
    """``key``'s value in ``policy`` as `blut policy show` prints it."""
    value = getattr(policy, KEYS[key].field)
    return format_size(value) if key == "ceiling.floor" else str(value)
