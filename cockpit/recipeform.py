"""The recipe form without widgets: fields from an args JSON schema, parsing and sweeps.

A recipe's schema is an object whose properties are mostly one object section
per stage (``{"make": {"count": ..., "seed": ...}, "train": {...}}``). Every
leaf becomes a :class:`Field` in the group of its section; leaves that sit at
the top level form the group ``""``. :func:`parse` turns what was typed into
one value, or several for a sweep axis, with a message naming what is wrong.
:func:`points` builds the args of every job (the Cartesian product of the axes).

Sweeps are deliberately simple: a number field that holds comma-separated
values (``1e-3,1e-4``) is an axis; text, choices and switches are never swept
(a comma is a legitimate character in text).
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, cast

FieldKind: TypeAlias = Literal["integer", "number", "boolean", "string", "choice", "json"]
MAX_POINTS = 1000
"""Most jobs one launch may create (the CLI's sweep limit)."""


@dataclass(frozen=True)
class Field:
    """One leaf of the args schema."""

    path: tuple[str, ...]
    kind: FieldKind
    schema: Mapping[str, Any]
    nullable: bool = False
    types: tuple[str, ...] = ()
    """The schema's declared types (without null)."""

    @property
    def key(self) -> str:
        """Dotted path (``make.count``): the widget id suffix and the override key."""
        return ".".join(self.path)

    @property
    def name(self) -> str:
        """The leaf's own name."""
        return self.path[-1]

    @property
    def group(self) -> str:
        """The stage section it belongs to (``""`` at the top level)."""
        return self.path[0] if len(self.path) > 1 else ""

    @property
    def choices(self) -> list[Any]:
        """The allowed values of a ``choice`` field."""
        return list(self.schema.get("enum", []))

    @property
    def sweepable(self) -> bool:
        """True if comma-separated values make a sweep axis."""
        return self.kind in ("integer", "number")

    def hint(self) -> str:
        """Description, range and sweep note, for the line under the widget."""
        parts = []
        if self.schema.get("description"):
            parts.append(str(self.schema["description"]))
        low = _bound(self.schema, "minimum", "exclusiveMinimum", ">=", ">")
        high = _bound(self.schema, "maximum", "exclusiveMaximum", "<=", "<")
        if low or high:
            parts.append(" ".join(x for x in (low, high) if x))
        if self.sweepable:
            parts.append("a,b,c sweeps")
        if self.nullable:
            parts.append("empty: none")
        return " · ".join(parts)


def _bound(schema: Mapping[str, Any], inclusive: str, exclusive: str, le: str, lt: str) -> str:
    if exclusive in schema and not isinstance(schema[exclusive], bool):
        return f"{lt} {schema[exclusive]}"
    if inclusive in schema:
        return f"{le} {schema[inclusive]}"
    return ""


def _kind(schema: Mapping[str, Any]) -> tuple[FieldKind, bool, tuple[str, ...]]:
    declared = schema.get("type")
    types = [declared] if isinstance(declared, str) else list(declared or [])
    nullable = "null" in types
    types = [t for t in types if t != "null"]
    if "enum" in schema:
        return "choice", None in schema["enum"], tuple(types)
    if len(types) == 1 and types[0] in ("integer", "number", "boolean", "string"):
        kind = cast("FieldKind", types[0])
        return kind, nullable, tuple(types)
    return "json", nullable, tuple(types)


def fields(schema: Mapping[str, Any]) -> list[Field]:
    """Every leaf of ``schema`` in schema order, sections flattened one level."""
    out: list[Field] = []

    def walk(props: Mapping[str, Any], prefix: tuple[str, ...]) -> None:
        for name, sub in props.items():
            path = (*prefix, name)
            if sub.get("type") == "object" and "properties" in sub and len(path) == 1:
                walk(sub["properties"], path)
                continue
            kind, nullable, types = _kind(sub)
            out.append(Field(path, kind, sub, nullable, types))

    walk(schema.get("properties", {}), ())
    return out


def sections(schema: Mapping[str, Any]) -> dict[str, str]:
    """Group name → its description (the stage sections, plus ``""`` for top-level leaves)."""
    out: dict[str, str] = {}
    for field in fields(schema):
        if field.group not in out:
            sub = schema.get("properties", {}).get(field.group, {}) if field.group else {}
            out[field.group] = str(sub.get("description", ""))
    return out


def lookup(args: Mapping[str, Any], path: Sequence[str]) -> tuple[bool, Any]:
    """(found, value) of ``path`` in nested ``args``."""
    node: Any = args
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def text_of(field: Field, value: Any) -> str:
    """How ``value`` is shown in a text field."""
    if value is None:
        return ""
    if isinstance(value, str) and field.kind in ("string", "json"):
        return value
    if field.kind == "json" or isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _number(field: Field, text: str) -> float | int:
    if field.kind == "integer":
        try:
            return int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                raise ValueError(f"{text!r} is not a whole number") from None
            if not as_float.is_integer():
                raise ValueError(f"{text!r} is not a whole number") from None
            return int(as_float)
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def check(field: Field, value: Any) -> str | None:
    """What is wrong with ``value`` for ``field`` by its schema's simple rules (None: fine)."""
    s = field.schema
    if value is None:
        return None if field.nullable else "a value is required"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in s and value < s["minimum"]:
            return f"must be >= {s['minimum']} (got {value})"
        if "maximum" in s and value > s["maximum"]:
            return f"must be <= {s['maximum']} (got {value})"
        if "exclusiveMinimum" in s and value <= s["exclusiveMinimum"]:
            return f"must be > {s['exclusiveMinimum']} (got {value})"
        if "exclusiveMaximum" in s and value >= s["exclusiveMaximum"]:
            return f"must be < {s['exclusiveMaximum']} (got {value})"
    if isinstance(value, str):
        if "minLength" in s and len(value) < s["minLength"]:
            return f"needs at least {s['minLength']} characters"
        if "maxLength" in s and len(value) > s["maxLength"]:
            return f"allows at most {s['maxLength']} characters"
    if field.kind == "choice" and value not in field.choices:
        return f"must be one of {', '.join(map(str, field.choices))}"
    return None


def parse(field: Field, text: str) -> list[Any]:
    """The value(s) typed into a text field: one, or several for a sweep axis.

    Raises ``ValueError`` with a message fit to show under the field.
    """
    text = text.strip()
    if not text and field.nullable:
        return [None]
    if field.kind == "string":
        values: list[Any] = [text]
    elif field.kind == "json":
        try:
            values = [json.loads(text)]
        except ValueError as exc:
            if "string" not in field.types:
                raise ValueError(f"not JSON: {exc.args[0]}") from None
            values = [text]  # e.g. memory_max "2G" (string or integer)
    elif field.kind in ("integer", "number"):
        if not text:
            raise ValueError("a value is required")
        parts = [p.strip() for p in text.split(",")]
        if any(not p for p in parts):
            raise ValueError("an empty value in the list (use a,b,c)")
        values = [_number(field, p) for p in parts]
        if len(values) != len(set(values)):
            raise ValueError("a value is repeated in the sweep")
    else:
        raise ValueError(f"{field.kind} fields are not typed in")
    for value in values:
        problem = check(field, value)
        if problem:
            raise ValueError(problem)
    return values


def _put(args: dict[str, Any], path: Sequence[str], value: Any) -> None:
    node = args
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def points(
    base: Mapping[str, Any], values: Mapping[str, list[Any]], order: Sequence[Field]
) -> list[dict[str, Any]]:
    """The args of every job: ``base`` with each field's value, one job per sweep point.

    ``values`` maps a field key to its value list (one item unless it is an axis).
    """
    by_key = {f.key: f for f in order}
    fixed = {k: v[0] for k, v in values.items() if len(v) == 1}
    axes = [(k, v) for k, v in values.items() if len(v) > 1]
    total = math.prod(len(v) for _, v in axes)
    if total > MAX_POINTS:
        raise ValueError(f"the sweep makes {total} jobs; the limit is {MAX_POINTS}")
    args = copy.deepcopy(dict(base))
    for key, value in fixed.items():
        _put(args, by_key[key].path, value)
    out = []
    for combo in itertools.product(*(v for _, v in axes)):
        point = copy.deepcopy(args)
        for (key, _), value in zip(axes, combo, strict=True):
            _put(point, by_key[key].path, value)
        out.append(point)
    return out


def axes_text(values: Mapping[str, list[Any]]) -> str:
    """``train.lr × 2, train.seed × 3`` (empty without a sweep)."""
    return ", ".join(f"{k} × {len(v)}" for k, v in values.items() if len(v) > 1)


def problem_field(problem: str, keys: Sequence[str]) -> str | None:
    """The field key a config problem line names (``make.count: ...``), if any."""
    head = problem.split(":", 1)[0].strip()
    best = None
    for key in keys:
        named = head == key or head.startswith((key + ".", key + "["))
        if named and (best is None or len(key) > len(best)):
            best = key
    return best
