"""How a job that started from a snapshot says so (job.json's ``snapshot`` record).

Kept apart from `blut.jobs.snapshots` so listings (`blut jobs`, the cockpit) need
no tar or hashing code to show it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ARG = "from_snapshot"
"""The stage argument naming the snapshot a stage starts from."""


def origin_label(record: Mapping[str, Any] | None) -> str | None:
    """``branch of 1a2b3c4d5e6f`` or ``from 1a2b3c4d5e6f``; None for a job from scratch."""
    if not record:
        return None
    short = str(record.get("id", ""))[:12]
    return f"branch of {short}" if record.get("branch") else f"from {short}"


def origin_point(record: Mapping[str, Any]) -> str:
    """Where in its run a snapshot was taken: ``epoch 5``, or ``step 40`` (a step checkpoint)."""
    if record.get("epoch") is None and record.get("step") is not None:
        return f"step {record.get('step')}"
    return f"epoch {record.get('epoch')}"


def describe_origin(record: Mapping[str, Any]) -> str:
    """``branched from snapshot 1a2b… (epoch 5): lr 0.001 → 0.01`` or ``continued from …``."""
    where = f"snapshot {str(record.get('id', ''))[:12]} ({origin_point(record)})"
    if not record.get("branch"):
        return f"continued from {where}"
    return f"branched from {where}: {describe_change(record)}"


def describe_change(record: Mapping[str, Any] | None) -> str:
    """What a run changed of its snapshot's config: ``lr 0.001 → 0.01``, ``continued``;
    empty for a job from scratch."""
    if not record:
        return ""
    changed = record.get("changed") or {}
    if not record.get("branch") or not changed:
        return "continued"
    return ", ".join(f"{k} {a} → {b}" for k, (a, b) in sorted(changed.items()))


def without_snapshot(args: Mapping[str, Any]) -> dict[str, Any]:
    """Recipe args less each stage's ``from_snapshot`` (the same for every run of one
    snapshot, and absent from the run it was taken from: never what a comparison varies)."""
    return {
        k: {a: v for a, v in s.items() if a != ARG} if isinstance(s, Mapping) else s
        for k, s in args.items()
    }
