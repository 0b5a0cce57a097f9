"""Canonical JSON and fingerprints: stable, and injective on distinct configs."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blut.jobs.fingerprint import canonical, fingerprint


def test_canonical_is_sorted_compact_and_never_null_for_nonfinite() -> None:
    text = canonical({"b": [1, 2.5], "a": {"y": math.nan, "x": math.inf, "w": -math.inf}})
    assert text == '{"a":{"w":"!-inf","x":"!inf","y":"!nan"},"b":[1,2.5]}'
    assert "null" not in text
    assert canonical({"a": 1, "b": 2}) == canonical({"b": 2, "a": 1})


def test_types_and_lookalike_strings_stay_apart() -> None:
    values = [1, 1.0, True, "1", None, math.nan, "!nan", "nan", "NaN", "!!nan", [], {}]
    assert len({fingerprint(v) for v in values}) == len(values)


def test_rejects_non_json_values() -> None:
    with pytest.raises(TypeError):
        fingerprint({1: "x"})
    with pytest.raises(TypeError):
        fingerprint({"x": object()})


def _norm(value: Any) -> Any:
    """A type-strict, NaN-equal normal form: equal normal forms ⇔ same config."""
    if isinstance(value, float):
        return ("f", repr(value))
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int):
        return ("i", value)
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("n",)
    if isinstance(value, list | tuple):
        return ("l", tuple(_norm(v) for v in value))
    return ("d", tuple(sorted((k, _norm(v)) for k, v in value.items())))


_tricky_text = st.sampled_from(["!nan", "!inf", "!-inf", "nan", "NaN", "Infinity", "!", "!!x"])
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6)
    | _tricky_text
)
configs = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=4) | _tricky_text, inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(configs, configs)
def test_distinct_configs_never_share_a_fingerprint(a: Any, b: Any) -> None:
    assert (fingerprint(a) == fingerprint(b)) == (_norm(a) == _norm(b))


@settings(max_examples=200, deadline=None)
@given(configs)
def test_fingerprint_is_deterministic(a: Any) -> None:
    assert fingerprint(a) == fingerprint(a)
