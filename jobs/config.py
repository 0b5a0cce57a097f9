"""Resolve a recipe's args: layers, Hydra-style overrides, sweeps and schema validation.

Layers, lowest first:

1. recipe defaults (the ``default`` values in the recipe's args schema)
2. user config ``$XDG_CONFIG_HOME/blut/config.toml`` (``~/.config/...``), table ``[recipes.<name>]``
3. project ``blut.toml`` in the working directory, table ``[recipes.<name>]``
4. ``--config FILE`` (TOML or JSON): the whole file is the args
5. ``--set`` overrides, then one point of the ``--sweep`` product

Overrides use Hydra's grammar (parsed by hydra-core's ``OverridesParser``):
``a.b=1`` changes an existing key, ``+a.new=x`` adds one, ``++a.b=1`` sets
either way, ``~a.b`` deletes; values may be lists, dicts and quoted strings.
Layers merge with omegaconf (so ``${a.b}`` interpolations resolve). The result
is validated against the args schema; every problem is one line naming the
path, what was expected and what was given, with a "did you mean" for unknown keys.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import jsonschema
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from blut.jobs.configfiles import config_paths, read_file, table
from blut.jobs.errors import UsageError, clip

if TYPE_CHECKING:  # hydra loads only when there are overrides to parse (it costs ~150 ms)
    from hydra.core.override_parser.types import Override

MAX_SWEEP_POINTS = 1000
EditKind: TypeAlias = Literal["set", "add", "force", "delete"]
_MISSING = object()


class ConfigError(UsageError):
    """Invalid args: one message line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Edit:
    """One parsed override: ``kind`` of change to dotted ``key`` (``text`` as typed)."""

    kind: EditKind
    key: str
    value: Any
    text: str


@dataclass(frozen=True)
class Layer:
    """Args from one source (``name`` says which, for error messages)."""

    name: str
    values: Mapping[str, Any]


def defaults_from_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The nested ``default`` values of an object schema."""
    out: dict[str, Any] = {}
    for key, sub in schema.get("properties", {}).items():
        if "default" in sub:
            out[key] = sub["default"]
        elif sub.get("type") == "object":
            out[key] = defaults_from_schema(sub)
    return out


def layers(
    recipe: str,
    schema: Mapping[str, Any],
    *,
    config_file: Path | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> list[Layer]:
    """The file layers of ``recipe``'s args, lowest first."""
    out = [Layer("recipe defaults", defaults_from_schema(schema))]
    out += [Layer(str(p), table(p, "recipes", recipe)) for p in config_paths(cwd, environ)]
    if config_file is not None:
        out.append(Layer(str(config_file), read_file(config_file)))
    return out


_KINDS: dict[str, EditKind] = {
    "CHANGE": "set",
    "ADD": "add",
    "FORCE_ADD": "force",
    "DEL": "delete",
}
"""Edit kinds by hydra ``OverrideType`` name."""


def _parse(texts: Iterable[str], option: str) -> list[Override]:
    texts = list(texts)
    if not texts:
        return []
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed = []
    for text in texts:
        shown = f"{option} {clip(text)}"
        try:
            override = parser.parse_override(text)
        except HydraException as exc:
            first = str(exc).strip().splitlines()[0]
            raise UsageError(f"{shown}: {clip(first, 200)}") from exc
        except ValueError as exc:  # int() of a number past Python's 4300 digits
            raise UsageError(f"{shown}: number too large") from exc
        if not override.key_or_group:
            raise UsageError(f"{shown}: missing key before '=' (e.g. train.lr=3e-4)")
        if override.package is not None:
            raise UsageError(f"{shown}: '@package' overrides are not supported")
        parsed.append(override)
    return parsed


def parse_overrides(texts: Iterable[str]) -> list[Edit]:
    """``--set`` overrides as edits; a sweep form here is an error pointing to ``--sweep``."""
    edits = []
    for override in _parse(texts, "--set"):
        if override.is_sweep_override():
            text = clip(override.input_line or "")
            raise UsageError(f"--set {text}: this is a sweep; use --sweep {text}")
        value = override.value() if override.value_type is not None else _MISSING
        edits.append(
            Edit(
                _KINDS[override.type.name], override.key_or_group, value, override.input_line or ""
            )
        )
    return edits


def sweep_points(texts: Iterable[str]) -> list[list[Edit]]:
    """The Cartesian product of ``--sweep`` axes (``k=a,b``, ``k=range(0,3)``, ``k=choice(..)``)."""
    overrides = _parse(texts, "--sweep")
    if not overrides:
        return [[]]
    from hydra.errors import HydraException

    axes: list[list[Edit]] = []
    seen: set[str] = set()
    for override in overrides:
        text, key = clip(override.input_line or ""), override.key_or_group
        if override.is_delete():
            raise UsageError(f"--sweep {text}: a sweep cannot delete a key")
        if key in seen:
            raise UsageError(f"--sweep {text}: {key} is swept twice")
        seen.add(key)
        values: list[Any]
        try:
            if override.is_sweep_override():  # a range may be huge: take what the limit allows
                values = list(itertools.islice(override.sweep_iterator(), MAX_SWEEP_POINTS + 1))
            else:
                values = [override.value()]
        except (HydraException, ValueError) as exc:
            raise UsageError(f"--sweep {text}: {clip(str(exc), 200)}") from exc
        if not values:
            raise UsageError(f"--sweep {text}: the sweep has no values")
        if len(values) > MAX_SWEEP_POINTS:
            raise UsageError(f"--sweep {text}: more than {MAX_SWEEP_POINTS} values")
        kind = _KINDS[override.type.name]
        axes.append([Edit(kind, key, v, f"{key}={json.dumps(v)}") for v in values])
    total = math.prod(len(axis) for axis in axes)
    if total > MAX_SWEEP_POINTS:
        raise UsageError(f"--sweep makes {total} jobs; the limit is {MAX_SWEEP_POINTS}")
    return [list(p) for p in itertools.product(*axes)]


def _schema_at(schema: Mapping[str, Any], parts: Sequence[str]) -> Mapping[str, Any] | None:
    for part in parts:
        props = schema.get("properties", {})
        if part not in props:
            return None
        schema = props[part]
    return schema


def _suggest(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _known_keys(cfg: DictConfig, schema: Mapping[str, Any], parts: Sequence[str]) -> list[str]:
    """Keys that exist next to ``parts[-1]``: in the config and in the schema."""
    parent = OmegaConf.select(cfg, ".".join(parts[:-1])) if parts[:-1] else cfg
    keys = [str(k) for k in parent] if isinstance(parent, DictConfig) else []
    sub = _schema_at(schema, parts[:-1]) or {}
    return keys + [k for k in sub.get("properties", {}) if k not in keys]


def _plain(cfg: DictConfig) -> dict[str, Any] | None:
    """``cfg`` as plain args (None when it does not resolve)."""
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException:
        return None
    return {str(k): v for k, v in resolved.items()} if isinstance(resolved, dict) else None


def _addable(cfg: DictConfig, edit: Edit, schema: Mapping[str, Any]) -> bool:
    """Whether ``+KEY=VALUE`` would be accepted: added to a copy of ``cfg``, it breaks
    nothing in ``schema`` that was not broken before (so a hint never leads to a refusal)."""
    trial = copy.deepcopy(cfg)
    try:
        OmegaConf.update(trial, edit.key, edit.value, merge=True, force_add=True)
    except OmegaConfBaseException:
        return False
    before, after = _plain(cfg), _plain(trial)
    if before is None or after is None:
        return False
    return set(problems(after, schema)) <= set(problems(before, schema))


def _apply(cfg: DictConfig, edit: Edit, schema: Mapping[str, Any]) -> str | None:
    """Apply ``edit`` to ``cfg``; the problem, if it cannot be applied."""
    parts = edit.key.split(".")
    key, text = clip(edit.key), clip(edit.text)
    present = OmegaConf.select(cfg, edit.key, default=_MISSING) is not _MISSING
    if edit.kind == "set" and not present and _schema_at(schema, parts) is None:
        hint = _suggest(parts[-1], _known_keys(cfg, schema, parts))
        if _addable(cfg, edit, schema):
            hint += f"; use +{text} to add it"
        return f"{text}: unknown key {key}{hint}"
    if edit.kind == "add" and present:
        return f"{text}: {key} is already set; drop the '+' to change it"
    if edit.kind == "delete":
        if not present:
            hint = _suggest(parts[-1], _known_keys(cfg, schema, parts))
            return f"~{key}: no key {key} to delete{hint}"
        section = _schema_at(schema, parts) or {}
        if "properties" in section:
            example = next(iter(section["properties"]))
            return (
                f"~{key}: {key} is a whole section of arguments; delete keys in it "
                f"(e.g. ~{key}.{example}), not the section"
            )
        current = OmegaConf.select(cfg, edit.key)
        if edit.value is not _MISSING and current != edit.value:
            return f"{text}: {key} is {clip(repr(current))}, not {clip(repr(edit.value))}"
        parent = OmegaConf.select(cfg, ".".join(parts[:-1])) if len(parts) > 1 else cfg
        del parent[parts[-1]]
        return None
    OmegaConf.update(cfg, edit.key, edit.value, merge=True, force_add=True)
    return None


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _given(value: Any) -> str:
    shown = json.dumps(value, default=str)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{shown} ({_type_name(value)})"


_BOUNDS = {
    "minimum": ">=",
    "maximum": "<=",
    "exclusiveMinimum": ">",
    "exclusiveMaximum": "<",
}


def _problems(error: jsonschema.ValidationError) -> list[str]:
    path = ".".join(str(p) for p in error.absolute_path)
    where = path or "(top level)"
    check, want, inst = error.validator, error.validator_value, error.instance
    if check == "additionalProperties" and isinstance(inst, dict):
        sub = error.schema if isinstance(error.schema, Mapping) else {}
        allowed = list(sub.get("properties", {}))
        return [
            f"{path + '.' if path else ''}{key}: unknown key{_suggest(key, allowed)}"
            for key in inst
            if key not in allowed
        ]
    if check == "required" and isinstance(inst, dict) and isinstance(want, list):
        return [f"{where}: missing required key {key!r}" for key in want if key not in inst]
    if check == "type":
        expected = " or ".join(want) if isinstance(want, list) else want
        return [f"{where}: expected {expected}, given {_given(inst)}"]
    if check == "enum":
        return [f"{where}: expected one of {json.dumps(want)}, given {_given(inst)}"]
    if check == "pattern":
        sub = error.schema if isinstance(error.schema, Mapping) else {}
        expected = sub.get("description") or f"text matching {want}"
        return [f"{where}: expected {expected}, given {_given(inst)}"]
    if check in _BOUNDS:
        return [f"{where}: expected {_BOUNDS[str(check)]} {want}, given {_given(inst)}"]
    return [f"{where}: {error.message}"]


INT_RANGE = (-(2**63), 2**63 - 1)
"""The integers every program can take (int64)."""


def _unrepresentable(value: Any, path: str) -> list[str]:
    """Problems for NaN/±inf (JSON has no such numbers, nor do programs) and for integers
    outside int64, anywhere in ``value``."""
    where, (low, high) = path or "(top level)", INT_RANGE
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{where}: expected a finite number, given {value}"]
    if isinstance(value, int) and not isinstance(value, bool) and not low <= value <= high:
        return [f"{where}: expected an integer from -2**63 to 2**63-1, given {_given(value)}"]
    if isinstance(value, Mapping):
        return [
            p
            for k, v in value.items()
            for p in _unrepresentable(v, f"{path}.{k}" if path else str(k))
        ]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _unrepresentable(v, f"{path}.{i}")]
    return []


def problems(args: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Every way ``args`` breaks ``schema``, one line each."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(args), key=lambda e: [str(p) for p in e.absolute_path])
    unusable = _unrepresentable(args, "")
    said = {line.partition(": ")[0] for line in unusable}  # one problem is enough for these
    found = [line for error in errors for line in _problems(error)]
    return [line for line in found if line.partition(": ")[0] not in said] + unusable


def validate(args: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Raise `ConfigError` listing every way ``args`` breaks ``schema``."""
    found = problems(args, schema)
    if found:
        raise ConfigError(found)


def merge(
    base: Sequence[Layer], edits: Sequence[Edit], schema: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge layers, apply edits in order and validate; the plain resolved args.

    A `ConfigError` lists every problem: the edits that could not be applied, then
    what the args that result from the others break.
    """
    try:
        cfg = OmegaConf.merge(*(OmegaConf.create(dict(layer.values)) for layer in base))
        assert isinstance(cfg, DictConfig)
        found = [p for p in (_apply(cfg, edit, schema) for edit in edits) if p is not None]
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        raise UsageError(f"config: {clip(str(exc).strip().splitlines()[0], 200)}") from exc
    assert isinstance(resolved, dict)
    args = {str(k): v for k, v in resolved.items()}
    found += problems(args, schema)
    if found:
        raise ConfigError(found)
    return args


def resolve(
    recipe: str,
    schema: Mapping[str, Any],
    *,
    sets: Sequence[str] = (),
    sweeps: Sequence[str] = (),
    config_file: Path | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] = os.environ,
    base: Layer | None = None,
) -> list[dict[str, Any]]:
    """The args of every job to run: one per sweep point (one without sweeps).

    ``base``: a layer above the files and below ``sets`` (a snapshot's args).
    """
    found = layers(recipe, schema, config_file=config_file, cwd=cwd, environ=environ)
    base_layers = [*found, base] if base is not None else found
    edits = parse_overrides(sets)
    points = sweep_points(sweeps)
    clash = {e.key for e in edits} & {e.key for p in points[:1] for e in p}
    if clash:
        raise UsageError(f"{sorted(clash)[0]} is given by both --set and --sweep")
    return [merge(base_layers, [*edits, *point], schema) for point in points]
