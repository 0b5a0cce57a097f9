"""Canonical JSON and blake3 fingerprints of configs.

Canonical JSON: sorted keys, no whitespace, floats in their shortest
round-trip form. NaN and ±inf become the strings ``"!nan"``, ``"!inf"`` and
``"!-inf"`` (never null), and a real string that starts with ``!`` gets one
more ``!``, so the encoding stays injective: two configs that differ in type
or value (``1`` vs ``1.0`` vs ``true``, ``nan`` vs ``"!nan"``) never share a
fingerprint. Tuples encode like lists; keys must be strings.
"""

from __future__ import annotations

import json
import math
from typing import Any

from blake3 import blake3


def _encode(value: Any) -> Any:
    if isinstance(value, str):
        return "!" + value if value.startswith("!") else value
    if isinstance(value, float) and not math.isfinite(value):
        return "!nan" if math.isnan(value) else ("!inf" if value > 0 else "!-inf")
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"config keys must be strings, got {key!r}")
        return {_encode(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    raise TypeError(f"cannot fingerprint a {type(value).__name__}: {value!r}")


def canonical(value: Any) -> str:
    """The canonical JSON text of a JSON-like value."""
    return json.dumps(
        _encode(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def fingerprint(value: Any) -> str:
    """blake3 hex digest of the canonical JSON of ``value``."""
    return blake3(canonical(value).encode("utf-8", "surrogatepass")).hexdigest()
