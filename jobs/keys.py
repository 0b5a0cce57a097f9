"""Cache keys: what a stage's output depends on, and its key (blake3 of the canonical parts)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from blut.jobs.fingerprint import fingerprint


@dataclass(frozen=True)
class KeyParts:
    """What a cache key is made of; equal parts ⇔ equal key.

    ``inputs`` names each upstream stage's output by `upstream_id`; ``sources``
    maps each arg that names an external input (a file or directory) to the
    content hash of what it names now. A key without sources is computed as it
    was before sources existed, so such entries stay valid.
    """

    stage: str
    program: tuple[str, ...]
    schema_version: int
    inputs: Mapping[str, str]
    args: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """blake3 of the canonical JSON of the parts."""
        return fingerprint(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        data = {
            "stage": self.stage,
            "program": list(self.program),
            "schema_version": self.schema_version,
            "inputs": dict(self.inputs),
            "args": dict(self.args),
        }
        if self.sources:
            data["sources"] = dict(self.sources)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeyParts:
        """Inverse of `to_dict`."""
        return cls(
            stage=data["stage"],
            program=tuple(data["program"]),
            schema_version=int(data["schema_version"]),
            inputs=dict(data["inputs"]),
            args=dict(data["args"]),
            sources=dict(data.get("sources", {})),
        )


def upstream_id(artifact: str, parts: KeyParts) -> str:
    """How a downstream key names the output ``artifact`` of the stage keyed by ``parts``.

    Its content hash, and when that stage read external inputs, their content
    hashes too: an output may only reference what it read (a ``model.path``
    output names the model dir), so its own bytes need not change with them.
    """
    if not parts.sources:
        return artifact
    return fingerprint({"artifact": artifact, "sources": dict(parts.sources)})
