"""A stage's options, defined once by its JSON schema (``payload/schemas/<stage>.json``).

Values resolve as schema defaults < the frozen ``args.json`` < ``--name value``
on the command line, then are checked against the schema (type, enum,
minimum/maximum). Unknown names are errors with a "did you mean".
"""

from __future__ import annotations

import argparse
import difflib
import json
from importlib import resources
from typing import Any

from blut.payload.errors import ArgsError

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def schema(stage: str) -> dict[str, Any]:
    """The JSON schema of ``stage``'s args (``payload/schemas/<stage>.json``)."""
    text = resources.files("blut.payload").joinpath("schemas", f"{stage}.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def resolve(stage: str, frozen: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    """``stage``'s validated options: defaults < ``frozen`` < ``argv``."""
    spec = schema(stage)
    props: dict[str, dict[str, Any]] = spec["properties"]
    values = {name: prop.get("default") for name, prop in props.items()}
    for name, value in frozen.items():
        values[_known(stage, name.replace("-", "_"), props)] = value
    values.update(_parse_argv(stage, spec, argv))
    for name, value in values.items():
        check(stage, name, value, props[name])
    return values


def _known(stage: str, name: str, props: dict[str, Any]) -> str:
    if name in props:
        return name
    close = difflib.get_close_matches(name, list(props), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(props))}"
    raise ArgsError(f"{stage}: unknown argument {name!r}{hint}")


def _parse_argv(stage: str, spec: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    """``--name VALUE`` pairs; VALUE is JSON when it parses, else text (arrays: a,b,c)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m blut.payload {stage}",
        description=spec.get("description"),
        argument_default=argparse.SUPPRESS,
    )
    for name, prop in spec["properties"].items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            metavar=_type_names(prop).upper().replace("|", "_OR_"),
            help=f"{prop.get('description', '')} (default: {json.dumps(prop.get('default'))})",
        )
    parsed = vars(parser.parse_args(argv))
    return {name: _coerce(text, spec["properties"][name]) for name, text in parsed.items()}


def _coerce(text: str, prop: dict[str, Any]) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    types = _types(prop)
    if "string" in types and not isinstance(value, str) and value is not None:
        return text
    if "array" in types and isinstance(value, str):
        return [_coerce(part, prop.get("items", {})) for part in value.split(",") if part]
    return value


def _types(prop: dict[str, Any]) -> list[str]:
    kind = prop.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def _type_names(prop: dict[str, Any]) -> str:
    return "|".join(_types(prop)) or "value"


def check(stage: str, name: str, value: Any, prop: dict[str, Any]) -> None:
    """Raise :class:`ArgsError` unless ``value`` fits ``prop`` (type, enum, bounds, items)."""
    where = f"{stage}: argument {name!r}"
    types = _types(prop)
    if types and not any(_is(value, t) for t in types):
        raise ArgsError(f"{where}: expected {_type_names(prop)}, got {json.dumps(value)}")
    if "enum" in prop and value not in prop["enum"]:
        choices = ", ".join(json.dumps(c) for c in prop["enum"])
        raise ArgsError(f"{where}: expected one of {choices}, got {json.dumps(value)}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in prop and value < prop["minimum"]:
            raise ArgsError(f"{where}: must be >= {prop['minimum']}, got {value}")
        if "maximum" in prop and value > prop["maximum"]:
            raise ArgsError(f"{where}: must be <= {prop['maximum']}, got {value}")
    if isinstance(value, list):
        for item in value:
            check(stage, f"{name}[]", item, prop.get("items", {}))


def _is(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _PY_TYPES[kind])
