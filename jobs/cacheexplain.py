"""`blut cache explain`: why a stage's key is (not) a hit, and what its entry was computed from."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from blut.jobs.cache import Cache
from blut.jobs.filemarks import changes
from blut.jobs.fingerprint import canonical
from blut.jobs.keys import KeyParts


def explain(cache: Cache, parts: KeyParts, job: str | None = None) -> list[str]:
    """Why ``parts`` is (not) a hit: what differs from the closest cached key of its stage,
    and what the entry (or the closest one) was computed from.

    When ``job`` computed the entry itself, why it ran: what differs from the
    closest other cached key of the stage.
    """
    entry = cache.get(parts.key, touch=False)
    here = f"key {parts.key[:12]}"
    if entry is not None and (job is None or entry.job != job):
        head = f"stage {parts.stage}: cached ({here}, computed by job {entry.job})"
        return [head, *_lineage(cache, entry.key)]
    same = [e for e in cache.entries() if e.parts.stage == parts.stage and e.key != parts.key]
    lineage = _lineage(cache, entry.key) if entry is not None else []
    if not same:
        if entry is not None:
            head = f"stage {parts.stage}: computed by this job ({here}); nothing else is cached"
            return [head, *lineage]
        return [f"stage {parts.stage}: nothing of this stage is cached (first run, or pruned)"]
    best = min(same, key=lambda e: (len(_differences(cache, parts, e.parts)), -e.last_used))
    closest = f"closest cached key {best.key[:12]} (job {best.job}) differs in:"
    if entry is not None:
        head = f"stage {parts.stage}: computed by this job ({here}); the {closest}"
    else:
        head = f"stage {parts.stage}: {closest}"
        lineage = _lineage(cache, best.key)
    lines = [f"  {line}" for line in _differences(cache, parts, best.parts)]
    return [head, *lines, *lineage]


def explain_reuse(
    cache: Cache, parts: KeyParts, producer: str | None, artifact: str | None
) -> list[str]:
    """Why a stage that was a cache hit did not run: the job whose output (``artifact``) it
    reused, and what that output was computed from while it is still cached.

    ``producer``: as the job recorded it; None (a job from before it was recorded) falls
    back to the job the cache entry names, while the entry still holds that output.
    """
    entry = cache.get(parts.key, touch=False)
    if entry is not None and artifact is not None and entry.hash != artifact:
        entry = None  # the key was computed again since: another output
    who = producer or (entry.job if entry is not None else None)
    source = f"job {who}" if who else "an earlier job (not recorded)"
    key = f"key {parts.key[:12]}"
    lines = [f"stage {parts.stage}: did not run; it reused the output of {source} ({key})"]
    if who:
        lines.append(f"  that run's log: blut log {who} {parts.stage}")
    if entry is None:
        lines.append(
            "  that output is no longer cached (pruned or replaced): a new run computes it"
        )
        return lines
    return [*lines, *_lineage(cache, entry.key)]


def _lineage(cache: Cache, key: str) -> list[str]:
    found = cache.parents(key)
    if not found:
        return []
    lines = [f"  key {key[:12]} was computed from:"]
    for parent, entry in found:
        if entry is None:
            lines.append(f"    {parent[:12]} (no longer cached)")
        else:
            lines.append(f"    {entry.stage} {parent[:12]} (job {entry.job})")
    return lines


def _differences(cache: Cache, now: KeyParts, cached: KeyParts) -> list[str]:
    out: list[str] = []
    if now.program != cached.program:
        out.append(f"program: {' '.join(now.program)} now, {' '.join(cached.program)} cached")
    if now.schema_version != cached.schema_version:
        out.append(f"schema version: {now.schema_version} now, {cached.schema_version} cached")
    for name in sorted(set(now.inputs) | set(cached.inputs)):
        a, b = now.inputs.get(name), cached.inputs.get(name)
        if a != b:
            out.append(f"input {name}: {(a or 'none')[:12]} now, {(b or 'none')[:12]} cached")
    for name in sorted(set(now.sources) | set(cached.sources)):
        a, b = now.sources.get(name), cached.sources.get(name)
        if a != b:
            arg = f"{now.stage}.{name}"
            out.append(_source_change(cache, arg, now.args.get(name), a, b))
    flat_now, flat_cached = _flat(now.args), _flat(cached.args)
    for name in sorted(set(flat_now) | set(flat_cached)):
        a, b = flat_now.get(name, "<unset>"), flat_cached.get(name, "<unset>")
        if canonical(a) != canonical(b):
            out.append(f"arg {name}: {json.dumps(a)} now, {json.dumps(b)} cached")
    return out


def _source_change(cache: Cache, arg: str, path: Any, now: str | None, cached: str | None) -> str:
    """One line on how the content of the external input ``arg`` changed."""
    head = f"input file {arg} ({path})" if path else f"input file {arg}"
    if now is None or cached is None:
        return f"{head}: {(now or 'none')[:12]} now, {(cached or 'none')[:12]} cached"
    trees = cache.inputs.tree(now), cache.inputs.tree(cached)
    if trees[0] is not None and trees[1] is not None:
        return f"{head}: {', '.join(changes(trees[0], trees[1]))}"
    return f"{head}: content {now[:12]} now, {cached[:12]} cached"


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_flat(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}
