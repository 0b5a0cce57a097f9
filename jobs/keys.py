"""Cache keys: what a stage's output depends on, and its key (blake3 of the canonical parts)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from blut.jobs.fingerprint import fingerprint


@dataclass(frozen=True)
class KeyParts:
    """What a cache key is made of; equal parts ⇔ equal key."""

    stage: str
    program: tuple[str, ...]
    schema_version: int
    inputs: Mapping[str, str]
    args: Mapping[str, Any]

    @property
    def key(self) -> str:
        """blake3 of the canonical JSON of the parts."""
        return fingerprint(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "stage": self.stage,
            "program": list(self.program),
            "schema_version": self.schema_version,
            "inputs": dict(self.inputs),
            "args": dict(self.args),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeyParts:
        """Inverse of `to_dict`."""
        return cls(
            stage=data["stage"],
            program=tuple(data["program"]),
            schema_version=int(data["schema_version"]),
            inputs=dict(data["inputs"]),
            args=dict(data["args"]),
        )
